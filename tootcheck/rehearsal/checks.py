"""The rehearsal's live checks: the upgrade itself, and the seeded data after it.

- ``rehearsal.upgrade`` judges an :class:`~tootcheck.rehearsal.verify.UpgradeRecord`:
  the rollout completed, every Mastodon container runs TO, the migration init
  container succeeded, the start order was the one the Deployment defines (and no
  old pod ran beside a new one), and /health and streaming were available again at
  the end. Migration time and downtime are its metrics.
- ``rehearsal.seeds_intact`` checks every seeded marker through REST (media bytes
  compared) and in PostgreSQL (``tootcheck.checks.markers``).

Both run in rehearsal mode only; they never assert (the suites do).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import psycopg

from tootcheck.checks import markers as markers_mod
from tootcheck.checks.markers import MarkerSet, Outcome
from tootcheck.checks.registry import live_check
from tootcheck.model import CheckResult, CheckRun
from tootcheck.rehearsal import downtime, failfast, verify
from tootcheck.target import Target

UPGRADE = "rehearsal.upgrade"
SEEDS = "rehearsal.seeds_intact"


def _iso(t: float | None) -> str | None:
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="seconds") if t else None


def _one_line(text: str, limit: int = 300) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


@live_check(
    UPGRADE,
    faults={
        "rollout-failed": "the upgraded Deployment never became ready within the bound",
        "not-upgraded": "a Mastodon container of the running pod is not at TO",
        "migration-failed": "the migration init container did not finish with exit code 0",
        "order-violated": "a container started before the migration finished, a sidecar after "
                          "it, or an old pod ran beside a new one (Recreate)",
        "not-recovered": "/health or streaming was still unavailable when the upgrade ended",
        "downtime-unmeasured": "the poller recorded no sample for an endpoint",
    },
    modes=("rehearsal",),
    mutating=True,
)
def check_upgrade(record: verify.UpgradeRecord) -> CheckResult:
    """The upgrade FROM -> TO completed the way the manifests define it, and the
    instance came back; migration time and downtime are measured."""
    run = CheckRun(UPGRADE, record.target_name)
    step = f"{record.source} -> {record.target}"
    run.evidence["upgrade"] = step
    run.evidence["applied_at"] = _iso(record.applied_at)
    run.evidence["ready_at"] = _iso(record.ready_at)
    if record.applied_at and record.ready_at:
        run.metrics["upgrade_s"] = round(record.ready_at - record.applied_at, 1)
    run.observe()
    if record.error:
        # a failed migration's message ends with its log lines: keep them
        run.fail("rollout-failed", _one_line(record.error, 1500 if record.migration_failed
                                             else 300))
    pod = record.pod
    if pod is None:
        if not record.error:
            run.fail("rollout-failed", f"{step}: no upgraded pod was found")
    else:
        run.evidence["pod"] = (pod.get("metadata") or {}).get("name")
        for problem in verify.image_problems(pod, record.target):
            run.fail("not-upgraded", f"{step}: {problem}")
        _judge_migration(run, pod, step, record)
    for problem in verify.recreate_overlap(record.samples, record.source, record.target):
        run.fail("order-violated", f"{step}: {problem}")
        break  # one line is enough; the evidence holds the samples
    _judge_downtime(run, record, step)
    return run.result()


def _judge_migration(run: CheckRun, pod: dict[str, Any], step: str,
                     record: verify.UpgradeRecord) -> None:
    done = verify.migration(pod)
    run.observe()
    if done is None:
        run.fail("migration-failed", f"{step}: the pod has no {verify.MIGRATION_CONTAINER} "
                                     "status")
        return
    run.evidence["migration"] = {"started": _iso(done.started), "finished": _iso(done.finished),
                                 "exit_code": done.exit_code, "restarts": done.restarts,
                                 "previous_exit": done.previous_exit}
    run.metrics["db_migrate_restarts"] = float(done.restarts)
    if done.seconds is not None:
        run.metrics["migration_s"] = round(done.seconds, 1)
    if not done.succeeded:
        state = (f"exited {done.exit_code}" if done.exit_code is not None
                 else "has not terminated")
        run.fail("migration-failed", f"{step}: {done.container} {state} "
                                     f"(restarts {done.restarts})")
        return
    restarted = failfast.restart_failure(failfast.migration_verdict(pod),
                                         allow_restart=record.allow_migration_restart)
    if restarted:
        run.fail("migration-failed", f"{step}: {restarted}")
    for problem in verify.start_order_problems(pod):
        run.fail("order-violated", f"{step}: {problem}")


def _judge_downtime(run: CheckRun, record: verify.UpgradeRecord, step: str) -> None:
    found: dict[str, Any] = {}
    for probe in record.availability:
        run.observe()
        totals = downtime.downtime(record.samples, probe)
        spans = downtime.windows(record.samples, probe)
        last = max((s.t for s in record.samples if s.probe == probe), default=None)
        found[probe] = {**totals, "spans": [
            {"from": _iso(w.start), "to": _iso(w.end), "seconds": round(w.duration(last), 1),
             "failures": w.failures, "first_failure": w.detail} for w in spans]}
        if not totals["samples"]:
            run.fail("downtime-unmeasured", f"{step}: no sample of {probe} was taken")
            continue
        run.metrics[f"downtime_s.{probe}"] = totals["down_s"]
        run.metrics[f"downtime_windows.{probe}"] = float(totals["windows"])
        if not totals["ended_ok"]:
            since = next((w for w in spans if not w.recovered), None)
            detail = f" since {_iso(since.start)} (first failure: {since.detail})" if since else ""
            run.fail("not-recovered", f"{step}: {probe} still unavailable when the upgrade "
                                      f"ended{detail}")
    run.evidence["downtime"] = found


@live_check(
    SEEDS,
    faults={
        "seed-failed": "seeding before the upgrade did not complete (nothing, or not everything, "
                       "was written)",
        "marker-lost": "a seeded account, status, media, scheduled status or follow is gone",
        "media-changed": "a seeded media file's bytes, URL or row changed",
        "scheduled-late": "the seeded scheduled status is overdue beyond the grace",
    },
    modes=("rehearsal",),
)
def check_seeds_intact(
    target: Target,
    seeded: MarkerSet | None,
    *,
    db: psycopg.Connection[Any] | str,
    seed_error: str = "",
    upgrade: str = "the upgrade",
    publish_grace_s: float = markers_mod.DEFAULT_PUBLISH_GRACE_S,
    now: Callable[[], float] = time.time,
) -> CheckResult:
    """Every item seeded before the upgrade is intact after it, through REST and in
    PostgreSQL."""
    run = CheckRun(SEEDS, target.name)
    run.observe()
    if seed_error:
        run.fail("seed-failed", f"seeding before {upgrade} failed: {_one_line(seed_error)}")
    if seeded is None or seeded.count == 0:
        if not seed_error:
            run.fail("seed-failed", f"nothing was seeded before {upgrade}")
        return run.result()
    rest = markers_mod.rest_outcomes(target, seeded, publish_grace_s=publish_grace_s, now=now)
    try:
        in_db = markers_mod.db_outcomes(db, seeded, publish_grace_s=publish_grace_s, now=now)
    except psycopg.Error as exc:
        first = _one_line(str(exc).splitlines()[0] if str(exc) else type(exc).__name__, 160)
        in_db = [Outcome(kind, m.key, "lost", f"{m.key}: cannot query PostgreSQL: {first}")
                 for kind, m in seeded.items()]
    markers_mod.record(run, rest, when=f"{upgrade}, via REST")
    markers_mod.record(run, in_db, when=f"{upgrade}, in PostgreSQL")
    for label, outcomes in (("rest", rest), ("db", in_db)):
        for key, value in markers_mod.tally(outcomes, seeded.count).items():
            run.metrics[f"{key}.{label}"] = value
    run.evidence["run_id"] = seeded.run_id
    run.evidence["rest"] = markers_mod.outcomes_evidence(rest)
    run.evidence["postgresql"] = markers_mod.outcomes_evidence(in_db)
    return run.result()


ROLLBACK = "rehearsal.rollback"


@live_check(
    ROLLBACK,
    faults={
        "no-backup": "the backup before the upgrade failed: there is nothing to go back to",
        "restore-failed": "dropping, creating or restoring the database, Redis or media, or "
                          "redeploying FROM failed",
        "not-from": "after the restore the Deployment does not run FROM",
    },
    modes=("rehearsal",),
    mutating=True,
)
def check_rollback(record: Any) -> CheckResult:
    """The documented way back works: FROM restored from the dump taken before the
    upgrade, redeployed and running; restore and rollback times are its metrics.
    (The seeded data is then verified again by rehearsal.seeds_intact.)"""
    run = CheckRun(ROLLBACK, record.target_name or "kind")
    step = f"the rollback to {record.source}"
    run.evidence["rollback"] = record.to_dict()
    for name, seconds in record.timings.seconds.items():
        run.metrics[f"rollback.{name}"] = seconds
    if record.rollback_s is not None:
        run.metrics["rollback_s"] = record.rollback_s
    run.observe()
    if record.error.startswith("no backup to restore"):
        run.fail("no-backup", f"{step}: {_one_line(record.error)}")
    elif record.error:
        run.fail("restore-failed", f"{step}: {_one_line(record.error, 600)}")
    elif record.running_tag != record.source:
        run.fail("not-from", f"{step}: the Deployment runs {record.running_tag or 'nothing'}")
    return run.result()


DATA = "rehearsal.data_intact"


@live_check(
    DATA,
    faults={
        "snapshot-failed": "the data could not be read before or after the upgrade",
        "rows-lost": "a table has fewer rows after the upgrade (beyond merged duplicates)",
        "actor-key-changed": "a local actor's public key changed or vanished",
        "job-lost": "the Sidekiq job parked in the schedule set before the upgrade is gone",
    },
    modes=("rehearsal",),
    mutating=True,
)
def check_data_intact(before: Any, after: Any, *, error: str = "",
                      merged_duplicates_allowed: bool = False,
                      target_name: str = "kind") -> CheckResult:
    """The volume survives: row counts, local actors' public keys (4.7 moves them to
    keypairs), and a Sidekiq job held in Redis; queue latency is reported."""
    from tootcheck.rehearsal import dataset

    run = CheckRun(DATA, target_name)
    if error or before is None or after is None:
        run.observe()
        run.fail("snapshot-failed", _one_line(error or "no snapshot was taken"))
        return run.result()
    run.evidence["before"], run.evidence["after"] = before.to_dict(), after.to_dict()
    for table, rows in after.counts.items():
        run.metrics[f"rows.{table}"] = float(rows)
    for name, seconds in (after.latencies or {}).items():
        run.metrics[f"sidekiq_latency_s.{name}"] = seconds
    allowed = before.duplicate_uris if merged_duplicates_allowed else 0
    run.observe()
    for problem in dataset.count_losses(before.counts, after.counts, merged_duplicates=allowed):
        run.fail("rows-lost", problem)
    run.observe()
    for problem in dataset.key_changes(before.actor_keys, after.actor_keys)[:5]:
        run.fail("actor-key-changed", problem)
    run.observe()
    if before.held_jid and not after.held_jid:
        run.fail("job-lost", f"the job {before.held_jid} parked in {dataset.HELD_QUEUE} "
                             "before the upgrade is gone")
    return run.result()
