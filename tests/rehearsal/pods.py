"""Pods as the API server shows them during and after a Recreate upgrade (literal dicts)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from tootcheck import versions

T0 = 1_800_000_000.0
LABELS = {"app.kubernetes.io/name": "mastodon", "app.kubernetes.io/controller": "mastodon",
          "app.kubernetes.io/instance": "mastodon"}


def iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def mastodon_pod(
    tag: str,
    *,
    name: str = "mastodon-7c9d8f6b54-x2k9p",
    uid: str = "uid-new",
    start: float = T0,
    sidecars_at: tuple[float, float] = (2, 5),
    migrate: tuple[float, float | None] = (10, 52),
    migrate_exit: int | None = 0,
    migrate_restarts: int = 0,
    previous_exit: int | None = None,
    containers_at: float = 53,
    ready: bool = True,
    web_tag: str | None = None,
) -> dict[str, Any]:
    """The Mastodon pod of the reference Deployment, every time relative to ``start``."""
    mastodon = f"{versions.MASTODON_IMAGE}:{tag}"
    containers = [("sidekiq", mastodon), ("streaming", f"{versions.MASTODON_STREAMING_IMAGE}:{tag}"),
                  ("web", f"{versions.MASTODON_IMAGE}:{web_tag or tag}")]
    begun, finished = migrate
    term: dict[str, Any] = {"startedAt": iso(start + begun)}
    if finished is not None:
        term.update(finishedAt=iso(start + finished), exitCode=migrate_exit,
                    reason="Completed" if migrate_exit == 0 else "Error")
    migrate_status: dict[str, Any] = {
        "name": "db-migrate", "ready": False, "restartCount": migrate_restarts,
        "state": {"terminated": term} if finished is not None else {"running": term}}
    if previous_exit is not None:
        migrate_status["lastState"] = {"terminated": {"exitCode": previous_exit}}
    done = finished is not None and migrate_exit == 0
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "mastodon", "uid": uid, "labels": dict(LABELS),
                     "creationTimestamp": iso(start)},
        "spec": {
            "initContainers": [
                {"name": "postgres", "image": "docker.io/library/postgres:17.11-bookworm",
                 "restartPolicy": "Always"},
                {"name": "redis", "image": "docker.io/library/redis:7.4.11-alpine",
                 "restartPolicy": "Always"},
                {"name": "db-migrate", "image": mastodon,
                 "command": ["bundle", "exec", "rails", "db:prepare"]}],
            "containers": [{"name": n, "image": i} for n, i in containers]},
        "status": {
            "phase": "Running" if done else "Pending",
            "conditions": [{"type": "Ready", "status": "True" if done and ready else "False"}],
            "initContainerStatuses": [
                {"name": "postgres", "ready": True, "started": True, "restartCount": 0,
                 "state": {"running": {"startedAt": iso(start + sidecars_at[0])}}},
                {"name": "redis", "ready": True, "started": True, "restartCount": 0,
                 "state": {"running": {"startedAt": iso(start + sidecars_at[1])}}},
                migrate_status],
            "containerStatuses": [
                {"name": n, "image": i, "ready": ready, "started": True, "restartCount": 0,
                 "state": {"running": {"startedAt": iso(start + containers_at)}}}
                for n, i in containers] if done else [],
        },
    }
