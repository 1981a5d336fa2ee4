"""rehearsal.upgrade: the upgraded pod judged from its status, and availability measured
by the real poller against a real TLS site (an outage that heals, one that does not)."""

from __future__ import annotations

import copy

import pytest

from tests.peers.tls import LocalCA
from tests.rehearsal.conftest import Site, running_site
from tests.rehearsal.pods import T0, mastodon_pod
from tootcheck.rehearsal import verify
from tootcheck.rehearsal.checks import check_upgrade
from tootcheck.rehearsal.downtime import (
    HEALTH_PATH,
    STREAMING_HEALTH_PATH,
    Poller,
    Sample,
    availability_probes,
)
from tootcheck.rehearsal.verify import PodState, UpgradeRecord
from tootcheck.testing import expect_fault, expect_ok
from tootcheck.waiting import wait_until

FROM, TO = "v4.6.3", "v4.7.2"


def outage(site: Site, *, heal: bool) -> list[Sample]:
    """Real samples: both endpoints up, then down (502 like Traefik without a backend),
    then (if ``heal``) up again."""
    poller = Poller(availability_probes(site.target), interval=0.05, max_duration=30).start()
    try:
        assert poller.wait_up(("health", "streaming"), timeout=10)
        for path in (HEALTH_PATH, STREAMING_HEALTH_PATH):
            site.fail(path)
        wait_until(lambda: sum(not x.ok for x in poller.samples) >= 4,
                   what="failed samples of both endpoints", timeout=10, interval=0.05)
        if heal:
            for path in (HEALTH_PATH, STREAMING_HEALTH_PATH):
                site.heal(path)
            assert poller.wait_up(("health", "streaming"), timeout=10)
    finally:
        samples = poller.stop()
    return samples


@pytest.fixture(scope="module")
def healed(local_ca: LocalCA) -> list[Sample]:
    with running_site(local_ca) as site:
        return outage(site, heal=True)


def record(samples: list[Sample], **pod_args: object) -> UpgradeRecord:
    pod = mastodon_pod(TO, **pod_args)  # type: ignore[arg-type]
    return UpgradeRecord(FROM, TO, "kind://tootcheck", pod=pod, samples=samples,
                         applied_at=T0 - 20, ready_at=T0 + 60)


def test_healthy_upgrade_reports_migration_time_and_downtime(healed: list[Sample]) -> None:
    pods = [Sample(T0 - 10, "pods", True, "", [PodState("uid-old", "old", FROM, "Running", True,
                                                        ("web",))]),
            Sample(T0 - 5, "pods", True, "", []),
            Sample(T0 + 30, "pods", True, "", [PodState("uid-new", "new", TO, "Pending", False, ())])]
    result = expect_ok(check_upgrade(record(healed + pods)))
    assert result.metrics["migration_s"] == 42 and result.metrics["upgrade_s"] == 80
    assert result.metrics["downtime_s.health"] > 0 and result.metrics["downtime_windows.health"] == 1
    assert result.metrics["downtime_s.streaming"] > 0
    assert result.evidence["downtime"]["health"]["spans"][0]["first_failure"] == "HTTP 502"
    assert result.evidence["migration"]["exit_code"] == 0


def test_migration_that_needed_a_restart_fails_unless_the_operator_accepts_it(
        healed: list[Sample]) -> None:
    flaky = record(healed, migrate_restarts=1, previous_exit=1)
    result = expect_fault(check_upgrade(flaky), "migration-failed",
                          mentions="succeeded only after an earlier run exited 1")
    assert result.metrics["db_migrate_restarts"] == 1
    flaky.allow_migration_restart = True  # --rehearse-allow-migration-restart
    accepted = expect_ok(check_upgrade(flaky))
    assert accepted.evidence["migration"]["previous_exit"] == 1


def test_not_recovered(site: Site) -> None:
    samples = outage(site, heal=False)
    result = expect_fault(check_upgrade(record(samples)), "not-recovered",
                          mentions="health still unavailable")
    assert "HTTP 502" in result.summary


def test_not_recovered_when_the_server_is_gone(site: Site) -> None:
    poller = Poller(availability_probes(site.target), interval=0.05, max_duration=30).start()
    try:
        assert poller.wait_up(("health", "streaming"), timeout=10)
        site.peer.stop()
        wait_until(lambda: sum(not x.ok for x in poller.samples) >= 2, what="refused samples",
                   timeout=10, interval=0.05)
    finally:
        samples = poller.stop()
    expect_fault(check_upgrade(record(samples)), "not-recovered", mentions="ConnectionError")


def test_not_upgraded(healed: list[Sample]) -> None:
    expect_fault(check_upgrade(record(healed, web_tag=FROM)), "not-upgraded",
                 mentions=f"web runs ghcr.io/mastodon/mastodon:{FROM}, not {TO}")


@pytest.mark.parametrize(("pod_args", "mentions"), [
    ({"migrate_exit": 1}, "db-migrate exited 1"),
    ({"migrate": (10, None)}, "has not terminated"),
])
def test_migration_failed(healed: list[Sample], pod_args: dict, mentions: str) -> None:
    expect_fault(check_upgrade(record(healed, **pod_args)), "migration-failed", mentions=mentions)


def test_migration_status_missing(healed: list[Sample]) -> None:
    rec = record(healed)
    assert rec.pod is not None
    rec.pod["status"]["initContainerStatuses"] = rec.pod["status"]["initContainerStatuses"][:2]
    expect_fault(check_upgrade(rec), "migration-failed", mentions="no db-migrate status")


@pytest.mark.parametrize(("pod_args", "mentions"), [
    ({"containers_at": 40}, "container sidekiq started 12s before db-migrate finished"),
    ({"sidecars_at": (2, 30)}, "sidecar redis started 20s after db-migrate began"),
])
def test_order_violated(healed: list[Sample], pod_args: dict, mentions: str) -> None:
    expect_fault(check_upgrade(record(healed, **pod_args)), "order-violated", mentions=mentions)


def test_old_pod_beside_new_is_an_order_violation(healed: list[Sample]) -> None:
    both = Sample(T0 + 1, "pods", True, "", [
        PodState("uid-old", "mastodon-old", FROM, "Running", False, ("streaming", "web")),
        PodState("uid-new", "mastodon-new", TO, "Pending", False, ())])
    expect_fault(check_upgrade(record([*healed, both])), "order-violated",
                 mentions="old pod mastodon-old (v4.6.3) still ran streaming, web")


def test_rollout_failed(healed: list[Sample]) -> None:
    timed_out = record(healed)
    timed_out.error = ("timed out after 1200s waiting for Deployment mastodon/mastodon at v4.7.2; "
                       "last state: init container db-migrate running")
    timed_out.pod = mastodon_pod(TO, migrate=(10, None))
    result = expect_fault(check_upgrade(timed_out), "rollout-failed", mentions="timed out")
    assert "migration-failed" in result.fault_codes
    no_pod = UpgradeRecord(FROM, TO, "kind://tootcheck", samples=healed)
    expect_fault(check_upgrade(no_pod), "rollout-failed", mentions="no upgraded pod")


def test_downtime_unmeasured(healed: list[Sample]) -> None:
    only_health = [x for x in healed if x.probe == "health"]
    expect_fault(check_upgrade(record(only_health)), "downtime-unmeasured",
                 mentions="no sample of streaming")


def test_record_serialises_without_the_whole_pod(healed: list[Sample]) -> None:
    rec = record([*healed, Sample(T0, "pods", True, "1 pod(s)",
                                  [PodState("u", "p", TO, "Running", False, ("web",))])])
    data = rec.to_dict()
    assert data["pod"]["images"]["db-migrate"].endswith(TO)
    assert data["samples"][-1]["data"][0]["tag"] == TO
    assert "spec" not in data["pod"]


def test_verify_helpers_on_restarted_containers() -> None:
    pod = mastodon_pod(TO)
    restarted = copy.deepcopy(pod)
    sidecar = restarted["status"]["initContainerStatuses"][1]
    sidecar["restartCount"] = 1
    sidecar["state"]["running"]["startedAt"] = "2027-01-15T09:00:00Z"  # restarted much later
    assert verify.start_order_problems(restarted) == []
    assert verify.migration(pod).seconds == 42
    assert verify.mastodon_tag(pod) == TO
    assert verify.image_problems({"spec": {"containers": [{"name": "x", "image": "nginx:1"}]}},
                                 TO) == ["the pod runs no Mastodon image"]
