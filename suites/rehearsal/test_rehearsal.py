"""The rehearsal's verification: the upgrade FROM -> TO, and the data seeded before it.

Runs only in ``--mode=rehearsal`` (``make rehearse FROM=... TO=...``), after every
other test (marker ``rehearsal_verify``, ordered by fixtures/rehearsal.py), so the
seeded data is checked after all suites ran against TO. Migration time and downtime
are recorded as test properties (``user_properties``: summary.json, and junit.xml
unless junit_family is xunit2).

Thin: one call each of ``tootcheck.rehearsal.checks`` (proven in tests/rehearsal/).
"""

from __future__ import annotations

import psycopg
import pytest

from tootcheck.rehearsal import run
from tootcheck.rehearsal.checks import (
    check_data_intact,
    check_rollback,
    check_seeds_intact,
    check_upgrade,
)
from tootcheck.rehearsal.run import RehearsalResult
from tootcheck.settings import Settings
from tootcheck.target import Target

pytestmark = [pytest.mark.needs_target, pytest.mark.rehearsal_verify]


@pytest.mark.check("rehearsal.upgrade")
def test_upgrade(rehearsal: RehearsalResult, request: pytest.FixtureRequest) -> None:
    result = check_upgrade(rehearsal.record)
    properties = request.node.user_properties
    properties.append(("upgrade", rehearsal.plan.describe()))
    properties += sorted({**result.metrics, **rehearsal.timings}.items())
    properties += [("note", note) for note in rehearsal.notes]
    assert result.ok, result.summary


@pytest.mark.check("rehearsal.seeds_intact")
def test_seeds_intact(rehearsal: RehearsalResult, target: Target,
                      rehearsal_db: psycopg.Connection, request: pytest.FixtureRequest) -> None:
    result = check_seeds_intact(target, rehearsal.markers, db=rehearsal_db,
                                seed_error=rehearsal.seed_error, upgrade=rehearsal.label)
    request.node.user_properties += sorted(result.metrics.items())
    assert result.ok, result.summary


@pytest.mark.check("rehearsal.data_intact")
def test_data_intact(rehearsal: RehearsalResult, target: Target,
                     request: pytest.FixtureRequest) -> None:
    """Row counts, local actors' public keys and a Sidekiq job held in Redis, before
    the upgrade and now; Sidekiq queue latency when TO got Ready and now."""
    before = rehearsal.data_before
    held = before.held_jid if before is not None else ""
    after, error = run.take_snapshot(target, None, held=held)
    crosses_47 = any(row.name == "4.7" for row in rehearsal.plan.lines)
    result = check_data_intact(before, after, error=rehearsal.data_error or error,
                               merged_duplicates_allowed=crosses_47, target_name=target.name)
    request.node.user_properties += sorted(result.metrics.items())
    request.node.user_properties += [(f"sidekiq_latency_at_ready_s.{k}", v) for k, v in
                                     sorted((rehearsal.latency_at_ready or {}).items())]
    assert result.ok, result.summary


@pytest.mark.check("rehearsal.rollback")
def test_rollback(rehearsal: RehearsalResult, target: Target, settings: Settings,
                  request: pytest.FixtureRequest) -> None:
    """Last: with --rehearse-rollback, FROM restored from the dump taken before the
    upgrade, then every seeded item verified again (against FROM)."""
    if not settings.rehearse_rollback:
        pytest.skip("rollback not rehearsed: run with --rehearse-rollback (make rehearse "
                    "ROLLBACK=1)")
    record = run.roll_back(target, rehearsal, reports_dir=settings.reports_dir)
    result = check_rollback(record)
    request.node.user_properties += sorted(result.metrics.items())
    assert result.ok, result.summary
    with run.database(target) as url:
        seeds = check_seeds_intact(target, rehearsal.markers, db=url.reveal(),
                                   seed_error=rehearsal.seed_error,
                                   upgrade=f"the rollback to {rehearsal.plan.source}")
    request.node.user_properties += [(f"after_rollback.{k}", v)
                                     for k, v in sorted(seeds.metrics.items())]
    assert seeds.ok, seeds.summary
