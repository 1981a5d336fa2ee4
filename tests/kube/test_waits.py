"""The one wait: bounded polls, early stop on final verdicts, context on timeout."""

from __future__ import annotations

import pytest

from tests.kube.fakes import Clock, FakeKube
from tootcheck.errors import KindNotServed
from tootcheck.kube import waits
from tootcheck.kube.readiness import Readiness


def deployment(available: int, generation: int = 1) -> dict:
    return {"kind": "Deployment", "apiVersion": "apps/v1",
            "metadata": {"name": "traefik", "namespace": "traefik", "generation": generation},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "traefik"}}},
            "status": {"observedGeneration": 1, "updatedReplicas": 1, "replicas": 1,
                       "availableReplicas": available}}


def crashing_pod() -> dict:
    return {"kind": "Pod", "apiVersion": "v1",
            "metadata": {"name": "traefik-abc", "namespace": "traefik", "labels": {"app": "traefik"}},
            "spec": {"containers": [{"name": "traefik"}]},
            "status": {"phase": "Running", "containerStatuses": [
                {"name": "traefik", "ready": False, "restartCount": 5,
                 "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                 "lastState": {"terminated": {"reason": "Error", "exitCode": 1}}}]}}


def event(name: str, reason: str, when: str, message: str, kind: str = "Pod") -> dict:
    return {"kind": "Event", "apiVersion": "v1",
            "metadata": {"name": f"{name}.{when}", "namespace": "traefik"},
            "involvedObject": {"kind": kind, "name": name}, "reason": reason, "type": "Warning",
            "lastTimestamp": when, "message": message, "count": 3}


def test_ready_when_the_object_becomes_ready():
    kube = FakeKube([deployment(available=0)])
    polls = []

    def become_ready(k: FakeKube) -> None:
        polls.append(1)
        if len(polls) >= 3:
            k.put(deployment(available=1))

    kube.on_poll.append(become_ready)
    clock = Clock()
    verdict = waits.wait_ready(kube, [waits.Watch("apps/v1", "Deployment", "traefik", "traefik")],
                               what="traefik rollout", timeout=60, clock=clock.time, sleep=clock.sleep)
    assert verdict.ready and clock.now < 60


def test_timeout_reports_state_restarts_and_events():
    kube = FakeKube([deployment(available=0), crashing_pod(),
                     event("traefik-abc", "BackOff", "2026-11-27T10:00:02Z", "Back-off restarting"),
                     event("traefik-abc", "Pulled", "2026-11-27T10:00:01Z", "Image pulled"),
                     event("unrelated", "Scheduled", "2026-11-27T10:00:00Z", "other pod")])
    clock = Clock()
    with pytest.raises(waits.NotReady) as info:
        waits.wait_ready(kube, [waits.Watch("apps/v1", "Deployment", "traefik", "traefik")],
                         what="traefik rollout", timeout=30, clock=clock.time, sleep=clock.sleep)
    text = str(info.value)
    assert text.startswith("timed out after 30s waiting for traefik rollout")
    assert "0 of 1 updated replicas available" in text
    assert "traefik waiting CrashLoopBackOff restarts=5 last=Error" in text
    assert text.index("Image pulled") < text.index("Back-off restarting")  # sorted by time
    assert "other pod" not in text


def test_missing_object_is_named():
    clock = Clock()
    with pytest.raises(waits.NotReady, match="Deployment/traefik in traefik: not found yet"):
        waits.wait_ready(FakeKube(), [waits.Watch("apps/v1", "Deployment", "traefik", "traefik")],
                         what="traefik", timeout=5, clock=clock.time, sleep=clock.sleep)


def certificate(ready: str) -> dict:
    return {"kind": "Certificate", "apiVersion": "cert-manager.io/v1",
            "metadata": {"name": "kirchner-social-tls", "namespace": "mastodon"},
            "status": {"conditions": [{"type": "Ready", "status": ready}]}}


CERT = waits.Watch("cert-manager.io/v1", "Certificate", "mastodon", "kirchner-social-tls",
                   until_served=True)


def test_a_kind_not_served_yet_is_polled_on_when_the_watch_allows_it():
    kube = FakeKube()
    kube.unserved.add("Certificate")
    polls = []

    def cert_manager_arrives(k: FakeKube) -> None:
        polls.append(1)
        if len(polls) == 3:  # the CRDs are served, cert-manager issues the Certificate
            k.unserved.clear()
            k.put(certificate("True"))

    kube.on_poll.append(cert_manager_arrives)
    clock = Clock()
    verdict = waits.wait_ready(kube, [CERT], what="mastodon", timeout=60, clock=clock.time,
                               sleep=clock.sleep)
    assert verdict.ready and 0 < clock.now < 60


def test_a_kind_never_served_times_out_within_the_bound_naming_it():
    kube = FakeKube()
    kube.unserved.add("Certificate")
    clock = Clock()
    with pytest.raises(waits.NotReady) as info:
        waits.wait_ready(kube, [CERT], what="mastodon", timeout=30, clock=clock.time,
                         sleep=clock.sleep)
    text = str(info.value)
    assert text.startswith("timed out after 30s waiting for mastodon")
    assert "Certificate/kirchner-social-tls in mastodon: Certificate not served yet" in text


def test_a_kind_not_served_fails_a_watch_that_does_not_allow_it():
    kube = FakeKube()
    kube.unserved.add("Certificate")
    clock = Clock()
    with pytest.raises(KindNotServed, match="serves no Certificate"):
        waits.wait_ready(kube, [waits.Watch("cert-manager.io/v1", "Certificate", "mastodon",
                                            "kirchner-social-tls")],
                         what="mastodon", timeout=30, clock=clock.time, sleep=clock.sleep)
    assert clock.now == 0


def test_stop_ends_the_wait_for_good_naming_why():
    kube = FakeKube()
    kube.unserved.add("Certificate")
    answers = iter([None, None, "the issuers phase failed"])
    clock = Clock()
    with pytest.raises(waits.NotReady, match="failed for good: the issuers phase failed") as info:
        waits.wait_ready(kube, [CERT], what="mastodon", timeout=600, stop=lambda: next(answers),
                         clock=clock.time, sleep=clock.sleep)
    assert str(info.value).startswith("stopped waiting for mastodon")
    assert 0 < clock.now < 600


def test_final_verdict_stops_early():
    clock = Clock()
    calls = []

    def job_failed() -> Readiness:
        calls.append(1)
        return Readiness(False, "job failed: BackoffLimitExceeded", failed=True)

    with pytest.raises(waits.NotReady, match="failed for good: job failed") as info:
        waits.wait_for(job_failed, what="migration job", timeout=600, clock=clock.time,
                       sleep=clock.sleep)
    assert len(calls) == 1 and clock.now == 0
    assert str(info.value).startswith("stopped waiting for migration job: failed for good")
    assert "timed out" not in str(info.value)


def test_extra_condition_must_hold_too():
    kube = FakeKube([deployment(available=1)])
    answers = iter([Readiness(False, "discovery 503"), Readiness(True, "discovery 200")])
    clock = Clock()
    verdict = waits.wait_ready(kube, [waits.Watch("apps/v1", "Deployment", "traefik", "traefik")],
                               what="authentik", timeout=60, extra=lambda: next(answers),
                               clock=clock.time, sleep=clock.sleep)
    assert verdict.ready and "discovery 200" in verdict.reason


def test_context_errors_never_replace_the_verdict():
    clock = Clock()

    def broken_context() -> str:
        raise RuntimeError("events API down")

    with pytest.raises(waits.NotReady) as info:
        waits.wait_for(lambda: Readiness(False, "still pending"), what="x", timeout=3,
                       context=broken_context, clock=clock.time, sleep=clock.sleep)
    assert "still pending" in str(info.value) and "context unavailable" in str(info.value)


def test_selector_watch_and_event_formatting():
    kube = FakeKube([crashing_pod()])
    found = waits.Watch("v1", "Pod", "traefik", selector="app=traefik").fetch(kube)
    assert [p["metadata"]["name"] for p in found] == ["traefik-abc"]
    assert waits.selector_string({"b": "2", "a": "1"}) == "a=1,b=2"
    line = waits.format_event(event("traefik-abc", "BackOff", "2026-11-27T10:00:02Z", "Back-off\n x"))
    assert line == "2026-11-27T10:00:02Z Warning Pod/traefik-abc BackOff (x3): Back-off x"
