"""The rehearsal's orchestration (run.upgrade, run.rehearse) against a simulated
Recreate rollout: baseline, apply, wait for the new pod, recovery, the record, the
evidence; and the refusals (FROM not running, not available before the upgrade)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.rehearsal.sim import RecreateSim, deployment_of
from tests.rehearsal.test_plan import at, overlay_docs
from tootcheck.errors import BadInput
from tootcheck.kube.apply import images
from tootcheck.rehearsal import run
from tootcheck.rehearsal.checks import check_upgrade
from tootcheck.rehearsal.downtime import Observation
from tootcheck.rehearsal.plan import make_plan
from tootcheck.target import Target
from tootcheck.testing import expect_fault, expect_ok

FROM, TO = "v4.6.3", "v4.7.2"
TARGET = Target(name="kind://tootcheck", namespace="mastodon")
FAST = {"interval": 0.02, "timeout": 10.0, "recovery": 5.0, "baseline": 5.0,
        "ready_interval": 0.05}


def renders() -> run.Renders:
    return run.Renders(at(overlay_docs(), FROM), at(overlay_docs(), TO))


def sim_probes(sim: RecreateSim) -> dict:
    return {"health": sim.probe, "streaming": sim.probe, "pods": run.pods_probe(sim, "mastodon")}


def test_upgrade_follows_the_recreate_rollout() -> None:
    docs = renders()
    sim = RecreateSim(deployment_of(docs.before))
    record = run.upgrade(sim, TARGET, make_plan(FROM, TO), docs.after, probes=sim_probes(sim),
                         api_errors=(RuntimeError,), **FAST)
    assert record.error == "" and record.ready_at is not None and record.applied_at is not None
    assert {d["kind"] for d in sim.applied} >= {"Deployment", "ConfigMap", "Service"}
    result = expect_ok(check_upgrade(record))
    down = result.metrics["downtime_s.health"]
    assert 0.2 <= down < 5, down  # terminating + no pod + migrating in the simulation
    assert result.metrics["downtime_windows.streaming"] == 1
    assert any(s.probe == "pods" and s.data and s.data[0].tag == TO for s in record.samples)


def test_a_failed_migration_stops_the_wait_at_once_and_keeps_its_log(tmp_path: Path) -> None:
    docs = renders()
    sim = RecreateSim(deployment_of(docs.before), fail_migration=True)
    plan = make_plan(FROM, TO)
    started = time.monotonic()
    record = run.upgrade(sim, TARGET, plan, docs.after, probes=sim_probes(sim),
                         api_errors=(RuntimeError,), **{**FAST, "timeout": 30.0})
    # the pod shows the failure after terminate+gone+migrate (~0.55 s); one poll later
    # the wait stops, long before the 30 s bound (and the recovery wait is skipped)
    assert time.monotonic() - started < 5.0
    assert record.migration_failed and record.ready_at is None
    assert "the migration failed: db-migrate exited 1" in record.error
    assert "PG::UniqueViolation" in record.error and "\n" not in record.error
    assert ("mastodon-new", "db-migrate", True) in sim.log_reads  # previous asked for too
    assert "previous.error" in record.migration_logs
    result = expect_fault(check_upgrade(record), "migration-failed", mentions="exited 1")
    assert {"rollout-failed", "not-recovered"} <= set(result.fault_codes)
    evidence = run.write_evidence(run.RehearsalResult(plan, None, "", record), tmp_path)
    assert "UniqueViolation" in (evidence / "db-migrate.current.log").read_text()


def test_no_baseline_means_nothing_to_measure() -> None:
    docs = renders()
    sim = RecreateSim(deployment_of(docs.before))
    down = {"health": lambda: Observation(False, "HTTP 503"), "streaming": sim.probe}
    record = run.upgrade(sim, TARGET, make_plan(FROM, TO), docs.after, probes=down,
                         api_errors=(RuntimeError,), **{**FAST, "baseline": 0.2})
    assert "not available before the upgrade began" in record.error and sim.applied == []


def test_rehearse_refuses_when_from_is_not_running(tmp_path: Path) -> None:
    docs = renders()
    sim = RecreateSim(deployment_of(docs.after))  # a reused cluster already at TO
    with pytest.raises(BadInput, match=f"runs {TO}, not FROM {FROM}"):
        run.rehearse(TARGET, make_plan(FROM, TO), docs, reports_dir=tmp_path, kube=sim)


def test_rehearse_seeds_upgrades_and_writes_evidence(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    docs = renders()
    bring_up = next(d for d in docs.before if d["kind"] == "ConfigMap")
    bring_up = {**bring_up, "data": {**bring_up["data"], "VAPID_PUBLIC_KEY": "run-key"}}
    sim = RecreateSim(deployment_of(docs.before), config=bring_up)
    original = run.upgrade

    def fast_upgrade(kube, target, plan, after, **kwargs):  # type: ignore[no-untyped-def]
        return original(kube, target, plan, after, probes=sim_probes(sim),
                        api_errors=(RuntimeError,), **FAST)

    monkeypatch.setattr(run, "upgrade", fast_upgrade)
    # TARGET has no accounts: seeding fails at once and says so; the upgrade still runs
    result = run.rehearse(TARGET, make_plan(FROM, TO), docs, reports_dir=tmp_path, kube=sim)
    assert "writing markers failed" in result.seed_error and result.markers is not None
    assert result.record.ready_at is not None and set(result.timings) == {"seed_s", "upgrade_s"}
    evidence = tmp_path / run.EVIDENCE_DIR
    plan = json.loads((evidence / "plan.json").read_text())
    assert (plan["from"], plan["to"], plan["steps"][0]["name"]) == (FROM, TO, "bring-up")
    upgrade = json.loads((evidence / "upgrade.json").read_text())
    assert upgrade["pod"]["images"]["web"].endswith(TO)
    assert json.loads((evidence / "markers.json").read_text())["target"] == TARGET.name
    assert sim.config["data"]["VAPID_PUBLIC_KEY"] == "run-key"  # the upgrade kept the run's key
    assert "VAPID_PUBLIC_KEY keeps the value set at bring-up" in result.notes
    assert any(d["kind"] == "Deployment" for d in result.applied)
    assert any(n.startswith("not preloaded") and f"mastodon:{TO}" in n for n in result.notes)
    sim.node_images = {*images(docs.after), "docker.io/library/extra:1"}
    assert run.not_preloaded(sim, docs.after) == ()
