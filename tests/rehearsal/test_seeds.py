"""rehearsal.seeds_intact against real data: the Mastodon REST peer over a real
PostgreSQL (tables and columns of Mastodon's db/schema.rb) and Redis.

The rehearsal's seed step (``run.seed`` -> ``tootcheck.checks.markers.write_markers``)
writes accounts, a follow, a status with a PNG attachment and a scheduled status
through REST. The "upgrade" here is what it does to the data underneath: PostgreSQL
killed (SIGKILL) and started again (crash recovery), then a schema migration like
``db:prepare`` runs (a column added, an index built). Everything must survive; a real
loss (a row deleted, media bytes overwritten, a scheduled status left overdue) is
detected, through REST and in PostgreSQL.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from tests.peers.databases import PostgresPeer, RedisPeer, scratch_dir
from tests.peers.mastodon_rest import MastodonRestPeer, running_rest_peer
from tootcheck.checks.markers import MarkerSet
from tootcheck.rehearsal import run
from tootcheck.rehearsal.checks import check_seeds_intact
from tootcheck.target import Target
from tootcheck.testing import expect_fault, expect_ok

UPGRADE = "the upgrade v4.6.3 -> v4.7.2"


@dataclass
class Stack:
    postgres: PostgresPeer
    rest: MastodonRestPeer
    target: Target
    dsn: str


@pytest.fixture(scope="module")
def stack(make_postgres: Callable[[], PostgresPeer],
          make_redis: Callable[..., RedisPeer]) -> Iterator[Stack]:
    postgres = make_postgres()  # our own: this module kills it
    redis_peer = make_redis()
    dsn = postgres.create_database("mastodon_production")
    with running_rest_peer(dsn, redis_peer.url(0), scratch_dir("rehearsal-seeds")) as (rest, target):
        yield Stack(postgres, rest, target, dsn)


def seeded(stack: Stack) -> MarkerSet:
    markers, error = run.seed(stack.target)
    assert error == "" and markers is not None, error
    assert markers.count == 6  # two accounts, a status, its media, a scheduled status, a follow
    return markers


def check(stack: Stack, markers: MarkerSet | None, **kwargs: object):
    return check_seeds_intact(stack.target, markers, db=stack.dsn, upgrade=UPGRADE, **kwargs)


def migrate_like_db_prepare(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("ALTER TABLE statuses ADD COLUMN IF NOT EXISTS quote_approval_policy "
                     "integer NOT NULL DEFAULT 0")
        conn.execute("CREATE INDEX IF NOT EXISTS index_statuses_on_account_id_id "
                     "ON statuses (account_id, id DESC)")


def test_seeds_survive_a_crash_and_a_migration_then_a_lost_row_is_caught(stack: Stack) -> None:
    markers = seeded(stack)
    # immediate shutdown: every process quits at once, no checkpoint; the next start
    # replays the WAL (crash recovery), as after the old pod is killed mid-write
    stack.postgres.stop("immediate")
    stack.postgres.start()
    assert "database system was not properly shut down" in stack.postgres.log.read_text()
    migrate_like_db_prepare(stack.dsn)
    result = expect_ok(check(stack, markers))
    assert result.metrics["markers_found.db"] == 6 and result.metrics["markers_found.rest"] == 6
    follow = markers.follows[0]
    with psycopg.connect(stack.dsn, autocommit=True) as conn:
        deleted = conn.execute("DELETE FROM follows WHERE account_id = %s AND target_account_id = %s",
                               (int(follow.account_id), int(follow.target_account_id))).rowcount
    assert deleted == 1
    lost = expect_fault(check(stack, markers), "marker-lost", mentions=f"follow {follow.account_id}")
    messages = [f.message for f in lost.faults]
    assert any("via REST" in m for m in messages) and any("in PostgreSQL" in m for m in messages)
    assert lost.metrics["markers_lost.db"] == 1


def test_changed_media_bytes_are_caught(stack: Stack) -> None:
    markers = seeded(stack)
    media = markers.media[0]
    (stored,) = Path(stack.rest.media_dir).rglob(media.file_name)
    stored.write_bytes(stored.read_bytes()[:-8] + b"tampered")
    expect_fault(check(stack, markers), "media-changed", mentions="bytes changed")


def test_overdue_scheduled_status_is_caught(stack: Stack) -> None:
    markers = seeded(stack)
    later = markers.scheduled[0].scheduled_at + 3600
    expect_fault(check(stack, markers, now=lambda: later), "scheduled-late",
                 mentions="still scheduled")


def test_a_failed_seed_fails_the_check(stack: Stack) -> None:
    nobody = stack.target.with_(accounts={})
    markers, error = run.seed(nobody)
    assert markers is not None and markers.count == 0
    assert "writing markers failed" in error
    expect_fault(check(stack, markers, seed_error=error), "seed-failed", mentions="failed")
    expect_fault(check(stack, None), "seed-failed", mentions="nothing was seeded")


def test_unreachable_database_counts_every_marker_lost(stack: Stack) -> None:
    markers = seeded(stack)
    closed = stack.dsn.replace(f":{stack.postgres.port}/", ":1/")
    result = check_seeds_intact(stack.target, markers, db=closed, upgrade=UPGRADE,
                                now=time.time)
    expect_fault(result, "marker-lost", mentions="cannot query PostgreSQL")
    assert result.metrics["markers_lost.db"] == 6 and result.metrics["markers_found.rest"] == 6
