"""The committed render snapshots: fresh against the kustomizations, and pinned as stated.

The freshness test needs kubectl, helm v3 and the pulled chart. Where any of them is
missing it is reported as NOT PROVEN (in the terminal summary and summary.json, with the
reason), never as passed; CI installs the pinned tools first (`make tools`).
"""

from __future__ import annotations

import pytest

from tests import REPO_ROOT, load_all
from tootcheck import versions
from tootcheck.errors import ToolMissing
from tootcheck.rendering import REFERENCE, SNAPSHOTS, body, helm_charts, missing_charts, render
from tootcheck.testing import not_proven
from tootcheck.tools import require_helm3, require_kubectl


def _objects(text: str) -> list[dict]:
    return [doc for doc in load_all(text) if doc]


@pytest.mark.parametrize("snapshot", SNAPSHOTS, ids=lambda s: s.name)
def test_snapshot_is_fresh(snapshot, request):
    what = f"render.freshness[{snapshot.name}]"
    try:
        require_kubectl()
        if helm_charts(snapshot.source_path):
            require_helm3()
    except ToolMissing as exc:
        not_proven(request.node, what, str(exc))
    missing = missing_charts(snapshot.source_path)
    if missing:
        names = ", ".join(f"{c} (in {c.directory.relative_to(REPO_ROOT)}/charts)" for c in missing)
        not_proven(request.node, what, f"chart(s) not pulled: {names} (needs network once: make render)")
    fresh = render(snapshot.source_path)
    committed = snapshot.output_path.read_text()
    assert body(committed) == fresh, (
        f"{snapshot.output} is stale: run `make render` and commit the result")


def test_reference_pins_match_versions():
    objects = _objects(REFERENCE.output_path.read_text())
    deployment = next(o for o in objects if o["kind"] == "Deployment")
    spec = deployment["spec"]["template"]["spec"]
    images = {c["name"]: c["image"] for c in spec["containers"] + spec["initContainers"]}
    assert images["web"] == f"{versions.MASTODON_IMAGE}:{versions.MASTODON}"
    assert images["sidekiq"] == images["web"] == images["db-migrate"]
    assert images["streaming"] == f"{versions.MASTODON_STREAMING_IMAGE}:{versions.MASTODON}"
    charts = {o["metadata"].get("labels", {}).get("helm.sh/chart") for o in objects} - {None}
    assert charts == {f"app-template-{versions.APP_TEMPLATE}"}
    (chart,) = helm_charts(REFERENCE.source_path)
    assert (chart.name, chart.version) == ("app-template", versions.APP_TEMPLATE)


def test_reference_contains_no_secret_values():
    objects = _objects(REFERENCE.output_path.read_text())
    secrets = [o for o in objects if o["kind"] == "Secret"]
    assert not secrets, "the reference must not render a Secret"
