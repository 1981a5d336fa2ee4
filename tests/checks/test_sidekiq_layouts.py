"""The Sidekiq checks on the Redis data of Sidekiq 7.x and 8.x (Mastodon 4.4 and 4.5+).

The real Debian Sidekiq 6.4 runs in tests/checks/test_sidekiq.py; here
tests/peers/sidekiq_layouts.py writes what Sidekiq 7.3.9 and 8.1.7 write (heartbeat hash,
``<identity>:work``, capsules, second or millisecond stamps, retry/dead entries) into a
real Redis, and each check must pass on a healthy layout and report each fault.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator

import pytest
import redis

from tests.peers.databases import RedisPeer
from tests.peers.sidekiq import POD_NAME, QUEUE_WEIGHTS
from tests.peers.sidekiq_layouts import (
    MASTODON_WEIGHTS,
    VERSIONS,
    SidekiqWriter,
    Version,
    capsule_mode,
    mastodon_queues_match,
)
from tootcheck.checks.sidekiq import check_health, check_queues_drain
from tootcheck.clients.sidekiq import MASTODON_QUEUES, failures_since, read_snapshot, redis_now
from tootcheck.testing import expect_fault, expect_ok

BEAT_BOUND_S = 30.0


@pytest.fixture(scope="module")
def layout_redis(make_redis: Callable[..., RedisPeer]) -> RedisPeer:
    return make_redis(appendonly=False)


@pytest.fixture
def url(layout_redis: RedisPeer) -> Iterator[str]:
    address = layout_redis.url(0)
    with redis.Redis.from_url(address) as conn:
        conn.flushdb()
    yield address


@pytest.fixture(params=VERSIONS)
def writer(request: pytest.FixtureRequest, url: str) -> Iterator[SidekiqWriter]:
    version: Version = request.param
    conn = redis.Redis.from_url(url)
    try:
        yield SidekiqWriter(conn, version, POD_NAME)
    finally:
        conn.close()


def test_queue_list_follows_mastodons_sidekiq_yml() -> None:
    # config/sidekiq.yml at Lastorder-DC/mastodon 1ebb87a6 (4.5.0-alpha, the newest there)
    assert MASTODON_QUEUES == ("default", "push", "ingress", "mailers", "pull", "scheduler",
                               "fasp")
    assert mastodon_queues_match()
    assert {q: w for q, w in MASTODON_WEIGHTS.items() if w} == QUEUE_WEIGHTS
    assert capsule_mode(MASTODON_WEIGHTS) == "weighted"
    assert capsule_mode({"a": 0}) == "strict" and capsule_mode({"a": 1, "b": 1}) == "random"


def test_layout_is_what_the_version_writes(writer: SidekiqWriter, url: str) -> None:
    job = writer.push(writer.job("DistributionWorker", [1]))
    assert writer.fetch("default") == job
    writer.beat(processed=3)
    conn = writer.conn
    fields = {k.decode(): v.decode() for k, v in conn.hgetall(writer.identity).items()}
    info = json.loads(fields["info"])
    assert set(fields) >= {"info", "busy", "beat", "rtt_us", "quiet", "rss"}
    assert ("concurrency" in fields) is writer.millis  # 8.x writes it into the hash
    assert ("capsules" in info) is writer.millis and ("concurrency" in info) is not writer.millis
    assert info["queues"] == list(MASTODON_QUEUES)
    assert conn.hlen(f"{writer.identity}:work") == 1 and not conn.exists(
        f"{writer.identity}:workers")
    assert isinstance(job["enqueued_at"], int) is writer.millis
    assert conn.get("stat:processed") == b"3"
    (proc,) = read_snapshot(conn).processes
    assert proc.work_layout == "work" and proc.busy == 1 and proc.version == writer.version
    assert proc.concurrency == 5 and proc.queues == MASTODON_QUEUES
    assert proc.work[0].job is not None and proc.work[0].job.job_class == "DistributionWorker"
    assert proc.work[0].job.latency(time.time()) < 5


# ------------------------------------------------------------------ health


def test_health_ok(writer: SidekiqWriter, url: str) -> None:
    writer.push(writer.job("DistributionWorker", [1]))
    writer.beat()
    result = expect_ok(check_health(url, POD_NAME, max_beat_age_s=BEAT_BOUND_S))
    assert result.metrics["processes_of_pod"] == 1.0
    assert result.metrics["latency_s.default"] < 5
    assert result.evidence["processes"][0]["version"] == writer.version


def test_health_stale_heartbeat(writer: SidekiqWriter, url: str) -> None:
    writer.beat(at=time.time() - 120)
    expect_fault(check_health(url, POD_NAME, max_beat_age_s=BEAT_BOUND_S), "stale-heartbeat",
                 mentions="last beat")


def test_health_expired_hash(writer: SidekiqWriter, url: str) -> None:
    writer.beat()
    writer.expire_hash()
    result = check_health(url, POD_NAME, max_beat_age_s=BEAT_BOUND_S)
    expect_fault(result, "stale-heartbeat", mentions="has expired")
    expect_fault(result, "no-process", mentions=POD_NAME)


def test_health_no_process_of_this_pod(writer: SidekiqWriter, url: str) -> None:
    writer.beat()
    expect_fault(check_health(url, "mastodon-5b7c9d-zzzzz"), "no-process",
                 mentions=POD_NAME)


def test_health_quiet(writer: SidekiqWriter, url: str) -> None:
    writer.quiet = True
    writer.beat()
    expect_fault(check_health(url, POD_NAME, max_beat_age_s=BEAT_BOUND_S), "process-quiet",
                 mentions="quiet")


def test_health_unserved_queue(writer: SidekiqWriter, url: str) -> None:
    del writer.weights["fasp"]
    writer.beat()
    expect_fault(check_health(url, POD_NAME, max_beat_age_s=BEAT_BOUND_S), "queue-unserved",
                 mentions="fasp")


def test_health_queue_latency(writer: SidekiqWriter, url: str) -> None:
    writer.push(writer.job("MailJob", [1], queue="mailers", created_at=time.time() - 601),
                enqueued_at=time.time() - 600)
    writer.beat()
    result = check_health(url, POD_NAME, max_beat_age_s=BEAT_BOUND_S, max_latency_s=60)
    expect_fault(result, "queue-latency", mentions="mailers")
    assert 600 <= result.metrics["latency_s.mailers"] < 700  # not x1000: stamps understood


# ------------------------------------------------------------------ queues drain


def test_queues_drain_ok(writer: SidekiqWriter, url: str) -> None:
    job = writer.push(writer.job("DistributionWorker", [1]))
    taker = threading.Timer(0.3, writer.fetch, args=("default",))
    taker.start()
    try:
        result = check_queues_drain(url, drain_timeout_s=5, window_s=0.5, interval_s=0.1)
    finally:
        taker.join(5)
    expect_ok(result)
    assert result.metrics["backlog_at_start"] == 1.0
    assert json.loads(writer.work_state.popitem()[1]["payload"])["jid"] == job["jid"]


def test_queues_drain_stuck(writer: SidekiqWriter, url: str) -> None:
    writer.push(writer.job("SlowJob", [0], queue="mailers"))
    writer.beat()
    # nothing fetches here at all: no bound is too short to prove the queue stuck
    expect_fault(check_queues_drain(url, drain_timeout_s=0.2, window_s=0.2, interval_s=0.05),
                 "queue-stuck", mentions="mailers")


def test_queues_drain_retry_growing(writer: SidekiqWriter, url: str) -> None:
    run_started = redis_now(writer.conn)
    writer.fail(writer.job("FailingJob", [0]))
    result = check_queues_drain(url, drain_timeout_s=1, window_s=0.1, interval_s=0.1,
                                failures_since=run_started)
    expect_fault(result, "retry-growing", mentions="FailingJob (RuntimeError)")


def test_failure_in_the_same_millisecond_as_the_window_start_counts() -> None:
    since = 1_800_000_000.0007  # an 8.x failed_at in that millisecond reads ...000.000
    entry = json.dumps({"class": "FailingJob", "jid": "j", "queue": "default",
                        "failed_at": 1_800_000_000_000, "retry_count": 0})
    assert len(failures_since(since, [entry], []).retried) == 1
    assert not failures_since(since + 0.002, [entry], []).retried


def test_queues_drain_old_failure_is_not_new(writer: SidekiqWriter, url: str) -> None:
    """A retry entry rescheduled into the future whose failure is old: not in the window
    (failed_at/retried_at read in the version's unit)."""
    first = writer.fail(writer.job("FailingJob", [0]), at=time.time() - 3600, delay_s=7200)
    writer.fail(first, at=time.time() - 1800, delay_s=7200)
    result = check_queues_drain(url, drain_timeout_s=1, window_s=0.2, interval_s=0.1)
    expect_ok(result)
    assert result.metrics["retried"] == 0.0


def test_queues_drain_dead_growing(writer: SidekiqWriter, url: str) -> None:
    run_started = redis_now(writer.conn)
    writer.die(writer.job("DyingJob", [0], retry=0))
    result = check_queues_drain(url, drain_timeout_s=1, window_s=0.1, interval_s=0.1,
                                failures_since=run_started)
    expect_fault(result, "dead-growing", mentions="DyingJob")
