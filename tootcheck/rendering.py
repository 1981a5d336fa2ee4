"""Rendering kustomizations into the committed snapshots the offline gate checks.

Each entry of :data:`SNAPSHOTS` maps a kustomize directory to its snapshot. The
render uses exactly the production command, ``kubectl kustomize --enable-helm``.
A snapshot starts with a header comment; :func:`body` strips it for comparison.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

import yaml

from tootcheck.errors import BadInput
from tootcheck.settings import REPO_ROOT
from tootcheck.tools import kustomize_version, require_helm3, require_kubectl

HEADER = (
    "# Rendered by `make render` from {source} with `kubectl kustomize --enable-helm`."
    " Do not edit.\n"
)


@dataclass(frozen=True)
class Snapshot:
    source: str  # kustomize directory, relative to the repository root
    output: str  # committed snapshot, relative to the repository root

    @property
    def source_path(self) -> Path:
        return REPO_ROOT / self.source

    @property
    def output_path(self) -> Path:
        return REPO_ROOT / self.output


SNAPSHOTS: tuple[Snapshot, ...] = (
    Snapshot("manifests/apps/mastodon", "manifests/rendered/mastodon.yaml"),
)


@dataclass(frozen=True)
class HelmChartRef:
    name: str
    version: str
    repo: str


def helm_charts(kustomize_dir: Path) -> list[HelmChartRef]:
    """The helmCharts entries of a kustomization (empty for plain kustomizations)."""
    path = kustomize_dir / "kustomization.yaml"
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise BadInput(f"{path}: cannot read kustomization: {exc}") from None
    return [HelmChartRef(str(c.get("name")), str(c.get("version", "")), str(c.get("repo", "")))
            for c in data.get("helmCharts") or []]


def cached_chart(kustomize_dir: Path, chart: HelmChartRef) -> Path:
    """Where kustomize looks for a pulled chart before pulling it (chartHome 'charts')."""
    return kustomize_dir / "charts" / f"{chart.name}-{chart.version}" / chart.name


def missing_charts(kustomize_dir: Path) -> list[HelmChartRef]:
    return [c for c in helm_charts(kustomize_dir)
            if not (cached_chart(kustomize_dir, c) / "Chart.yaml").is_file()]


def render(kustomize_dir: Path, *, timeout: float = 300) -> str:
    """``kubectl kustomize --enable-helm DIR`` with helm v3; BadInput on failure."""
    kubectl = require_kubectl()
    cmd = [str(kubectl), "kustomize", "--enable-helm"]
    if helm_charts(kustomize_dir):
        cmd += ["--helm-command", str(require_helm3())]
    cmd.append(str(kustomize_dir))
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise BadInput(f"rendering {kustomize_dir} took longer than {timeout:.0f}s") from None
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise BadInput(f"kubectl kustomize --enable-helm {kustomize_dir} failed: {last}")
    return done.stdout


def body(text: str) -> str:
    """The snapshot without its leading comment lines."""
    lines = text.splitlines(keepends=True)
    while lines and lines[0].startswith("#"):
        lines.pop(0)
    return "".join(lines)


def write_snapshot(snapshot: Snapshot) -> Path:
    rendered = render(snapshot.source_path)
    snapshot.output_path.parent.mkdir(parents=True, exist_ok=True)
    snapshot.output_path.write_text(HEADER.format(source=snapshot.source) + rendered)
    return snapshot.output_path


def tool_versions() -> str:
    kubectl = require_kubectl()
    return f"kustomize {kustomize_version(kubectl) or 'unknown'}"
