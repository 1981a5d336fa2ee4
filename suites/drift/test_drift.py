"""Render-vs-live drift on the target: every field the render sets has its value live.

Thin: one call of ``tootcheck.checks.drift.check_render_vs_live`` (proven in
tests/test_drift.py; cluster-set fields are ignored by the documented list
``tootcheck.drift.IGNORED``). The desired state depends on the run:

- live target (nightly): the committed render at ``--revision``
  (``manifests/rendered/mastodon.yaml``), the revision the instance was deployed from;
- kind target: what the bring-up applied (its render of the kind overlay, with the
  run's own values), else the overlay rendered from the working tree;
- rehearsal: the objects applied at TO.

Live objects are read through the target's kubeconfig (``tootcheck.kube``); without
one the test skips with one line.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import pytest

from tootcheck import rendering
from tootcheck.checks.drift import check_render_vs_live
from tootcheck.drift import render_at
from tootcheck.errors import BadInput
from tootcheck.kube import pods
from tootcheck.kube.apply import split_documents
from tootcheck.settings import Settings
from tootcheck.target import Target

pytestmark = pytest.mark.needs_target

LIVE_SNAPSHOT = "manifests/rendered/mastodon.yaml"
KIND_OVERLAY = "manifests/overlays/kind"

Fetch = Callable[[Mapping[str, Any]], Mapping[str, Any] | None]


@pytest.fixture(scope="module")
def desired(request: pytest.FixtureRequest, settings: Settings) -> tuple[list[dict], str]:
    """(objects, where they come from) for this run."""
    try:
        if settings.mode == "rehearsal":
            result = request.getfixturevalue("rehearsal")
            return result.applied, f"render at {result.plan.target} (chart {result.plan.chart_to})"
        if settings.target == "kind":
            try:
                applied = request.getfixturevalue("kind_deployment").docs(KIND_OVERLAY)
                return applied, f"{KIND_OVERLAY} as the bring-up applied it"
            except pytest.FixtureLookupError:
                docs = split_documents(rendering.render(rendering.source_dir(KIND_OVERLAY)), KIND_OVERLAY)
                return docs, f"{KIND_OVERLAY} (working tree)"
        return render_at(settings.revision, LIVE_SNAPSHOT), settings.revision
    except BadInput as exc:
        problem = str(exc)
    pytest.fail(problem, pytrace=False)


@pytest.fixture(scope="module")
def live(target: Target) -> Fetch:
    """Reads one object as the API serves it; None when absent (or its kind is not served)."""
    if target.kubeconfig is None and target.kube_context is None:
        pytest.skip(f"target {target.name} has no kubeconfig: drift not compared "
                    "(pass --tootcheck-kubeconfig)")
    try:
        kube = pods.kube_for(target)
    except BadInput as exc:
        problem = str(exc)
    else:
        def fetch(obj: Mapping[str, Any]) -> Mapping[str, Any] | None:
            meta = obj.get("metadata") or {}
            try:
                return kube.get(obj["apiVersion"], obj["kind"], meta["name"], meta.get("namespace"))
            except BadInput:  # the cluster does not serve this kind: the object cannot exist
                return None

        return fetch
    pytest.fail(problem, pytrace=False)


@pytest.mark.check("drift.render_vs_live")
def test_render_vs_live(target: Target, live: Fetch, desired: tuple[list[dict], str]) -> None:
    # `live` first: without a kubeconfig the test skips before anything is rendered
    objects, revision = desired
    result = check_render_vs_live(objects, live, target=target.name, revision=revision)
    assert result.ok, result.summary
