"""Checks inside the containers, through pytest-testinfra (any backend: kubectl, local).

The suites run them with testinfra's kubectl backend against the Mastodon pod's
containers; the self-tests run them with the local backend against real files,
processes, Redis and PostgreSQL. Every check only reads: /proc, stat, ``CONFIG GET``,
``SHOW``. Nothing here prints a password: commands take credentials from the
container's own environment (``REDISCLI_AUTH``, ``PGPASSWORD="$POSTGRES_PASSWORD"``).
"""

from __future__ import annotations

import re
import shlex
import stat
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tootcheck.checks.registry import live_check
from tootcheck.model import CheckResult, CheckRun

NFS_TYPES = frozenset({"nfs", "nfs4"})


@dataclass(frozen=True)
class Volume:
    """A path that must be a mount of one of ``fs_types``, writable by ``uid``."""

    path: str
    uid: int
    gids: tuple[int, ...] = ()
    fs_types: frozenset[str] = NFS_TYPES


def is_writable_by(mode: int, owner: int, group: int, uid: int, gids: Sequence[int]) -> bool:
    """Whether a directory with this mode and ownership lets ``uid`` create files.

    >>> is_writable_by(0o40755, 991, 991, 991, ())
    True
    >>> is_writable_by(0o40755, 0, 0, 991, (991,))
    False
    >>> is_writable_by(0o42777, 0, 0, 999, ())
    True
    """
    if uid == 0:
        return True
    if owner == uid:
        return bool(mode & stat.S_IWUSR and mode & stat.S_IXUSR)
    if group in gids:
        return bool(mode & stat.S_IWGRP and mode & stat.S_IXGRP)
    return bool(mode & stat.S_IWOTH and mode & stat.S_IXOTH)


@live_check("incontainer.storage", faults={
    "mount-missing": "the path is not a mount point in the container",
    "mount-not-nfs": "the path is mounted, but not from NFS",
    "not-writable": "the container's user cannot write the mounted directory",
})
def check_storage(host: Any, volumes: Sequence[Volume], *, target: str) -> CheckResult:
    """Persistent paths are NFS mounts that the container's user (uid 991/999) can write."""
    run = CheckRun("incontainer.storage", target)
    for volume in volumes:
        mount = host.mount_point(volume.path)
        run.observe()
        if not mount.exists:
            run.fail("mount-missing", f"{volume.path} is not a mount point (nothing persists there)")
            continue
        fs = mount.filesystem
        run.evidence[volume.path] = {"filesystem": fs, "device": mount.device}
        if fs not in volume.fs_types:
            wanted = "/".join(sorted(volume.fs_types))
            run.fail("mount-not-nfs", f"{volume.path} is mounted from {fs} ({mount.device}), not {wanted}")
        info = host.file(volume.path)
        owner, group, mode = info.uid, info.gid, info.mode
        run.evidence[volume.path].update(uid=owner, gid=group, mode=oct(mode))
        if not is_writable_by(mode | stat.S_IFDIR, owner, group, volume.uid, volume.gids):
            run.fail("not-writable", f"{volume.path} is owned by {owner}:{group} mode {oct(mode)}: "
                                     f"uid {volume.uid} cannot write it")
    return run.result()


PROC_CMDLINES = "for p in /proc/[0-9]*; do tr '\\000' ' ' < \"$p/cmdline\" 2>/dev/null; echo; done"


@live_check("incontainer.processes", faults={
    "process-missing": "no process in the container matches an expected command line",
    "exec-failed": "the command to list processes could not run in the container",
})
def check_processes(host: Any, expected: Mapping[str, str], *, target: str) -> CheckResult:
    """The container runs the processes it should (``{label: regex on the command line}``)."""
    run = CheckRun("incontainer.processes", target)
    listing = host.run(PROC_CMDLINES)
    if listing.rc != 0:
        run.fail("exec-failed", f"listing /proc failed (exit {listing.rc}): {listing.stderr.strip()[:200]}")
        return run.result()
    cmdlines = [line.strip() for line in listing.stdout.splitlines() if line.strip()]
    run.evidence["processes"] = len(cmdlines)
    for label, pattern in expected.items():
        run.observe()
        found = [c for c in cmdlines if re.search(pattern, c)]
        if not found:
            run.fail("process-missing", f"no {label} process (/{pattern}/) among {len(cmdlines)} processes")
        else:
            run.evidence[label] = found[0][:120]
    return run.result()


def _config_get(host: Any, cli: str, key: str) -> tuple[str | None, str]:
    done = host.run(f"{cli} CONFIG GET {shlex.quote(key)}")
    lines = done.stdout.split()
    if done.rc != 0 or len(lines) < 2 or lines[0] != key:
        return None, (done.stderr or done.stdout).strip()[:200]
    return lines[1], ""


@live_check("incontainer.redis_durability", faults={
    "redis-unreachable": "redis-cli in the container cannot read the configuration",
    "appendonly-off": "the append-only file is off: Sidekiq's queues die with the container",
    "fsync-disabled": "appendfsync is 'no': writes may sit in the page cache indefinitely",
    "data-dir-wrong": "Redis writes its files somewhere other than the persistent volume",
})
def check_redis_durability(host: Any, *, target: str, data_dir: str = "/data",
                           cli: str = "redis-cli -h 127.0.0.1") -> CheckResult:
    """Redis keeps an append-only file, fsynced, on the persistent volume."""
    run = CheckRun("incontainer.redis_durability", target)
    settings: dict[str, str] = {}
    for key in ("appendonly", "appendfsync", "dir"):
        value, problem = _config_get(host, cli, key)
        if value is None:
            run.fail("redis-unreachable", f"CONFIG GET {key} failed: {problem or 'no answer'}")
            return run.result()
        settings[key] = value
        run.observe()
    run.evidence.update(settings)
    if settings["appendonly"] != "yes":
        run.fail("appendonly-off", f"appendonly is {settings['appendonly']!r}, not 'yes'")
    if settings["appendfsync"] == "no":
        run.fail("fsync-disabled", "appendfsync is 'no' (use everysec or always)")
    if settings["dir"].rstrip("/") != data_dir.rstrip("/"):
        run.fail("data-dir-wrong", f"Redis writes to {settings['dir']}, not the volume at {data_dir}")
    return run.result()


@live_check("incontainer.postgres_durability", faults={
    "postgres-unreachable": "psql in the container cannot read the settings",
    "fsync-off": "fsync or full_page_writes is off: a crash can corrupt the database",
    "data-dir-not-on-volume": "the data directory is not under the persistent volume",
})
def check_postgres_durability(host: Any, *, target: str, volume: str = "/var/lib/postgresql/data",
                              psql: str = 'PGPASSWORD="$POSTGRES_PASSWORD" psql -h 127.0.0.1 '
                                          '-U "$POSTGRES_USER" -d "$POSTGRES_DB"') -> CheckResult:
    """PostgreSQL runs with fsync and full-page writes, its data directory on the volume."""
    run = CheckRun("incontainer.postgres_durability", target)
    settings: dict[str, str] = {}
    for key in ("fsync", "full_page_writes", "data_directory"):
        done = host.run(f"{psql} -XAtc {shlex.quote('SHOW ' + key)}")
        if done.rc != 0 or not done.stdout.strip():
            problem = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no answer"]
            run.fail("postgres-unreachable", f"SHOW {key} failed: {problem[0][:200]}")
            return run.result()
        settings[key] = done.stdout.strip()
        run.observe()
    run.evidence.update(settings)
    for key in ("fsync", "full_page_writes"):
        if settings[key] != "on":
            run.fail("fsync-off", f"{key} is {settings[key]!r}, not 'on'")
    data_dir = settings["data_directory"].rstrip("/")
    if not (data_dir + "/").startswith(volume.rstrip("/") + "/"):
        run.fail("data-dir-not-on-volume", f"data_directory {data_dir} is not under {volume}")
    return run.result()
