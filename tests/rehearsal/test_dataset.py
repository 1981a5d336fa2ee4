"""--seed-scale and what must survive the upgrade: row counts, local actors' public
keys (moved to 4.7's keypairs table), a Sidekiq job held in Redis, queue latency;
against the real PostgreSQL and Redis peers."""

from __future__ import annotations

import json
from collections.abc import Callable

import psycopg
import pytest

from tests.peers.databases import PostgresPeer, RedisPeer
from tootcheck.errors import BadInput
from tootcheck.rehearsal import dataset


def test_scale_and_its_script() -> None:
    assert dataset.parse_scale(None) is None and dataset.parse_scale("0") is None
    scale = dataset.parse_scale("3")
    assert scale is not None and (scale.accounts, scale.statuses, scale.notifications) == (30, 300, 150)
    with pytest.raises(BadInput, match="not a whole number"):
        dataset.parse_scale("lots")
    with pytest.raises(BadInput, match="outside"):
        dataset.parse_scale(100_000)
    script = dataset.seed_script(scale, "run20261204")
    for expected in ("(1..30)", "(1..300)", "first(60)", "otp_required_for_login: true",
                     "(1..15)", "(1..3)", "tootcheck-seeded", "Notification.find_or_create_by!"):
        assert expected in script, expected
    # the duplicate remote accounts reuse the URIs of the first remote accounts
    assert script.count('uri: "https://#{domain}/users/r#{i}"') == 2


SCHEMA_FROM = """
CREATE TABLE accounts (id bigint PRIMARY KEY, username text, domain text, public_key text,
                       uri text);
CREATE TABLE statuses (id bigint PRIMARY KEY); CREATE TABLE follows (id bigint PRIMARY KEY);
CREATE TABLE notifications (id bigint PRIMARY KEY);
CREATE TABLE media_attachments (id bigint PRIMARY KEY); CREATE TABLE users (id bigint PRIMARY KEY);
INSERT INTO accounts VALUES (1, 'a', NULL, 'PEM-A', ''), (2, 'b', NULL, 'PEM-B', ''),
  (3, 'r', 'x.example', 'PEM-R', 'https://x/u/r'), (4, 'R2', 'x.example', '', 'https://x/u/r');
INSERT INTO statuses SELECT generate_series(1, 40); INSERT INTO notifications SELECT generate_series(1, 7);
"""


def test_counts_and_actor_keys_across_a_47_like_migration(
        make_postgres: Callable[[], PostgresPeer]) -> None:
    peer = make_postgres()
    dsn = peer.create_database("mastodon_production")
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(SCHEMA_FROM)
        before_counts, before_keys = dataset.counts(conn), dataset.actor_keys(conn)
        assert before_counts["statuses"] == 40 and before_counts["accounts"] == 4
        assert set(before_keys) == {1, 2}
        # 4.7: keys move to keypairs, duplicates merged (account 4 into 3), unique uri
        conn.execute("CREATE TABLE keypairs (id bigserial PRIMARY KEY, account_id bigint, "
                     "type integer, local_fragment text, public_key text, private_key text, "
                     "revoked boolean NOT NULL DEFAULT false)")
        conn.execute("INSERT INTO keypairs (account_id, type, local_fragment, public_key) "
                     "SELECT id, 0, '#main-key', public_key FROM accounts WHERE domain IS NULL")
        conn.execute("INSERT INTO keypairs (account_id, local_fragment, public_key, revoked) "
                     "VALUES (1, '#main-key', 'OLD-REVOKED', true), (2, '#other', 'SIDE', false)")
        conn.execute("UPDATE accounts SET public_key = '' WHERE domain IS NULL")
        conn.execute("DELETE FROM accounts WHERE id = 4")
        after_counts, after_keys = dataset.counts(conn), dataset.actor_keys(conn)
    assert dataset.key_changes(before_keys, after_keys) == []
    assert dataset.count_losses(before_counts, after_counts, merged_duplicates=1) == []
    assert dataset.count_losses(before_counts, after_counts) == ["accounts: 4 rows before, 3 after"]
    with psycopg.connect(dsn, autocommit=True) as conn:  # a migration that regenerates a key
        conn.execute("UPDATE keypairs SET public_key = 'NEW-PEM' WHERE account_id = 2 "
                     "AND local_fragment = '#main-key'")
        conn.execute("DROP TABLE notifications")
        changed, lost = dataset.actor_keys(conn), dataset.counts(conn)
    (problem,) = dataset.key_changes(before_keys, changed)
    assert problem.startswith("account 2: public key ")
    assert "table notifications is gone" in dataset.count_losses(before_counts, lost)
    assert dataset.key_changes(before_keys, {1: before_keys[1]}) == ["account 2 is gone"]


def test_a_held_sidekiq_job_and_queue_latency(make_redis: Callable[..., RedisPeer]) -> None:
    import redis

    client = redis.Redis.from_url(make_redis().url(0))
    jid = dataset.hold_job(client, now=1_800_000_000.0)
    assert dataset.held_job_present(client, jid)
    client.sadd("queues", "default", "push", "ingress")
    client.lpush("queue:default", json.dumps({"jid": "x", "enqueued_at": 1_800_000_000.0}))
    client.lpush("queue:default", json.dumps({"jid": "y", "enqueued_at": 1_800_000_050.0}))
    client.lpush("queue:push", json.dumps({"jid": "z", "enqueued_at": 1_800_000_090_000}))  # ms
    latencies = dataset.queue_latencies(client, now=1_800_000_100.0)
    assert latencies == {"default": 100.0, "push": 10.0, "ingress": 0.0}
    client.delete(dataset.HELD_QUEUE)  # a flush by the upgrade: the job is lost
    assert not dataset.held_job_present(client, jid)


def test_data_intact_check_faults() -> None:
    from tootcheck.rehearsal.checks import check_data_intact
    from tootcheck.testing import expect_fault, expect_ok

    counts = {"accounts": 10, "statuses": 100, "notifications": 50}
    before = dataset.Snapshot(dict(counts), {1: "k1", 2: "k2"}, duplicate_uris=2, held_jid="j1")
    same = dataset.Snapshot(dict(counts), {1: "k1", 2: "k2"}, held_jid="j1",
                            latencies={"default": 3.5})
    ok = expect_ok(check_data_intact(before, same, target_name="kind://x"))
    assert ok.metrics["sidekiq_latency_s.default"] == 3.5 and ok.metrics["rows.statuses"] == 100
    merged = dataset.Snapshot({**counts, "accounts": 8}, {1: "k1", 2: "k2"}, held_jid="j1")
    expect_ok(check_data_intact(before, merged, merged_duplicates_allowed=True))
    expect_fault(check_data_intact(before, merged), "rows-lost", mentions="accounts: 10 rows")
    rekeyed = dataset.Snapshot(dict(counts), {1: "k1", 2: "new"}, held_jid="j1")
    expect_fault(check_data_intact(before, rekeyed), "actor-key-changed", mentions="account 2")
    flushed = dataset.Snapshot(dict(counts), {1: "k1", 2: "k2"}, held_jid="")
    expect_fault(check_data_intact(before, flushed), "job-lost", mentions="j1")
    expect_fault(check_data_intact(None, same, error="OperationalError: refused"),
                 "snapshot-failed", mentions="refused")
