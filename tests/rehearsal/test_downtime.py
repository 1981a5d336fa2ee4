"""Downtime: the pure window computation, and the bounded poller against a real TLS
site that goes down and comes back."""

from __future__ import annotations

import pytest

from tests.rehearsal.conftest import Site
from tootcheck.rehearsal.downtime import (
    HEALTH_PATH,
    Observation,
    Poller,
    Sample,
    Window,
    availability_probes,
    downtime,
    windows,
)
from tootcheck.waiting import wait_until


def s(t: float, ok: bool, detail: str = "", probe: str = "health") -> Sample:
    return Sample(t, probe, ok, detail or ("HTTP 200" if ok else "HTTP 502"))


def test_windows_open_at_first_failure_and_close_at_recovery() -> None:
    samples = [s(5, False, "refused"), s(0, True), s(1, False), s(2, False), s(3, True),
               s(4, False, "refused"), s(2.5, True, probe="streaming"), s(6, False)]
    assert windows(samples, "health") == [
        Window("health", 1, 3, 2, "HTTP 502", last_ok_before=0),
        Window("health", 4, None, 3, "refused", last_ok_before=3),
    ]
    totals = downtime(samples, "health")
    # failures at 1,2 then 4,5,6: certainly down 1 + 2 s; reported 2 + 2 s; at most 3 + 2 s
    assert totals == {"samples": 7, "windows": 2, "down_s": 4.0, "longest_s": 2.0,
                      "lower_bound_s": 3.0, "upper_bound_s": 5.0, "recovered": False,
                      "ended_ok": False}
    assert totals["lower_bound_s"] <= totals["down_s"] <= totals["upper_bound_s"]
    assert downtime(samples, "streaming")["windows"] == 0


def test_a_run_starting_down_and_an_empty_run() -> None:
    first = windows([s(0, False), s(1, True)], "health")
    assert first == [Window("health", 0, 1, 1, "HTTP 502", None)]
    assert first[0].upper_bound is None and first[0].duration() == 1
    assert first[0].lower_bound == 0  # one failing sample: down for an instant at least
    assert downtime([], "health") == {"samples": 0, "windows": 0, "down_s": 0.0, "longest_s": 0.0,
                                      "lower_bound_s": 0.0, "upper_bound_s": 0.0,
                                      "recovered": True, "ended_ok": False}


def test_poller_measures_a_real_outage(site: Site) -> None:
    poller = Poller(availability_probes(site.target), interval=0.05, max_duration=30).start()
    try:
        assert poller.wait_up(("health", "streaming"), timeout=10)
        site.fail(HEALTH_PATH, 503)
        wait_until(lambda: sum(1 for x in poller.samples if x.probe == "health" and not x.ok) >= 3,
                   what="three failed /health samples", timeout=10, interval=0.05)
        site.heal(HEALTH_PATH)
        assert poller.wait_up(("health",), timeout=10)
    finally:
        samples = poller.stop()
    (window,) = windows(samples, "health")
    assert window.recovered and window.failures >= 3 and window.detail == "HTTP 503"
    assert 0 < window.duration() < 10 and window.upper_bound >= window.duration()
    assert 0 < window.lower_bound <= window.duration()
    assert windows(samples, "streaming") == []
    assert poller.hit_bound == []


def test_poller_is_bounded_and_survives_probe_errors() -> None:
    def broken() -> Observation:
        raise ConnectionResetError("peer reset")

    poller = Poller({"broken": broken}, interval=0.02, max_duration=0.3).start()
    wait_until(lambda: poller.hit_bound == ["broken"], what="the poller to reach its bound",
               timeout=5, interval=0.05)
    samples = poller.stop()
    assert samples and all(not x.ok and "ConnectionResetError" in x.detail for x in samples)
    assert not poller.is_up(["broken"])


@pytest.mark.parametrize("names", [("health",), ("health", "streaming")])
def test_is_up_needs_a_sample_of_each(names: tuple[str, ...]) -> None:
    poller = Poller({}, interval=0.1)
    assert not poller.is_up(names)


def test_the_service_probe_needs_a_real_answer_not_just_a_process(site: Site) -> None:
    import json

    from tests.peers.tls import Reply
    from tootcheck.redaction import Secret
    from tootcheck.rehearsal.downtime import INSTANCE_PATH, ServiceProbe
    from tootcheck.target import Account

    probe = availability_probes(site.target)["service"]
    assert probe() == Observation(True, "HTTP 200 JSON")  # /api/v2/instance, no token
    site.site.replies[INSTANCE_PATH] = Reply(200, {"Content-Type": "text/html"}, b"<html>")
    assert probe() == Observation(False, "HTTP 200 but not JSON")  # a maintenance page
    site.fail(INSTANCE_PATH, 500)
    assert probe() == Observation(False, "HTTP 500")
    with_token = site.target.with_(accounts={"test": Account("tootcheck", Secret("t0k", "t"))})
    timeline = ServiceProbe(with_token)
    assert timeline.url.endswith("/api/v1/timelines/home?limit=1")
    site.site.replies["/api/v1/timelines/home"] = Reply(
        200, {"Content-Type": "application/json"}, json.dumps({"error": "x"}).encode())
    assert timeline() == Observation(False, "HTTP 200 but a JSON dict")
    site.site.replies["/api/v1/timelines/home"] = Reply(
        200, {"Content-Type": "application/json"}, b"[]")
    assert timeline() == Observation(True, "HTTP 200 JSON")
    assert ("kirchner.social", "/api/v1/timelines/home") in site.site.requests_seen
