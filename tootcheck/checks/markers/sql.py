"""The markers in PostgreSQL: tables and columns of Mastodon's ``db/schema.rb``."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from datetime import UTC
from typing import Any

import psycopg

from tootcheck.checks.markers.model import (
    DEFAULT_PUBLISH_GRACE_S,
    AccountMarker,
    FollowMarker,
    Marker,
    MarkerSet,
    MediaMarker,
    Outage,
    Outcome,
    ScheduledMarker,
    StatusMarker,
    judge_scheduled,
    result_of,
)
from tootcheck.model import CheckResult

# --------------------------------------------------------------- SQL verify


def verify_markers_db(
    conn: psycopg.Connection[Any] | str,
    markers: MarkerSet,
    *,
    publish_grace_s: float = DEFAULT_PUBLISH_GRACE_S,
    outages: Sequence[Outage] = (),
    check: str = "markers.db",
    target: str | None = None,
    now: Callable[[], float] = time.time,
) -> CheckResult:
    """Check the markers in PostgreSQL; a connection failure counts every marker lost."""
    try:
        outcomes = db_outcomes(conn, markers, publish_grace_s=publish_grace_s, outages=outages,
                               now=now)
    except psycopg.Error as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        outcomes = [Outcome(kind, m.key, "lost", f"{m.key}: cannot query PostgreSQL: {first}")
                    for kind, m in markers.items()]
    return result_of(outcomes, markers, check=check, target=target)


def db_outcomes(
    conn: psycopg.Connection[Any] | str,
    markers: MarkerSet,
    *,
    publish_grace_s: float = DEFAULT_PUBLISH_GRACE_S,
    outages: Sequence[Outage] = (),
    now: Callable[[], float] = time.time,
) -> list[Outcome]:
    """One outcome per marker from read-only SQL on Mastodon's tables."""
    if isinstance(conn, str):
        with psycopg.connect(conn, connect_timeout=10) as owned:
            return db_outcomes(owned, markers, publish_grace_s=publish_grace_s,
                               outages=outages, now=now)
    outcomes: list[Outcome] = []
    for kind, marker in markers.items():
        outcomes.append(_verify_one_db(conn, kind, marker, publish_grace_s, outages, now))
    conn.rollback()  # read-only: leave no transaction open
    return outcomes


def _row(conn: psycopg.Connection[Any], sql: str, params: tuple[Any, ...]) -> tuple[Any, ...] | None:
    return conn.execute(sql, params).fetchone()


def _verify_one_db(conn: psycopg.Connection[Any], kind: str, marker: Marker, grace_s: float,
                   outages: Sequence[Outage], now: Callable[[], float]) -> Outcome:
    key = marker.key
    if isinstance(marker, AccountMarker):
        row = _row(conn, "SELECT username FROM accounts WHERE id = %s AND domain IS NULL",
                   (int(marker.id),))
        ok = row is not None and row[0] == marker.username
        return Outcome(kind, key, "found" if ok else "lost",
                       "present" if ok else f"{key}: no accounts row {marker.id}")
    if isinstance(marker, StatusMarker):
        row = _row(conn, "SELECT text FROM statuses WHERE id = %s AND account_id = %s "
                         "AND deleted_at IS NULL", (int(marker.id), int(marker.account_id)))
        ok = row is not None and marker.nonce in row[0]
        return Outcome(kind, key, "found" if ok else "lost",
                       "present" if ok else f"{key}: no statuses row")
    if isinstance(marker, MediaMarker):
        row = _row(conn, "SELECT status_id, file_file_name, file_file_size FROM media_attachments "
                         "WHERE id = %s AND account_id = %s",
                   (int(marker.id), int(marker.account_id)))
        if row is None:
            return Outcome(kind, key, "lost", f"{key}: no media_attachments row")
        if str(row[0]) != marker.status_id or row[1] != marker.file_name:
            return Outcome(kind, key, "changed",
                           f"{key}: row now has status {row[0]} and file {row[1]} "
                           f"(was {marker.status_id}, {marker.file_name})")
        if row[2] is not None and row[2] != marker.size:
            return Outcome(kind, key, "changed",
                           f"{key}: file_file_size {row[2]} (was {marker.size})")
        return Outcome(kind, key, "found", "present")
    if isinstance(marker, ScheduledMarker):
        still = _row(conn, "SELECT scheduled_at FROM scheduled_statuses WHERE id = %s",
                     (int(marker.id),)) is not None
        published = None
        if not still:
            row = _row(conn, "SELECT created_at FROM statuses WHERE account_id = %s AND "
                             "deleted_at IS NULL AND position(%s in text) > 0 "
                             "ORDER BY id DESC LIMIT 1", (int(marker.account_id), marker.nonce))
            if row is not None:
                published = row[0].replace(tzinfo=UTC).timestamp()
        return judge_scheduled(marker, now=now(), still_scheduled=still, published_at=published,
                               grace_s=grace_s, outages=outages)
    assert isinstance(marker, FollowMarker)
    row = _row(conn, "SELECT 1 FROM follows WHERE account_id = %s AND target_account_id = %s",
               (int(marker.account_id), int(marker.target_account_id)))
    return Outcome(kind, key, "found" if row else "lost",
                   "present" if row else f"{key}: no follows row")


