"""The way back, against the real local peers: FROM's database (seeded through the
Mastodon REST peer) dumped with pg_dump, "upgraded" (a TO table, a TO column, TO's
writes), restored from the dump (drop, create, pg_restore), and the seeded data
verified again through REST and in PostgreSQL; Redis keys (a Sidekiq job held in a
queue, a scheduled job with its TTL) snapshotted and put back."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator

import psycopg
import pytest

from tests.peers.databases import PostgresPeer, RedisPeer, scratch_dir
from tests.peers.mastodon_rest import running_rest_peer
from tests.rehearsal.test_seeds import Stack, check, seeded
from tootcheck.rehearsal import rollback
from tootcheck.testing import expect_fault, expect_ok


@pytest.fixture(scope="module")
def stack(make_postgres: Callable[[], PostgresPeer],
          make_redis: Callable[..., RedisPeer]) -> Iterator[Stack]:
    postgres = make_postgres()  # our own: this module drops its database
    redis_peer = make_redis()
    dsn = postgres.create_database("mastodon_production")
    with running_rest_peer(dsn, redis_peer.url(0), scratch_dir("rehearsal-rollback")) as (
            rest, target):
        yield Stack(postgres, rest, target, dsn)


def test_argvs_drop_create_restore_and_never_carry_a_password() -> None:
    db = rollback.Database("mastodon_production", "mastodon", user="mastodon")
    dump = rollback.dump_argv(db, "/backup/from.dump")
    assert dump[:1] == ["pg_dump"] and "--format=custom" in dump and dump[-1] == db.name
    drop, create, restore = rollback.restore_argvs(db, "/backup/from.dump")
    assert drop[0] == "dropdb" and "--force" in drop and "--if-exists" in drop
    assert create[0] == "createdb" and create[-3:] == ["--owner", "mastodon", db.name]
    assert restore[0] == "pg_restore" and "--exit-on-error" in restore
    assert not any("password" in arg.lower() for argv in (dump, drop, create, restore)
                   for arg in argv)


def test_dump_upgrade_restore_round_trip_keeps_the_seeded_data(stack: Stack) -> None:
    peer = stack.postgres
    markers = seeded(stack)
    expect_ok(check(stack, markers))
    run = rollback.local_exec(user=peer.user)
    db = rollback.Database("mastodon_production", "postgres", host="127.0.0.1", port=peer.port)
    path = str(peer.root / "backup" / rollback.DUMP_NAME)
    timings = rollback.Timings()
    rollback.timed(timings, "dump_s", lambda: rollback.backup_database(
        run, db, path, bin_dir=str(peer.bin_dir)))
    # TO: a new table, a new column, writes FROM never saw
    with psycopg.connect(stack.dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE keypairs (id bigserial PRIMARY KEY, account_id bigint)")
        conn.execute("ALTER TABLE accounts ADD COLUMN IF NOT EXISTS uri_unique boolean")
        conn.execute("INSERT INTO keypairs (account_id) SELECT id FROM accounts")
        statuses_to = conn.execute("SELECT count(*) FROM statuses").fetchone()[0]
        conn.execute("DELETE FROM scheduled_statuses")  # as if TO had published them
    # a connection TO still holds: dropdb --force must end it
    held = psycopg.connect(stack.dsn, autocommit=True)
    try:
        rollback.timed(timings, "restore_s", lambda: rollback.restore_database(
            run, db, path, bin_dir=str(peer.bin_dir)))
    finally:
        held.close()
    assert timings.seconds["restore_s"] > 0 and timings.total() >= timings.seconds["restore_s"]
    with psycopg.connect(stack.dsn, autocommit=True) as conn:
        tables = {r[0] for r in conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
        columns = {r[0] for r in conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'accounts'")}
        assert conn.execute("SELECT count(*) FROM statuses").fetchone()[0] == statuses_to
    assert "keypairs" not in tables and "uri_unique" not in columns
    result = expect_ok(check(stack, markers))  # the scheduled status is back, media intact
    assert result.metrics["markers_found.db"] == markers.count


def test_a_restore_that_fails_says_which_command_and_why(stack: Stack) -> None:
    peer = stack.postgres
    run = rollback.local_exec(user=peer.user)
    db = rollback.Database("mastodon_production", "postgres", host="127.0.0.1", port=peer.port)
    with pytest.raises(rollback.RollbackError, match=r"^pg_restore exited 1: .*"):
        run(rollback.restore_argvs(db, str(peer.root / "missing.dump"),
                                   bin_dir=str(peer.bin_dir))[2])


def test_redis_snapshot_and_restore_keep_sidekiq_jobs(make_redis: Callable[..., RedisPeer]) -> None:
    import redis

    client = redis.Redis.from_url(make_redis().url(0))
    job = json.dumps({"class": "ActivityPub::DeliveryWorker", "jid": "held-across-upgrade"})
    client.lpush("queue:push", job)
    client.zadd("schedule", {json.dumps({"jid": "later"}): 1_900_000_000})
    client.set("lock:expiring", "1", px=600_000)
    snapshot = rollback.redis_snapshot(client)
    assert snapshot.count == 3
    client.lpop("queue:push")  # TO processed the job...
    client.set("cache:to-only", "x")  # ...and wrote its own keys
    rollback.redis_restore(client, snapshot)
    assert client.lrange("queue:push", 0, -1) == [job.encode()]
    assert client.zcard("schedule") == 1 and client.get("cache:to-only") is None
    assert 0 < client.pttl("lock:expiring") <= 600_000


def test_media_copy_and_restore_commands(tmp_path: object) -> None:
    from pathlib import Path

    root = Path(str(tmp_path))
    media, copy = root / "system", root / "system.copy"
    (media / "a").mkdir(parents=True)
    (media / "a" / "original.png").write_bytes(b"FROM")
    run = rollback.local_exec()
    run(rollback.media_copy_argv(str(media), str(copy)))
    (media / "a" / "original.png").write_bytes(b"TO")
    (media / "new.png").write_bytes(b"TO only")
    run(rollback.media_restore_argv(str(media), str(copy)))
    assert (media / "a" / "original.png").read_bytes() == b"FROM"
    assert not (media / "new.png").exists()


def test_kube_exec_reads_exit_codes() -> None:
    class Result:
        def __init__(self, rc: int, stdout: str, stderr: str) -> None:
            self.rc, self.stdout, self.stderr = rc, stdout, stderr

    class Kube:
        def exec(self, namespace: str, pod: str, container: str, argv: list[str], *,
                 timeout: float = 0) -> Result:
            return Result(1 if argv[0] == "pg_dump" else 0, "ok", "pg_dump: error: no space")

    run = rollback.kube_exec(Kube(), "mastodon", "mastodon-abc", "postgres")
    assert run(["mkdir", "-p", "/x"]) == "ok"
    with pytest.raises(rollback.RollbackError, match="pg_dump exited 1: pg_dump: error: no space"):
        run(["pg_dump"])


# ------------------------------------------ the cluster flow over a local "pod"


class LocalPod:
    """kubectl exec, apply and the wait, played locally: the postgres container's
    commands run against the PostgreSQL peer (its socket and port, as the peer's user,
    the backup directory mapped into the peer's scratch), the media container's are
    recorded."""

    def __init__(self, peer: PostgresPeer) -> None:
        self.peer, self.calls, self.applied = peer, [], []

    def exec(self, namespace: str, pod: str, container: str, argv: list[str], *,
             timeout: float = 0) -> object:
        import subprocess

        self.calls.append((container, argv[0]))
        if container != "postgres":
            return subprocess.CompletedProcess(argv, 0, "", "")
        argv = [a.replace(rollback.BACKUP_DIR, str(self.peer.root / "backup")) for a in argv]
        if argv[0] in ("pg_dump", "pg_restore", "dropdb", "createdb"):
            argv[0] = str(self.peer.bin_dir / argv[0])
        cmd = ["env", f"PGHOST={self.peer.root}", f"PGPORT={self.peer.port}", *argv]
        if self.peer.user:
            cmd = ["runuser", "-u", self.peer.user, "--", *cmd]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
        return type("R", (), {"rc": done.returncode, "stdout": done.stdout,
                              "stderr": done.stderr})()

    def apply(self, doc: dict) -> dict:
        self.applied.append(doc)
        return doc


def test_backup_then_restore_through_the_pod_flow(stack: Stack) -> None:
    from tootcheck.kube.readiness import Readiness
    from tootcheck.rehearsal import way_back
    from tootcheck.rehearsal.checks import check_rollback

    markers = seeded(stack)
    pod = LocalPod(stack.postgres)
    config = {"DB_NAME": "mastodon_production", "DB_USER": "postgres"}
    backup = way_back.take_backup(pod, "mastodon", "mastodon-from", config)
    assert backup.error == "" and backup.media_copied and backup.timings.seconds["dump_s"] > 0
    with psycopg.connect(stack.dsn, autocommit=True) as conn:
        conn.execute("DELETE FROM follows")  # TO lost a row: only the restore brings it back
    deployment = {"apiVersion": "apps/v1", "kind": "Deployment",
                  "metadata": {"name": "mastodon", "namespace": "mastodon"}}
    record = way_back.restore_backup(pod, "mastodon", "mastodon-to", backup, "v4.6.3", config,
                                     [deployment], condition=lambda: Readiness(True, "FROM up"),
                                     api_errors=(RuntimeError,))
    record.target, record.target_name = "v4.7.2", "kind://local"
    result = expect_ok(check_rollback(record))
    assert result.metrics["rollback.restore_s"] > 0 and result.metrics["rollback_s"] > 0
    assert pod.applied == [deployment]
    assert ("web", "sh") in pod.calls  # media copied, then restored
    expect_ok(check(stack, markers))  # the deleted follow is back


def test_rollback_faults() -> None:
    from tootcheck.rehearsal import way_back
    from tootcheck.rehearsal.checks import check_rollback

    def rec(**kw: object) -> way_back.RollbackRecord:
        return way_back.RollbackRecord("v4.6.3", "v4.7.2", target_name="kind://x", **kw)

    expect_fault(check_rollback(rec(error="no backup to restore: pg_dump exited 1: no space")),
                 "no-backup", mentions="pg_dump exited 1")
    expect_fault(check_rollback(rec(error="pg_restore exited 1: relation exists")),
                 "restore-failed", mentions="pg_restore exited 1")
    expect_fault(check_rollback(rec(running_tag="v4.7.2")), "not-from", mentions="runs v4.7.2")
    expect_ok(check_rollback(rec(running_tag="v4.6.3")))
    failed = way_back.restore_backup(object(), "ns", "pod", way_back.Backup("p", "/x", error="boom"),
                                     "v4.6.3", {}, [], condition=lambda: None)
    assert failed.error == "no backup to restore: boom"
