"""The rollback rehearsal in the cluster (``--rehearse-rollback``): thin over
:mod:`tootcheck.rehearsal.rollback`.

Before the upgrade (:func:`take_backup`): ``pg_dump`` of FROM's database into a file
on the PostgreSQL volume (it survives the Recreate), a copy of the media directory
beside it on the media volume, and a snapshot of every Redis key (through a
port-forward). After TO is verified (:func:`restore_backup`): the database dropped,
created and restored from the dump inside the running pod, Redis and media put back,
then FROM's render applied again and waited for like the upgrade (a failed
migration stops it at once). The seeded data is then verified again by the suite
(``rehearsal.seeds_intact`` against FROM) and the times are reported.

Only a kind run exercises this module; the steps it strings together are tested
against the real local PostgreSQL and Redis peers (tests/rehearsal/test_rollback.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tootcheck.errors import BadInput
from tootcheck.kube.apply import apply_documents
from tootcheck.kube.waits import NotReady, wait_for
from tootcheck.rehearsal import rollback
from tootcheck.rehearsal.rollback import Database, RedisLike, RedisSnapshot, Timings

POSTGRES_CONTAINER = "postgres"
MEDIA_CONTAINER = "web"
RESTORE_TIMEOUT_S = 1200.0

RedisFactory = Callable[[], Any]  # a context manager yielding a RedisLike client


@dataclass
class Backup:
    pod: str
    dump_path: str
    redis: RedisSnapshot | None = None
    media_copied: bool = False
    timings: Timings = field(default_factory=Timings)
    error: str = ""


@dataclass
class RollbackRecord:
    source: str
    target: str
    timings: Timings = field(default_factory=Timings)
    running_tag: str = ""
    error: str = ""
    rollback_s: float | None = None  # wall time of the whole way back
    target_name: str = ""  # the target the check reports on (kind://...)

    def to_dict(self) -> dict[str, Any]:
        return {"from": self.source, "to": self.target, "seconds": self.timings.seconds,
                "rollback_s": self.rollback_s, "running_tag": self.running_tag,
                "error": self.error}


def database_of(config: Mapping[str, str]) -> Database:
    """FROM's database as the sidecar sees it: the local socket, the image's superuser
    (POSTGRES_USER, the reference's DB_USER) owning DB_NAME."""
    owner = config.get("DB_USER", "mastodon")
    return Database(config.get("DB_NAME", "mastodon_production"), owner, user=owner)


def take_backup(kube: Any, namespace: str, pod: str, config: Mapping[str, str], *,
                redis: RedisFactory | None = None) -> Backup:
    """Dump, media copy, Redis snapshot; a failure is kept (the upgrade is still
    rehearsed, the rollback then reports it)."""
    path = f"{rollback.BACKUP_DIR}/{rollback.DUMP_NAME}"
    backup = Backup(pod, path)
    try:
        run = rollback.kube_exec(kube, namespace, pod, POSTGRES_CONTAINER)
        rollback.timed(backup.timings, "dump_s",
                       lambda: rollback.backup_database(run, database_of(config), path))
        media = rollback.kube_exec(kube, namespace, pod, MEDIA_CONTAINER)
        rollback.timed(backup.timings, "media_copy_s",
                       lambda: media(rollback.media_copy_argv()))
        backup.media_copied = True
        if redis is not None:
            with redis() as client:
                backup.redis = rollback.timed(backup.timings, "redis_snapshot_s",
                                              lambda: rollback.redis_snapshot(client))
    except BadInput as exc:
        backup.error = str(exc)
    return backup


def restore_backup(kube: Any, namespace: str, pod: str, backup: Backup, source_tag: str,
                   config: Mapping[str, str], from_docs: Sequence[Mapping[str, Any]], *,
                   condition: Callable[[], Any], redis: RedisFactory | None = None,
                   api_errors: tuple[type[BaseException], ...] = (),
                   timeout: float = RESTORE_TIMEOUT_S, interval: float = 1.0) -> RollbackRecord:
    """TO -> FROM from the backup; ``condition`` is the readiness of FROM's pod
    (run.upgrade_condition at FROM's tag)."""
    record = RollbackRecord(source_tag, "")
    if backup.error:
        record.error = f"no backup to restore: {backup.error}"
        return record
    started = time.monotonic()
    try:
        run = rollback.kube_exec(kube, namespace, pod, POSTGRES_CONTAINER)
        rollback.timed(record.timings, "restore_s", lambda: rollback.restore_database(
            run, database_of(config), backup.dump_path))
        if backup.redis is not None and redis is not None:
            with redis() as client:
                snapshot = backup.redis
                rollback.timed(record.timings, "redis_restore_s",
                               lambda: rollback.redis_restore(_typed(client), snapshot))
        if backup.media_copied:
            media = rollback.kube_exec(kube, namespace, pod, MEDIA_CONTAINER)
            rollback.timed(record.timings, "media_restore_s",
                           lambda: media(rollback.media_restore_argv()))
        rollback.timed(record.timings, "redeploy_s", lambda: (
            apply_documents(kube, [dict(d) for d in from_docs], api_errors=api_errors),
            wait_for(condition, what=f"the Deployment back at {source_tag}", timeout=timeout,
                     interval=interval)))
        record.running_tag = source_tag
    except (BadInput, NotReady) as exc:
        record.error = " ".join(str(exc).split())
    record.rollback_s = round(time.monotonic() - started, 2)
    return record


def _typed(client: Any) -> RedisLike:
    return client  # type: ignore[no-any-return]
