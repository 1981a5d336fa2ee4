"""Persistence: data written before restarts is all there after them.

The check writes one marker of every kind through REST (``tootcheck.checks.markers``:
an account, a status, an image with its served bytes' checksum and URL, a
scheduled status, a follow), confirms they read back, then runs the restart
steps it is given (the suite passes "delete the Mastodon pod and wait for its
replacement" and "restart the NFS server pod and wait") and checks every marker
after each step. Markers written, found and lost are reported as metrics; any
loss fails the check. It never restarts anything itself: the caller owns the
restart and its refusal on foreign clusters.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import replace

import requests

from tootcheck.checks.markers import (
    DEFAULT_PUBLISH_GRACE_S,
    DEFAULT_SCHEDULED_IN_S,
    MarkerSet,
    MarkerWriteError,
    Outage,
    Outcome,
    cleanup_markers,
    outcomes_evidence,
    record,
    rest_outcomes,
    write_markers,
)
from tootcheck.checks.registry import live_check
from tootcheck.model import CheckResult, CheckRun
from tootcheck.target import Target
from tootcheck.waiting import Poll, WaitTimeout, wait_until

RestartStep = tuple[str, Callable[[], object]]
API_TIMEOUT_S = 300.0


def api_answers(target: Target, timeout: float = 10.0) -> Poll[int]:
    """The web side is back: ``GET /api/v1/instance`` answers 200."""
    try:
        with target.http() as session:
            response = session.get(f"{target.base_url}/api/v1/instance", timeout=timeout)
    except requests.RequestException as exc:
        return Poll(False, None, f"{type(exc).__name__}")
    return Poll(response.status_code == 200, response.status_code,
                f"HTTP {response.status_code}")


@live_check(
    "persistence.markers_survive",
    faults={
        "markers-unwritable": "the markers could not be written and read back before any restart",
        "restart-failed": "a restart step failed, or the API did not answer again in time after it",
        "marker-lost": "a marker written before a restart is gone after it "
                       "(account, status, media file or row, follow, scheduled status)",
        "media-changed": "an uploaded image's bytes or URL differ after a restart",
        "scheduled-late": "a scheduled status is neither still scheduled nor published on time",
    },
    mutating=True,
)
def check_markers_survive(
    target: Target,
    restarts: Sequence[RestartStep],
    *,
    author: str = "test",
    follower: str = "second",
    scheduled_in_s: float = DEFAULT_SCHEDULED_IN_S,
    publish_grace_s: float = DEFAULT_PUBLISH_GRACE_S,
    api_timeout_s: float = API_TIMEOUT_S,
    interval_s: float = 2.0,
    await_scheduled_s: float = 0.0,
    on_written: Callable[[MarkerSet], object] | None = None,
    cleanup: bool = True,
) -> CheckResult:
    """Markers written before each restart step are all found after it.

    A scheduled marker counts as found while still scheduled; with
    ``await_scheduled_s`` the check then waits (bounded) until it falls due, so a
    schedule lost from Redis shows up as ``scheduled-late``. Lateness counts
    service time only: the restart windows are not held against it."""
    run = CheckRun("persistence.markers_survive", target.name)
    try:
        markers = write_markers(target, author=author, follower=follower,
                                scheduled_in_s=scheduled_in_s)
    except MarkerWriteError as exc:
        run.observe()
        run.fail("markers-unwritable", str(exc))
        if cleanup:
            run.evidence["cleanup"] = cleanup_markers(target, exc.partial) or "nothing left"
        return run.result()
    if on_written is not None:
        on_written(markers)
    run.evidence["markers"] = markers.to_dict()
    run.metrics["markers_written"] = float(markers.count)
    try:
        _survive(run, target, markers, restarts, publish_grace_s, api_timeout_s, interval_s,
                 await_scheduled_s)
    finally:
        if cleanup:
            problems = cleanup_markers(target, markers)
            run.evidence["cleanup"] = problems or "all markers removed"
    return run.result()


def _survive(run: CheckRun, target: Target, markers: MarkerSet,
             restarts: Sequence[RestartStep], grace_s: float, api_timeout_s: float,
             interval_s: float, await_scheduled_s: float) -> None:
    rounds: list[dict[str, object]] = []
    run.evidence["rounds"] = rounds
    baseline = rest_outcomes(target, markers, publish_grace_s=grace_s)
    rounds.append({"after": "writing", "outcomes": outcomes_evidence(baseline)})
    unreadable = [o for o in baseline if not o.found]
    if unreadable:
        run.observe()
        run.fail("markers-unwritable", "markers did not read back before any restart: "
                 + "; ".join(o.detail for o in unreadable[:3]))
        return
    lost: dict[str, Outcome] = {}
    last: list[Outcome] = baseline
    outages: list[Outage] = []
    for name, step in restarts:
        outage = _restart(run, target, name, step, api_timeout_s, interval_s)
        if outage is None:
            break
        outages.append(outage)
        began = time.monotonic()
        last = rest_outcomes(target, markers, publish_grace_s=grace_s, outages=outages)
        rounds.append({"after": name, "down_s": round(outage[1] - outage[0], 3),
                       "verify_s": round(time.monotonic() - began, 3),
                       "outcomes": outcomes_evidence(last)})
        fresh = [o for o in last if not o.found and o.key not in lost]
        record(run, fresh, when=name)
        run.observe(len(last) - len(fresh))
        lost.update({o.key: o for o in fresh})
    if outages and len(outages) == len(restarts) and await_scheduled_s > 0:
        last = _await_scheduled(run, target, markers, last, lost, grace_s, outages,
                                await_scheduled_s, interval_s)
        rounds.append({"after": "the scheduled time", "outcomes": outcomes_evidence(last)})
    run.metrics["markers_found"] = float(sum(1 for o in last if o.found))
    run.metrics["markers_lost"] = float(len(lost))
    run.metrics["restarts"] = float(len(outages))


def _await_scheduled(run: CheckRun, target: Target, markers: MarkerSet, last: list[Outcome],
                     lost: dict[str, Outcome], grace_s: float, outages: list[Outage],
                     timeout_s: float, interval_s: float) -> list[Outcome]:
    """Wait (bounded) until each still-scheduled marker is published or overdue, so the
    Redis-held `schedule` entry is really put to the test; returns the updated outcomes."""
    pending = [o.key for o in last if o.kind == "scheduled" and o.detail == "still scheduled"]
    if not pending:
        return last
    only = replace(markers, accounts=[], statuses=[], media=[], follows=[],
                   scheduled=[m for m in markers.scheduled if m.key in pending])

    def decided() -> Poll[list[Outcome]]:
        now = rest_outcomes(target, only, publish_grace_s=grace_s, outages=outages)
        waiting = [o for o in now if o.detail == "still scheduled"]
        return Poll(not waiting, now, f"{len(waiting)} scheduled marker(s) not yet due")

    try:
        settled = wait_until(decided, what="scheduled markers to fall due", timeout=timeout_s,
                             interval=interval_s) or []
    except WaitTimeout:
        return last  # still scheduled and not overdue: found, as before
    fresh = [o for o in settled if not o.found and o.key not in lost]
    record(run, fresh, when="the scheduled time")
    lost.update({o.key: o for o in fresh})
    by_key = {o.key: o for o in settled}
    return [by_key.get(o.key, o) for o in last]


def _restart(run: CheckRun, target: Target, name: str, step: Callable[[], object],
             api_timeout_s: float, interval_s: float) -> Outage | None:
    """Run one restart step and wait for the API; the outage window, or None on failure."""
    started = time.monotonic()
    down_from = time.time()
    try:
        step()
    except Exception as exc:  # any failure of the caller's restart is the finding
        run.observe()
        first = str(exc).splitlines()[0] if str(exc) else ""
        run.fail("restart-failed", f"{name}: {type(exc).__name__}: {first}"[:300])
        return None
    try:
        wait_until(lambda: api_answers(target), what=f"the API after {name}",
                   timeout=api_timeout_s, interval=interval_s)
    except WaitTimeout as exc:
        run.observe()
        run.fail("restart-failed", f"after {name} the API did not answer within "
                                   f"{api_timeout_s:g}s (last: {exc.last_state})")
        return None
    run.metrics[f"restart_s.{name}"] = round(time.monotonic() - started, 3)
    return (down_from, time.time())
