"""The FROM and TO renders of a rehearsal, made in a scratch directory.

Rendering never edits committed manifests: :func:`workspace` copies the reference
(``manifests/apps/mastodon``) and the kind overlay into a scratch directory, sets the
chart version there when the chart changes, and wraps the overlay in a kustomization
whose ``images:`` transformer puts both Mastodon images at the wanted release (before
4.3 streaming runs from the mastodon image). :func:`preflight` refuses, in one line,
what cannot work before anything is deployed.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from tootcheck import versions
from tootcheck.config_file import project_root
from tootcheck.errors import BadInput
from tootcheck.kube.apply import images, split_documents
from tootcheck.rehearsal import plan as plan_mod
from tootcheck.rehearsal.plan import RehearsalPlan, Version
from tootcheck.rendering import render as render_kustomization
from tootcheck.settings import Settings

APP_DIR = "manifests/apps/mastodon"
OVERLAY_DIR = "manifests/overlays/kind"


def workspace(version: Version, chart: Version, root: Path, *, repo: Path | None = None,
              pinned_chart: str | None = None) -> Path:
    """Write, under ``root``, a kustomization rendering the kind overlay with both
    Mastodon images at ``version`` and app-template at ``chart``; returns its directory."""
    repo = repo or project_root()
    for rel in (APP_DIR, OVERLAY_DIR):
        source = repo / rel
        if not source.is_dir():
            raise BadInput(f"{source} is missing: cannot render the rehearsal")
        shutil.copytree(source, root / rel, symlinks=True)
    pinned = pinned_chart or versions.APP_TEMPLATE
    if chart.tag != pinned:
        kustomization = root / APP_DIR / "kustomization.yaml"
        kustomization.write_text(plan_mod.with_chart_version(kustomization.read_text(), chart))
    wrapper = root / "rehearsal"
    wrapper.mkdir()
    base = Path("..") / OVERLAY_DIR
    (wrapper / "kustomization.yaml").write_text(
        json.dumps(plan_mod.wrapper_kustomization(base.as_posix(), version), indent=2))
    return wrapper


@lru_cache(maxsize=4)
def render(version: str, chart: str) -> str:
    """The kind overlay rendered at Mastodon ``version`` and app-template ``chart``
    (``kubectl kustomize --enable-helm``, in a scratch directory outside the repo)."""
    root = Path(tempfile.mkdtemp(prefix="tootcheck-rehearsal-"))
    try:
        wrapper = workspace(plan_mod.parse_version(version, "version"),
                            plan_mod.parse_chart_version(chart, "chart"), root)
        return render_kustomization(wrapper, timeout=600)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def render_docs(version: Version, chart: Version) -> list[dict[str, Any]]:
    return split_documents(render(version.tag, chart.tag), f"render at {version}, chart {chart}")


def plan_of(settings: Settings) -> RehearsalPlan:
    return plan_mod.make_plan(settings.rehearse_from, settings.rehearse_to,
                              settings.rehearse_chart_from, settings.rehearse_chart_to)


def mastodon_render(settings: Settings) -> str | None:
    """What the bring-up's ``mastodon`` phase applies: in a rehearsal, the kind overlay
    at FROM (chart at CHART_FROM); otherwise None (apply the overlay as it is)."""
    if settings.mode != "rehearsal":
        return None
    plan = plan_of(settings)
    return render(plan.source.tag, plan.chart_from.tag)


def rehearsal_images(settings: Settings) -> list[str]:
    """Every image of the FROM and TO renders (for the bring-up's image preload)."""
    if settings.mode != "rehearsal":
        return []
    plan = plan_of(settings)
    found: list[str] = []
    for version, chart in ((plan.source, plan.chart_from), (plan.target, plan.chart_to)):
        found += [i for i in images(render_docs(version, chart)) if i not in found]
    return found


@dataclass(frozen=True)
class Renders:
    before: list[dict[str, Any]]
    after: list[dict[str, Any]]
    notes: tuple[str, ...] = ()


def preflight(plan: RehearsalPlan) -> Renders:
    """Render FROM and TO and refuse (one line) what cannot work, before deploying."""
    before = render_docs(plan.source, plan.chart_from)
    after = render_docs(plan.target, plan.chart_to)
    problems = plan_mod.requirement_problems(plan, plan_mod.inspect_render(after))
    problems += plan_mod.immutable_changes(before, after)
    problems += [p for p in (plan_mod.workload_renamed(before, after),
                             plan_mod.postgres_major_change(plan_mod.inspect_render(before),
                                                            plan_mod.inspect_render(after)))
                 if p is not None]
    if problems:
        raise BadInput(f"rehearsal {plan.describe()} cannot work: {'; '.join(problems)}")
    notes = tuple(f"{obj} is in the FROM render only and stays in the cluster (apply does "
                  "not prune)" for obj in plan_mod.dropped_objects(before, after))
    return Renders(before, after, plan.warnings + notes)


