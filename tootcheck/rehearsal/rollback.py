"""The way back, rehearsed: a backup of FROM before the upgrade, a restore after TO.

Mastodon's migrations are one-way, so the documented path back is the backup the
release notes ask for ("make sure you have backups of the database before performing
any upgrades"). This module holds that path as small steps over an :data:`Exec`
(run an argv, raise :class:`RollbackError` on failure): locally a subprocess
(:func:`local_exec`, what the tests run against the real PostgreSQL peer), in the
cluster ``kubectl exec`` into the pod's ``postgres`` sidecar (:func:`kube_exec`).

- :func:`dump_argv`: ``pg_dump --format=custom`` of FROM's database into a file;
- :func:`restore_argvs`: drop the database (``--force``: TO's processes are still
  connected), create it again for the same owner, ``pg_restore`` the dump: a restore
  over the migrated database would keep TO's new tables and columns;
- :func:`redis_snapshot` / :func:`redis_restore`: every key with its TTL, through
  ``DUMP``/``RESTORE`` (Sidekiq's queues and schedules included);
- :func:`media_copy_argv`: a copy of the media directory beside it (``cp -a``).

:func:`timed` reports how long each part took (``restore_s`` in the report).
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from tootcheck.errors import BadInput

Exec = Callable[[Sequence[str]], str]
BACKUP_DIR = "/var/lib/postgresql/data/tootcheck-rehearsal"  # on the PostgreSQL volume
DUMP_NAME = "from.dump"
MEDIA_DIR = "/opt/mastodon/public/system"
MEDIA_COPY = "/opt/mastodon/public/system.tootcheck-from"
TIMEOUT_S = 1800.0


class RollbackError(BadInput):
    """A backup or restore step failed (one line: the command and its last output)."""


@dataclass(frozen=True)
class Database:
    """Where FROM's database is; ``host`` empty: the local socket (inside the pod)."""

    name: str
    owner: str
    user: str = "postgres"  # runs dropdb/createdb/pg_restore (needs CREATEDB or superuser)
    host: str = ""
    port: int = 5432

    def connection(self) -> list[str]:
        args = ["--username", self.user]
        if self.host:
            args += ["--host", self.host, "--port", str(self.port)]
        return args


def dump_argv(db: Database, path: str, *, bin_dir: str = "") -> list[str]:
    """pg_dump of the whole database, custom format (restorable with pg_restore)."""
    return [_bin(bin_dir, "pg_dump"), *db.connection(), "--format=custom", "--file", path,
            db.name]


def restore_argvs(db: Database, path: str, *, bin_dir: str = "") -> list[list[str]]:
    """Drop, create and restore: the database ends as FROM left it, nothing of TO kept."""
    return [
        [_bin(bin_dir, "dropdb"), *db.connection(), "--if-exists", "--force", db.name],
        [_bin(bin_dir, "createdb"), *db.connection(), "--owner", db.owner, db.name],
        [_bin(bin_dir, "pg_restore"), *db.connection(), "--exit-on-error", "--no-owner",
         "--role", db.owner, "--dbname", db.name, path],
    ]


def media_copy_argv(source: str = MEDIA_DIR, copy: str = MEDIA_COPY) -> list[str]:
    return ["sh", "-c", 'rm -rf -- "$2" && cp -a -- "$1" "$2"', "copy", source, copy]


def media_restore_argv(source: str = MEDIA_DIR, copy: str = MEDIA_COPY) -> list[str]:
    """Put the copy back: files TO added are removed, files it changed are restored."""
    return ["sh", "-c", 'find "$1" -mindepth 1 -delete && cp -a -- "$2"/. "$1"/', "restore",
            source, copy]


def _bin(bin_dir: str, name: str) -> str:
    return str(Path(bin_dir) / name) if bin_dir else name


# ------------------------------------------------------------------- running


@dataclass
class Timings:
    seconds: dict[str, float] = field(default_factory=dict)

    def total(self) -> float:
        return round(sum(self.seconds.values()), 2)


def timed(timings: Timings, name: str, step: Callable[[], Any]) -> Any:
    started = time.monotonic()
    try:
        return step()
    finally:
        timings.seconds[name] = round(time.monotonic() - started, 2)


def backup_database(run: Exec, db: Database, path: str, *, bin_dir: str = "") -> None:
    run(["mkdir", "-p", str(Path(path).parent)])
    run(dump_argv(db, path, bin_dir=bin_dir))


def restore_database(run: Exec, db: Database, path: str, *, bin_dir: str = "") -> None:
    for argv in restore_argvs(db, path, bin_dir=bin_dir):
        run(argv)


def local_exec(*, env: Mapping[str, str] | None = None, user: str | None = None,
               timeout: float = TIMEOUT_S) -> Exec:
    """Run argv here (``user``: through runuser, as the peer's postgres user)."""
    def run(argv: Sequence[str]) -> str:
        cmd = ["runuser", "-u", user, "--", *argv] if user else list(argv)
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                                  env={**os.environ, **(env or {})}, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise RollbackError(f"{argv[0]}: {exc}") from None
        if done.returncode != 0:
            raise RollbackError(_failure(argv, done.returncode, done.stderr or done.stdout))
        return done.stdout
    return run


class PodExec(Protocol):
    def exec(self, namespace: str, pod: str, container: str, argv: Sequence[str], *,
             timeout: float = ...) -> Any: ...


def kube_exec(kube: PodExec, namespace: str, pod: str, container: str,
              timeout: float = TIMEOUT_S) -> Exec:
    """Run argv in a container of the pod; the client's result must say the exit code
    (``returncode``/``rc``) and output (``stdout``/``stderr``) or be the output."""
    def run(argv: Sequence[str]) -> str:
        done = kube.exec(namespace, pod, container, list(argv), timeout=timeout)
        code = getattr(done, "returncode", getattr(done, "rc", 0))
        out = getattr(done, "stdout", done if isinstance(done, str) else "")
        if code:
            raise RollbackError(_failure(argv, code, getattr(done, "stderr", "") or out))
        return str(out)
    return run


def _failure(argv: Sequence[str], code: int, output: str) -> str:
    last = [line for line in (output or "").splitlines() if line.strip()][-2:]
    return f"{Path(argv[0]).name} exited {code}: {' | '.join(last) or 'no output'}"


# ---------------------------------------------------------------------- Redis


class RedisLike(Protocol):
    def scan_iter(self, count: int = ...) -> Any: ...
    def dump(self, name: Any) -> Any: ...
    def pttl(self, name: Any) -> Any: ...
    def flushdb(self) -> Any: ...
    def restore(self, name: Any, ttl: Any, value: Any, replace: bool = ...) -> Any: ...


@dataclass(frozen=True)
class RedisSnapshot:
    keys: Mapping[bytes, tuple[int, bytes]]  # key -> (ttl ms, 0: none; DUMP payload)

    @property
    def count(self) -> int:
        return len(self.keys)


def redis_snapshot(client: RedisLike) -> RedisSnapshot:
    """Every key of the database with its TTL (Sidekiq queues, schedules, retries)."""
    keys: dict[bytes, tuple[int, bytes]] = {}
    for key in client.scan_iter(count=1000):
        payload = client.dump(key)
        if payload is None:  # expired between SCAN and DUMP
            continue
        ttl = int(client.pttl(key))
        keys[bytes(key)] = (ttl if ttl > 0 else 0, bytes(payload))
    return RedisSnapshot(keys)


def redis_restore(client: RedisLike, snapshot: RedisSnapshot) -> None:
    """The database as the snapshot had it: everything TO wrote is dropped."""
    client.flushdb()
    for key, (ttl, payload) in snapshot.keys.items():
        client.restore(key, ttl, payload, replace=True)
