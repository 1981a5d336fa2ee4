"""The Sidekiq checks against a real Sidekiq (Debian's 6.4) on a real Redis.

Parsing is proven on literal data of all three layouts (6.x ``:workers`` and
float stamps, 7.x ``:work``, 8.x ``:work``, capsules and millisecond stamps).
Each check is shown passing against a healthy Sidekiq and failing with each
declared fault against a Sidekiq broken for real: SIGSTOP (stale heartbeat),
SIGTSTP (quiet), a queue left out of ``-q`` (unserved, stuck, old jobs), jobs
that raise (retry, dead), no process (stopped, or another pod's), no Sidekiq
behind the REST API (round trip), a closed port (Redis unreachable).
Each fault scenario uses its own Redis database, so processes never mix.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import redis

from tests.peers.databases import PostgresPeer, RedisPeer, free_port, scratch_dir
from tests.peers.mastodon_rest import running_rest_peer
from tests.peers.sidekiq import POD_NAME, SidekiqPeer, push_job
from tootcheck.checks.sidekiq import check_health, check_queues_drain, check_roundtrip
from tootcheck.clients.sidekiq import (
    MASTODON_QUEUES,
    Identity,
    epoch_seconds,
    failures_since,
    parse_job,
    parse_process,
    parse_queue,
    read_snapshot,
    redis_now,
)
from tootcheck.redaction import Secret
from tootcheck.target import Account, Target
from tootcheck.testing import expect_fault, expect_ok
from tootcheck.waiting import Poll, wait_until

BEAT_BOUND_S = 2.0  # the peer beats every 0.5 s
FAST_BEAT_S = 0.1  # the peers whose beat a fault test watches beat faster, to age sooner
STALE_S = 0.4  # four of those beats missed
FAIL_AFTER_S = 0.2  # a failing job fails this long after it is taken: after the check began
ALL_BUT_MAILERS = tuple(q for q in MASTODON_QUEUES if q != "mailers")

# ------------------------------------------------------------ pure parsing

NOW = 1_800_000_000.0
INFO_6 = {"hostname": "mastodon-6f-abc", "started_at": NOW - 600, "pid": 7, "tag": "",
          "concurrency": 5, "queues": ["default", "push"], "labels": [],
          "identity": "mastodon-6f-abc:7:0a1b2c3d4e5f"}
INFO_8 = {"hostname": "mastodon-6f-abc", "started_at": NOW - 600, "pid": 7, "tag": "",
          "capsules": {"default": {"concurrency": 5, "mode": "weighted",
                                   "weights": {"default": 8, "push": 6, "scheduler": 0}}},
          "weights": [{"default": 8, "push": 6, "scheduler": 0}],
          "labels": [], "identity": "mastodon-6f-abc:7:0a1b2c3d4e5f", "version": "8.1.7",
          "embedded": False}
JOB_6 = {"class": "DistributionWorker", "args": [1], "queue": "default", "jid": "a" * 24,
         "retry": True, "created_at": NOW - 30.5, "enqueued_at": NOW - 30.0}
JOB_8 = {**JOB_6, "created_at": int((NOW - 30.5) * 1000), "enqueued_at": int((NOW - 30) * 1000)}


def _hash(info: dict[str, object], beat: float, **extra: str) -> dict[bytes, bytes]:
    fields = {"info": json.dumps(info), "busy": "1", "beat": repr(beat), "quiet": "false",
              "rss": "204800", "rtt_us": "120", **extra}
    return {k.encode(): v.encode() for k, v in fields.items()}


def _work(job: dict[str, object]) -> dict[bytes, bytes]:
    value = {"queue": "default", "payload": json.dumps(job), "run_at": int(NOW - 2)}
    return {b"tid-1": json.dumps(value).encode()}


def test_timestamps_in_both_formats() -> None:
    assert epoch_seconds(NOW) == NOW
    assert epoch_seconds(int(NOW * 1000)) == NOW
    assert epoch_seconds(b"1800000000.25") == NOW + 0.25
    assert epoch_seconds("1800000000250") == NOW + 0.25
    assert epoch_seconds(None) is None and epoch_seconds("soon") is None


def test_identity_keeps_colons_in_host() -> None:
    assert Identity.parse("mastodon-6f-abc:7:0a1b2c3d4e5f") == \
        Identity("mastodon-6f-abc", 7, "0a1b2c3d4e5f")
    assert Identity.parse("host:with:colons:42:abc").hostname == "host:with:colons"


@pytest.mark.parametrize(("info", "job", "busy_key", "layout", "concurrency"), [
    (INFO_6, JOB_6, "workers", "workers", 5),   # Sidekiq 6.x
    ({**INFO_6, "version": "7.3.9"}, JOB_6, "work", "work", 5),  # 7.x: :work, float stamps
    (INFO_8, JOB_8, "work", "work", 10),  # 8.x: capsules, millisecond stamps
])
def test_process_layouts(info: dict[str, object], job: dict[str, object], busy_key: str,
                         layout: str, concurrency: int) -> None:
    extra = {"concurrency": str(concurrency)} if concurrency != 5 else {}
    work = _work(job)
    proc = parse_process(info["identity"], _hash(info, NOW - 3.0, **extra),  # type: ignore[arg-type]
                         work=work if busy_key == "work" else {},
                         workers=work if busy_key == "workers" else {})
    assert proc.hostname == "mastodon-6f-abc" and proc.pid == 7
    assert proc.beat_age(NOW) == pytest.approx(3.0)
    assert proc.work_layout == layout and proc.busy == 1 and not proc.quiet
    assert proc.concurrency == concurrency
    assert set(proc.queues) >= {"default", "push"}
    assert proc.work[0].job is not None and proc.work[0].job.job_class == "DistributionWorker"
    assert proc.work[0].job.latency(NOW) == pytest.approx(30.0)


def test_expired_process_hash_is_marked() -> None:
    proc = parse_process("mastodon-6f-abc:7:0a1b2c3d4e5f", {})
    assert proc.info_missing and proc.beat is None and proc.hostname == "mastodon-6f-abc"


def test_queue_latency_from_oldest_job_in_both_formats() -> None:
    assert parse_queue("default", 3, json.dumps(JOB_6)).latency(NOW) == pytest.approx(30.0)
    assert parse_queue("default", 3, json.dumps(JOB_8)).latency(NOW) == pytest.approx(30.0)
    assert parse_queue("push", 0, None).latency(NOW) == 0.0
    wrapped = parse_job({**JOB_6, "class": "Sidekiq::ActiveJob::Wrapper", "wrapped": "MailJob"})
    assert wrapped is not None and wrapped.job_class == "MailJob"
    assert parse_job(b"not json") is None


def test_failures_since_uses_last_failure_time() -> None:
    old = {**JOB_6, "failed_at": NOW - 100, "retry_count": 0, "error_class": "RuntimeError"}
    retried_now = {**old, "retried_at": NOW + 1, "retry_count": 1}
    new_ms = {**JOB_8, "failed_at": int((NOW + 2) * 1000), "retry_count": 0}
    found = failures_since(NOW, [json.dumps(old), json.dumps(retried_now), json.dumps(new_ms)],
                           [json.dumps(JOB_6)])
    assert [j.retry_count for j in found.retried] == [1, 0]
    assert len(found.died) == 1


# ------------------------------------------------------------- real peers


@dataclass
class Stack:
    redis: RedisPeer
    dsn: str
    sidekiq: SidekiqPeer
    target: Target


@pytest.fixture(scope="module")
def stack(sidekiq_peers: None, postgres: PostgresPeer, make_redis) -> Iterator[Stack]:
    dsn = postgres.create_database(f"sidekiq_{secrets.token_hex(4)}")
    redis_peer = make_redis(appendonly=False)
    root = scratch_dir("sidekiq")
    try:
        with running_rest_peer(dsn, redis_peer.url(0), root) as (_, target):
            sidekiq = SidekiqPeer(redis_peer.url(0), root, database_url=dsn)
            sidekiq.start()
            try:
                yield Stack(redis_peer, dsn, sidekiq, target)
            finally:
                sidekiq.stop()
    finally:
        shutil.rmtree(root, ignore_errors=True)


_next_db = iter(range(1, 16))


@contextlib.contextmanager
def sidekiq_on_own_db(stack: Stack, **kwargs: object) -> Iterator[tuple[SidekiqPeer, str]]:
    """A fresh Redis database with its own running Sidekiq (for one fault)."""
    url = stack.redis.url(next(_next_db))
    peer = SidekiqPeer(url, scratch_dir("sidekiq"), **kwargs)  # type: ignore[arg-type]
    try:
        peer.start()
        yield peer, url
    finally:
        peer.stop()
        shutil.rmtree(peer.root, ignore_errors=True)


@pytest.fixture(scope="module")
def failing(stack: Stack) -> Iterator[tuple[SidekiqPeer, str]]:
    """A healthy Sidekiq on its own database, shared by the tests that make jobs fail."""
    with sidekiq_on_own_db(stack) as started:
        yield started


@pytest.fixture(scope="module")
def partial(stack: Stack) -> Iterator[tuple[SidekiqPeer, str]]:
    """A Sidekiq started without `-q mailers`: that queue is never fetched."""
    with sidekiq_on_own_db(stack, queues=ALL_BUT_MAILERS) as started:
        yield started


class FaultPeers:
    """Fast-beating Sidekiqs on their own databases for the health faults, one at a time:
    a test that leaves its peer healthy (SIGSTOP then SIGCONT) hands it to the next test;
    one that quiets or stops it ends it, and the next test gets a fresh one."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.current: contextlib.ExitStack | None = None
        self.peer: tuple[SidekiqPeer, str] | None = None

    def healthy(self) -> tuple[SidekiqPeer, str]:
        if self.peer is None:
            self.current = contextlib.ExitStack()
            self.peer = self.current.enter_context(
                sidekiq_on_own_db(self.stack, beat_pause_s=FAST_BEAT_S))
        return self.peer

    def spent(self) -> None:
        """The peer was quieted or stopped: the next test needs another."""
        if self.current is not None:
            self.current.close()
        self.current = self.peer = None


@pytest.fixture(scope="module")
def fault_peers(stack: Stack) -> Iterator[FaultPeers]:
    peers = FaultPeers(stack)
    try:
        yield peers
    finally:
        peers.spent()


def _wait_for_process(url: str, what: str, predicate) -> None:
    with redis.Redis.from_url(url) as conn:
        def poll() -> Poll[bool]:
            procs = read_snapshot(conn).processes
            return Poll(any(predicate(p) for p in procs), True, f"{len(procs)} process(es)")
        wait_until(poll, what=what, timeout=10, interval=0.02)


# ------------------------------------------------------------------ health


def test_health_ok(stack: Stack) -> None:
    result = expect_ok(check_health(stack.redis.url(0), POD_NAME, max_beat_age_s=BEAT_BOUND_S))
    assert result.metrics["processes_of_pod"] == 1.0
    assert result.metrics["beat_age_s"] < BEAT_BOUND_S
    assert "latency_s.default" in result.metrics


def test_health_no_process_of_this_pod(stack: Stack) -> None:
    # the real Sidekiq runs, but as another pod: the deployment's pod has none
    result = check_health(stack.redis.url(0), "mastodon-5b7c9d-zzzzz")
    expect_fault(result, "no-process", mentions=POD_NAME)


def test_health_stale_heartbeat(fault_peers: FaultPeers) -> None:
    peer, url = fault_peers.healthy()
    try:
        peer.pause()
        try:
            _wait_for_process(url, "the beat to age",
                              lambda p: (p.beat or 0) < time.time() - STALE_S - 0.1)
            result = check_health(url, POD_NAME, max_beat_age_s=STALE_S)
        finally:
            peer.resume()
        # resumed, it beats again: healthy for the next fault
        _wait_for_process(url, "the beat after SIGCONT",
                          lambda p: (p.beat or 0) > time.time() - 1.0)
    except BaseException:
        fault_peers.spent()  # in a state not known: the next fault gets a fresh one
        raise
    expect_fault(result, "stale-heartbeat", mentions="last beat")


def test_health_quiet_process(fault_peers: FaultPeers) -> None:
    peer, url = fault_peers.healthy()
    try:
        peer.quiet()
        _wait_for_process(url, "quiet=true", lambda p: p.quiet)
        result = check_health(url, POD_NAME, max_beat_age_s=BEAT_BOUND_S)
    finally:
        fault_peers.spent()
    expect_fault(result, "process-quiet", mentions="quiet")


def test_health_no_process_after_sidekiq_stops(fault_peers: FaultPeers) -> None:
    peer, url = fault_peers.healthy()
    try:
        peer.stop()
        with redis.Redis.from_url(url) as conn:
            _let_ghost_expire(conn)
        result = check_health(url, POD_NAME)
    finally:
        fault_peers.spent()
    expect_fault(result, "no-process", mentions=POD_NAME)


def _let_ghost_expire(conn: redis.Redis) -> None:
    """Skip the 60 s a stopped Sidekiq's hash may linger.

    Sidekiq 6.4 does not stop its heartbeat thread on shutdown (launcher.rb:
    "if the process doesn't actually exit, it'll reappear"): a beat that lands
    after `clear_heartbeat` registers the exiting process again, quiet, with a
    60 s expiry. The process has exited, so nothing beats again; deleting the
    hash is the state Redis reaches when that expiry passes.
    """
    for identity in conn.smembers("processes"):
        conn.delete(identity)


def test_health_unserved_queue_and_latency(partial: tuple[SidekiqPeer, str]) -> None:
    peer, url = partial
    # an 8.x-style job (millisecond stamps) enqueued ten minutes ago, never fetched
    peer.push("SlowJob", [0], queue="mailers", enqueued_at=time.time() - 600, millis=True)
    result = check_health(url, POD_NAME, max_beat_age_s=BEAT_BOUND_S, max_latency_s=60)
    expect_fault(result, "queue-unserved", mentions="mailers")
    expect_fault(result, "queue-latency", mentions="mailers")
    assert result.metrics["latency_s.mailers"] >= 600


def test_health_redis_unreachable() -> None:
    result = check_health(f"redis://127.0.0.1:{free_port()}/0", POD_NAME)
    expect_fault(result, "redis-unreachable", mentions="Redis")


# ------------------------------------------------------------ queues drain


def test_queues_drain_ok(stack: Stack) -> None:
    with redis.Redis.from_url(stack.redis.url(0)) as conn:
        for i in range(6):
            push_job(conn, "SlowJob", [0.05], queue="default" if i % 2 else "push")
    result = expect_ok(check_queues_drain(stack.redis.url(0), drain_timeout_s=10, window_s=0.5,
                                          interval_s=0.1))
    assert result.metrics["backlog_at_start"] >= 1
    assert result.metrics["retried"] == 0 and result.metrics["died"] == 0


def test_queues_drain_stuck_queue(partial: tuple[SidekiqPeer, str]) -> None:
    peer, url = partial
    peer.push("SlowJob", [0], queue="mailers")
    # a served queue progresses in milliseconds (BRPOP); this one is never fetched
    result = check_queues_drain(url, drain_timeout_s=0.5, window_s=0.5, interval_s=0.05)
    expect_fault(result, "queue-stuck", mentions="mailers")


def test_queues_drain_retry_growing(failing: tuple[SidekiqPeer, str]) -> None:
    peer, url = failing
    peer.push("FailingJob", [FAIL_AFTER_S], retry=5)  # fails inside the window
    result = check_queues_drain(url, drain_timeout_s=5, window_s=0.6, interval_s=0.05)
    expect_fault(result, "retry-growing", mentions="FailingJob")


def test_queues_drain_counts_failures_since_the_run_started(
        failing: tuple[SidekiqPeer, str]) -> None:
    peer, url = failing
    with redis.Redis.from_url(url) as conn:
        run_started = redis_now(conn)
        size = conn.zcard("retry")
        peer.push("FailingJob", [0], retry=5)
        wait_until(lambda: conn.zcard("retry") > size, what="the job to fail", timeout=10,
                   interval=0.02)
    # the failure happened before this check's own window, but within the run
    result = check_queues_drain(url, drain_timeout_s=2, window_s=0.1, interval_s=0.1,
                                failures_since=run_started)
    expect_fault(result, "retry-growing", mentions="FailingJob")


def test_queues_drain_dead_growing(failing: tuple[SidekiqPeer, str]) -> None:
    peer, url = failing
    peer.push("DyingJob", [FAIL_AFTER_S], retry=0)  # no retries: straight to `dead`
    result = check_queues_drain(url, drain_timeout_s=5, window_s=0.6, interval_s=0.05)
    expect_fault(result, "dead-growing", mentions="DyingJob")


def test_queues_drain_ignores_named_classes(failing: tuple[SidekiqPeer, str]) -> None:
    peer, url = failing
    peer.push("FailingJob", [FAIL_AFTER_S], retry=5)
    result = check_queues_drain(url, drain_timeout_s=5, window_s=0.6, interval_s=0.05,
                                ignore_failure_classes=("FailingJob",))
    assert result.ok, result.summary
    assert result.metrics["retry_size_delta"] >= 1  # it did fail; it was only ignored


def test_queues_drain_redis_unreachable() -> None:
    result = check_queues_drain(f"redis://127.0.0.1:{free_port()}/0", window_s=0.1)
    expect_fault(result, "redis-unreachable", mentions="Redis")


# -------------------------------------------------------------- round trip


def test_roundtrip_ok(stack: Stack) -> None:
    result = expect_ok(check_roundtrip(stack.target, timeout_s=10, interval_s=0.1))
    assert 0 < result.metrics["roundtrip_s"] < 10
    assert result.evidence["cleanup"] == "status deleted"


def test_roundtrip_without_sidekiq(stack: Stack) -> None:
    # the same API and database, but its jobs go to a Redis no Sidekiq reads
    quiet_redis = stack.redis.url(15)
    root = scratch_dir("rest")
    with running_rest_peer(stack.dsn, quiet_redis, root) as (_, target):
        # a healthy round trip takes about 0.1 s (test_roundtrip_ok)
        result = check_roundtrip(target, timeout_s=0.5, interval_s=0.05)
        with redis.Redis.from_url(quiet_redis) as conn:
            assert conn.llen("queue:default") >= 1  # DistributionWorker waits, unprocessed
    shutil.rmtree(root, ignore_errors=True)
    expect_fault(result, "roundtrip-timeout", mentions="no mention notification")


def test_roundtrip_api_error(stack: Stack) -> None:
    author = stack.target.account("test")
    broken = stack.target.with_(accounts={
        **stack.target.accounts,
        "test": Account(author.username, Secret("revoked-token-000000", "token")),
    })
    result = check_roundtrip(broken, timeout_s=2)
    expect_fault(result, "api-error", mentions="401")


def test_roundtrip_without_a_second_account(stack: Stack) -> None:
    lonely = stack.target.with_(accounts={"test": stack.target.account("test")})
    result = check_roundtrip(lonely, timeout_s=1)
    expect_fault(result, "no-account", mentions="second")
