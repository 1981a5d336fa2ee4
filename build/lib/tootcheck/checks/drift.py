"""Render-vs-live drift as a live check (read-only; gate, nightly and rehearsal)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from tootcheck.checks.registry import live_check
from tootcheck.drift import IGNORED, diff_objects
from tootcheck.model import CheckResult, CheckRun

FAULTS = {
    "object-missing": "an object of the render does not exist in the cluster",
    "field-drift": "a field the render sets has another value (or none) in the cluster",
}


@live_check("drift.render_vs_live", faults=FAULTS)
def check_render_vs_live(
    desired: Iterable[Mapping[str, Any]],
    fetch: Callable[[Mapping[str, Any]], Mapping[str, Any] | None],
    *,
    target: str,
    revision: str = "HEAD",
) -> CheckResult:
    """The live objects match the render at ``revision`` in every field the render sets."""
    run = CheckRun("drift.render_vs_live", target)
    objects = [o for o in desired if o.get("kind") != "Secret"]
    run.evidence["revision"] = revision
    run.evidence["ignored_paths"] = sorted(IGNORED)
    drifts = diff_objects(objects, fetch)
    run.observe(len(objects))
    run.metrics["objects"] = float(len(objects))
    run.metrics["drifts"] = float(len(drifts))
    run.evidence["drifts"] = [str(d) for d in drifts]
    for drift in drifts:
        code = "object-missing" if drift.kind == "missing-object" else "field-drift"
        run.fail(code, f"{drift} (render at {revision})")
    return run.result()

