"""persistence.markers_survive against real restarts of PostgreSQL and Redis.

The stack: the Mastodon REST peer over PostgreSQL, Redis (AOF, fsync always) and a
media directory, with a real Sidekiq publishing scheduled statuses. The healthy
case restarts PostgreSQL and Redis cleanly, then kills both (SIGKILL) and starts
them again: every marker is found (through REST by the check, and by SQL with
``verify_markers_db`` after each restart), and the scheduled status is published
on time by Sidekiq from the `schedule` set that survived in Redis. Each fault is a real
loss: Redis without persistence (the scheduled job vanishes), a media volume that
comes back empty or with a file's data gone, a database that does not come back,
a token the API refuses.

The scheduled status falls due a second after it is written. Sidekiq is held (SIGSTOP)
from before the markers are written until Redis has restarted, so the job is still in
`schedule` when Redis restarts however slow the machine is, and whatever publishes it
afterwards can only have read it from what Redis kept.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import shutil
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

from tests.peers.databases import PostgresPeer, RedisPeer, scratch_dir
from tests.peers.mastodon_rest import MastodonRestPeer, running_rest_peer
from tests.peers.sidekiq import SidekiqPeer
from tootcheck.checks.markers import MarkerSet, verify_markers_db
from tootcheck.checks.persistence import check_markers_survive
from tootcheck.model import CheckResult
from tootcheck.redaction import Secret
from tootcheck.target import Account, Target
from tootcheck.testing import expect_fault, expect_ok
from tootcheck.waiting import wait_until

FAST = {"api_timeout_s": 5.0, "interval_s": 0.1}
LATER = 3600.0  # a scheduled status that stays scheduled during the test
# Sidekiq is held until Redis has restarted: no race with the restart. The due time must
# still lie ahead when the peer receives the post, or it publishes at once (Mastodon's
# PostStatusService does the same for a time in the past) and nothing waits in `schedule`:
# 1 s was too little once, in a fresh clone with both cores busy.
SCHEDULED_IN_S = 3.0
# Longer than a surviving job takes to be published once Sidekiq resumes (its scheduler
# polls every 0.1 s; its fetcher backs off 1 s after the Redis restart broke its
# connection): "still scheduled" after it can only mean the entry is gone.
LOSS_GRACE_S = 1.5


@dataclass
class Stack:
    postgres: PostgresPeer
    redis: RedisPeer
    rest: MastodonRestPeer
    target: Target
    dsn: str
    sidekiq: SidekiqPeer


@contextlib.contextmanager
def running_stack(postgres: PostgresPeer, redis_peer: RedisPeer) -> Iterator[Stack]:
    dsn = postgres.create_database(f"persist_{secrets.token_hex(4)}")
    root = scratch_dir("persistence")
    sidekiq = SidekiqPeer(redis_peer.url(0), root, database_url=dsn, poll_interval_s=0.1)
    try:
        with running_rest_peer(dsn, redis_peer.url(0), root) as (rest, target):
            sidekiq.start()
            yield Stack(postgres, redis_peer, rest, target, dsn, sidekiq)
    finally:
        sidekiq.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def own_postgres(make_postgres: Callable[[], PostgresPeer]) -> PostgresPeer:
    """A private PostgreSQL: these tests restart, kill and stop it."""
    return make_postgres()


@pytest.fixture(scope="module")
def stack(sidekiq_peers: None, own_postgres: PostgresPeer,
          make_redis: Callable[..., RedisPeer]) -> Iterator[Stack]:
    with running_stack(own_postgres, make_redis(appendonly=True)) as started:
        yield started


def start_after_crash(postgres: PostgresPeer) -> None:
    """Start PostgreSQL once the killed postmaster is really gone: until it is reaped
    (and its children noticed), a new postmaster refuses its lock file."""
    wait_until(lambda: postgres.start() is None, what="PostgreSQL to start after the crash",
               timeout=30, interval=0.2, retry_on=(subprocess.CalledProcessError,))


@contextlib.contextmanager
def sidekiq_held(sidekiq: SidekiqPeer) -> Iterator[None]:
    """Sidekiq stopped (SIGSTOP) until the restart step resumes it; resumed in any case."""
    sidekiq.pause()
    try:
        yield
    finally:
        sidekiq.resume()  # a no-op once the restart step has resumed it


def scheduled_jobs(redis_peer: RedisPeer, scheduled_id: str) -> int:
    """How many PublishScheduledStatusWorker entries for ``scheduled_id`` Redis holds."""
    with redis.Redis.from_url(redis_peer.url(0)) as conn:
        jobs = [json.loads(raw) for raw in conn.zrange("schedule", 0, -1)]
    return sum(1 for job in jobs if job.get("class") == "PublishScheduledStatusWorker"
               and [str(a) for a in job.get("args", [])] == [scheduled_id])


@pytest.mark.slow(reason="restarts and crashes real PostgreSQL and Redis servers three times")
def test_markers_survive_restarts_and_crashes(stack: Stack) -> None:
    written: list[MarkerSet] = []
    in_sql: list[CheckResult] = []  # the SQL verifier, right after each restart
    pending_at_restart: list[int] = []  # the marker's `schedule` entries as Redis restarts

    def restart() -> None:
        pending_at_restart.append(scheduled_jobs(stack.redis, written[0].scheduled[0].id))
        stack.redis.restart()  # first: the `schedule` entry must live through it
        stack.sidekiq.resume()
        stack.postgres.restart()
        in_sql.append(verify_markers_db(stack.dsn, written[0], publish_grace_s=60))

    def crash() -> None:
        stack.redis.crash()
        stack.postgres.crash()
        stack.redis.start()
        start_after_crash(stack.postgres)
        in_sql.append(verify_markers_db(stack.dsn, written[0], publish_grace_s=60))

    with sidekiq_held(stack.sidekiq):
        result = expect_ok(check_markers_survive(
            stack.target,
            [("PostgreSQL and Redis restart", restart), ("PostgreSQL and Redis crash", crash)],
            scheduled_in_s=SCHEDULED_IN_S, publish_grace_s=6.0, await_scheduled_s=20.0,
            on_written=written.append, **FAST))
    assert [r.metrics["markers_found"] for r in in_sql] == [6, 6], [r.summary for r in in_sql]
    assert result.metrics["markers_written"] == 6
    assert result.metrics["markers_found"] == 6
    assert result.metrics["markers_lost"] == 0
    assert result.metrics["restarts"] == 2
    def scheduled_after(round_index: int) -> str:
        outcomes = result.evidence["rounds"][round_index]["outcomes"]
        return next(o["detail"] for o in outcomes if o["kind"] == "scheduled")

    # waiting in Redis's `schedule` when Redis restarted, then published by Sidekiq
    assert pending_at_restart == [1], "the scheduled job was not in Redis when it restarted"
    assert scheduled_after(-1).startswith("published"), scheduled_after(-1)
    after_crash = result.evidence["rounds"][2]["outcomes"]
    media = next(o for o in after_crash if o["kind"] == "media")
    assert media["detail"] == "bytes identical"
    assert result.evidence["cleanup"] == "all markers removed"
    tokens = [a.token.reveal() for a in stack.target.accounts.values() if a.token]
    serialised = json.dumps(result.evidence["markers"])
    assert not any(token in serialised for token in tokens)


@pytest.mark.slow(reason="starts its own Sidekiq stack and waits out a scheduled status's "
                         "time and grace across a Redis restart")
def test_redis_without_persistence_loses_the_schedule(
        stack: Stack, own_postgres: PostgresPeer, make_redis: Callable[..., RedisPeer]) -> None:
    volatile = make_redis(appendonly=False)  # --save '' too: nothing reaches disk
    written: list[MarkerSet] = []
    pending_at_restart: list[int] = []
    left_by_restart: list[int] = []

    def restart() -> None:
        pending_at_restart.append(scheduled_jobs(volatile, written[0].scheduled[0].id))
        volatile.restart()
        left_by_restart.append(scheduled_jobs(volatile, written[0].scheduled[0].id))
        broken.sidekiq.resume()

    with running_stack(own_postgres, volatile) as broken, sidekiq_held(broken.sidekiq):
        result = check_markers_survive(broken.target, [("Redis restart", restart)],
                                       scheduled_in_s=SCHEDULED_IN_S, publish_grace_s=LOSS_GRACE_S,
                                       await_scheduled_s=10.0, on_written=written.append, **FAST)
    assert pending_at_restart == [1], "the restart must take a pending schedule away"
    assert left_by_restart == [0], "Redis without persistence kept the scheduled job"
    expect_fault(result, "scheduled-late", mentions="still scheduled")
    assert result.metrics["markers_lost"] == 1
    assert result.metrics["markers_found"] == 5


def test_media_volume_comes_back_empty(stack: Stack) -> None:
    def replace_volume() -> None:
        shutil.rmtree(stack.rest.media_dir)
        stack.rest.media_dir.mkdir()

    result = check_markers_survive(stack.target, [("media volume replaced", replace_volume)],
                                   scheduled_in_s=LATER, **FAST)
    expect_fault(result, "marker-lost", mentions="HTTP 404")
    assert result.metrics["markers_lost"] == 1
    assert result.metrics["markers_found"] == 5


def test_media_file_loses_its_data(stack: Stack) -> None:
    def lose_data() -> None:
        for path in Path(stack.rest.media_dir).rglob("*.png"):
            path.write_bytes(b"")  # the file survived, its contents did not

    result = check_markers_survive(stack.target, [("NFS server crash", lose_data)],
                                   scheduled_in_s=LATER, **FAST)
    expect_fault(result, "media-changed", mentions="bytes changed")


def test_database_does_not_come_back(stack: Stack) -> None:
    try:
        result = check_markers_survive(stack.target, [("PostgreSQL restart", stack.postgres.stop)],
                                       scheduled_in_s=LATER, api_timeout_s=0.3, interval_s=0.05,
                                       cleanup=False)
    finally:
        stack.postgres.start()
    expect_fault(result, "restart-failed", mentions="did not answer")


def test_restart_step_that_raises(stack: Stack) -> None:
    def refuse() -> None:
        raise RuntimeError("no pod matches app.kubernetes.io/name=mastodon")

    result = check_markers_survive(stack.target, [("Mastodon pod restart", refuse)],
                                   scheduled_in_s=LATER, **FAST)
    expect_fault(result, "restart-failed", mentions="no pod matches")
    assert result.evidence["cleanup"] == "all markers removed"


def test_markers_unwritable(stack: Stack) -> None:
    author = stack.target.account("test")
    broken = stack.target.with_(accounts={
        **stack.target.accounts,
        "test": Account(author.username, Secret("revoked-token-000000", "token")),
    })
    result = check_markers_survive(broken, [], scheduled_in_s=LATER, **FAST)
    expect_fault(result, "markers-unwritable", mentions="verify_credentials")
