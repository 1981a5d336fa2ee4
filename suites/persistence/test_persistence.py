"""Persistence on the target: markers survive a pod restart and an NFS server restart.

Thin: runs ``persistence.markers_survive`` (proven against real PostgreSQL and
Redis restarts in ``tests/checks/test_persistence.py``) with the kube layer's
restarts, and asserts it passed: markers written, found and lost are in the
result's metrics; any loss fails.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from suites.persistence.conftest import RestartSteps
from tootcheck.checks.markers import DEFAULT_PUBLISH_GRACE_S, DEFAULT_SCHEDULED_IN_S, MarkerSet
from tootcheck.checks.persistence import check_markers_survive
from tootcheck.target import Target

pytestmark = [pytest.mark.needs_target, pytest.mark.destructive]

SCHEDULED_WAIT_S = DEFAULT_SCHEDULED_IN_S + DEFAULT_PUBLISH_GRACE_S  # at most 12 min


@pytest.mark.check("persistence.markers_survive")
@pytest.mark.timeout(3000)  # two bounded restarts (600 s + API 300 s each) + the 12 min wait
def test_markers_survive_restarts(target: Target, restart_steps: RestartSteps,
                                  record_markers: Callable[[MarkerSet], Path]) -> None:
    # wait (bounded) for the scheduled marker to fall due after the restarts: its
    # `schedule` entry in Redis must have survived them
    result = check_markers_survive(target, restart_steps, on_written=record_markers,
                                   await_scheduled_s=SCHEDULED_WAIT_S)
    assert result.ok, result.summary
    assert result.metrics["markers_lost"] == 0, result.summary
