"""Seeded data that must survive restarts and upgrades: write it, record it, check it.

A :class:`MarkerSet` is written through Mastodon's REST API before a restart (or
an upgrade) and checked afterwards, either through REST (:func:`verify_markers`,
which also compares media bytes downloaded from their URLs) or directly in
PostgreSQL (:func:`verify_markers_db`, tables and columns of Mastodon's
``db/schema.rb``). Both return a :class:`CheckResult` whose metrics count
markers written, found and lost. The set serialises to JSON without secrets (it
names account roles, never tokens), so the upgrade rehearsal can write markers
with one release and check them with the next.

Kinds and where Mastodon keeps them:
- account: ``accounts`` row (and the role's token in ``oauth_access_tokens``);
- status: ``statuses`` row;
- media: ``media_attachments`` row plus the file under ``public/system`` (NFS);
  Mastodon re-encodes uploads, so the checksum is of the bytes served *after*
  upload, not of the bytes sent;
- scheduled status: a ``scheduled_statuses`` row (PostStatusService#schedule_status!);
  Scheduler::ScheduledStatusesScheduler (every 5 min, config/sidekiq.yml) puts
  those due within ScheduledStatus::MINIMUM_OFFSET (5 min) into Sidekiq's
  ``schedule`` sorted set in Redis via PublishScheduledStatusWorker.perform_at,
  which deletes the row and posts the status when due. So it is either still
  scheduled, or published (by then it should be on time, within a grace);
- follow: ``follows`` row.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import struct
import time
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import PurePosixPath
from typing import Any, Literal
from urllib.parse import urlsplit

import psycopg
import requests
from mastodon import Mastodon, MastodonError, MastodonNotFoundError, MastodonUnauthorizedError

from tootcheck.clients.mastodon import api_as
from tootcheck.model import CheckResult, CheckRun
from tootcheck.target import Target
from tootcheck.waiting import Poll, WaitTimeout, wait_until

CHECK = "persistence.markers_survive"
SCHEDULE_MINIMUM_OFFSET_S = 300.0  # ScheduledStatus::MINIMUM_OFFSET
SCHEDULER_INTERVAL_S = 300.0  # scheduled_statuses_scheduler: every 5m
DEFAULT_SCHEDULED_IN_S = SCHEDULE_MINIMUM_OFFSET_S + 60.0
DEFAULT_PUBLISH_GRACE_S = SCHEDULER_INTERVAL_S + 60.0
FAULT_FOR_STATE = {"lost": "marker-lost", "changed": "media-changed", "late": "scheduled-late"}


class MarkerWriteError(RuntimeError):
    """Writing the markers failed; ``partial`` holds what was written (for cleanup)."""

    def __init__(self, message: str, partial: MarkerSet) -> None:
        super().__init__(message)
        self.partial = partial


# ----------------------------------------------------------------- the set


@dataclass(frozen=True)
class AccountMarker:
    role: str
    id: str
    username: str

    @property
    def key(self) -> str:
        return f"account @{self.username}"


@dataclass(frozen=True)
class StatusMarker:
    id: str
    account_id: str
    author_role: str
    nonce: str
    url: str | None = None

    @property
    def key(self) -> str:
        return f"status {self.id}"


@dataclass(frozen=True)
class MediaMarker:
    id: str
    account_id: str
    author_role: str
    status_id: str
    url: str
    sha256: str
    size: int

    @property
    def key(self) -> str:
        return f"media {self.id}"

    @property
    def file_name(self) -> str:
        return PurePosixPath(urlsplit(self.url).path).name


@dataclass(frozen=True)
class ScheduledMarker:
    id: str
    account_id: str
    author_role: str
    nonce: str
    scheduled_at: float  # epoch seconds

    @property
    def key(self) -> str:
        return f"scheduled status {self.id}"


@dataclass(frozen=True)
class FollowMarker:
    follower_role: str
    account_id: str
    target_account_id: str
    preexisting: bool = False  # it existed before: cleanup leaves it in place

    @property
    def key(self) -> str:
        return f"follow {self.account_id}->{self.target_account_id}"


Marker = AccountMarker | StatusMarker | MediaMarker | ScheduledMarker | FollowMarker


@dataclass
class MarkerSet:
    """What was written, keyed by ids the server assigned; no secrets."""

    run_id: str
    target: str
    written_at: float
    accounts: list[AccountMarker] = field(default_factory=list)
    statuses: list[StatusMarker] = field(default_factory=list)
    media: list[MediaMarker] = field(default_factory=list)
    scheduled: list[ScheduledMarker] = field(default_factory=list)
    follows: list[FollowMarker] = field(default_factory=list)

    def items(self) -> Iterator[tuple[str, Marker]]:
        for kind, markers in (("account", self.accounts), ("status", self.statuses),
                              ("media", self.media), ("scheduled", self.scheduled),
                              ("follow", self.follows)):
            for marker in markers:
                yield kind, marker

    @property
    def count(self) -> int:
        return sum(1 for _ in self.items())

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MarkerSet:
        return cls(
            run_id=str(data["run_id"]),
            target=str(data["target"]),
            written_at=float(data["written_at"]),
            accounts=[AccountMarker(**m) for m in data.get("accounts", [])],
            statuses=[StatusMarker(**m) for m in data.get("statuses", [])],
            media=[MediaMarker(**m) for m in data.get("media", [])],
            scheduled=[ScheduledMarker(**m) for m in data.get("scheduled", [])],
            follows=[FollowMarker(**m) for m in data.get("follows", [])],
        )

    @classmethod
    def from_json(cls, text: str) -> MarkerSet:
        return cls.from_dict(json.loads(text))


# ------------------------------------------------------------ pure verdicts

State = Literal["found", "lost", "changed", "late"]


@dataclass(frozen=True)
class Outcome:
    kind: str
    key: str
    state: State
    detail: str

    @property
    def found(self) -> bool:
        return self.state == "found"


Outage = tuple[float, float]  # (down from, answering again at), epoch seconds


def service_time(since: float, until: float, outages: Sequence[Outage] = ()) -> float:
    """Seconds between ``since`` and ``until`` during which the service was up (the
    restart windows subtracted): how long a due job really had to run.

    >>> service_time(100.0, 150.0, [(90.0, 130.0)]), service_time(100.0, 150.0)
    (20.0, 50.0)
    """
    span = max(0.0, until - since)
    merged: list[list[float]] = []
    for start, end in sorted(outages):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    for start, end in merged:
        span -= max(0.0, min(end, until) - max(start, since))
    return max(0.0, span)


def judge_scheduled(
    marker: ScheduledMarker,
    *,
    now: float,
    still_scheduled: bool,
    published_at: float | None,
    grace_s: float,
    outages: Sequence[Outage] = (),
) -> Outcome:
    """Still scheduled (and not overdue beyond the grace), or published on time. Lateness
    counts service time only: restart windows (``outages``) are not held against it."""
    due = marker.scheduled_at
    excluded = ", restarts excluded" if outages else ""
    if still_scheduled:
        overdue = service_time(due, now, outages)
        if overdue > grace_s:
            return Outcome("scheduled", marker.key, "late",
                           f"{marker.key} still scheduled {overdue:.0f}s after its time"
                           f"{excluded} (grace {grace_s:g}s)")
        return Outcome("scheduled", marker.key, "found", "still scheduled")
    if published_at is not None:
        delay = service_time(due, published_at, outages)
        if delay > grace_s:
            return Outcome("scheduled", marker.key, "late",
                           f"{marker.key} published {delay:.0f}s after its time{excluded} "
                           f"(grace {grace_s:g}s)")
        return Outcome("scheduled", marker.key, "found",
                       f"published {published_at - due:+.1f}s from its time")
    return Outcome("scheduled", marker.key, "lost",
                   f"{marker.key} is neither scheduled nor published")


def tally(outcomes: list[Outcome], written: int) -> dict[str, float]:
    found = sum(1 for o in outcomes if o.found)
    return {"markers_written": float(written), "markers_found": float(found),
            "markers_lost": float(written - found)}


def record(run: CheckRun, outcomes: list[Outcome], *, when: str = "") -> None:
    """Add one fault per marker not found (one line, naming the marker and when)."""
    prefix = f"after {when}: " if when else ""
    for outcome in outcomes:
        run.observe()
        if not outcome.found:
            run.fail(FAULT_FOR_STATE[outcome.state], prefix + outcome.detail)


def outcomes_evidence(outcomes: list[Outcome]) -> list[dict[str, str]]:
    return [asdict(o) for o in outcomes]


def result_of(outcomes: list[Outcome], markers: MarkerSet, *, check: str = CHECK,
              target: str | None = None) -> CheckResult:
    run = CheckRun(check, target or markers.target)
    record(run, outcomes)
    run.metrics.update(tally(outcomes, markers.count))
    run.evidence["outcomes"] = outcomes_evidence(outcomes)
    run.evidence["run_id"] = markers.run_id
    return run.result()


# -------------------------------------------------------------- the image


def marker_png(seed: str, size: int = 16) -> bytes:
    """A small, valid, unique RGB PNG derived from ``seed`` (no imaging library)."""
    stream = b""
    block = hashlib.sha256(seed.encode()).digest()
    while len(stream) < size * size * 3:
        stream += block
        block = hashlib.sha256(block).digest()
    rows = b"".join(b"\x00" + stream[r * size * 3:(r + 1) * size * 3] for r in range(size))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    header = struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


# -------------------------------------------------------------- REST write


def as_epoch(value: object) -> float | None:
    """Mastodon.py gives datetimes; raw JSON gives ISO strings."""
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()
    if isinstance(value, str) and value:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()
    return None


def download(target: Target, url: str, timeout: float = 30.0) -> bytes:
    """Fetch a media URL through the target's pinned, CA-scoped session."""
    with target.http() as session:
        response = session.get(url, timeout=timeout)
        response.raise_for_status()
        return response.content


def _uploaded_url(client: Mastodon, media: Mapping[str, Any], timeout_s: float) -> str:
    if media.get("url"):
        return str(media["url"])

    def processed() -> Poll[str]:
        current = client.media(media["id"])
        return Poll(bool(current.get("url")), current.get("url"), "url still null (processing)")

    url = wait_until(processed, what=f"media {media['id']} to be processed", timeout=timeout_s,
                     interval=1.0)
    return str(url)


def write_markers(
    target: Target,
    *,
    author: str = "test",
    follower: str = "second",
    scheduled_in_s: float = DEFAULT_SCHEDULED_IN_S,
    media_timeout_s: float = 60.0,
    clock: Callable[[], float] = time.time,
) -> MarkerSet:
    """Write one marker of every kind through REST; raises :class:`MarkerWriteError`."""
    run_id = secrets.token_hex(6)
    markers = MarkerSet(run_id=run_id, target=target.name, written_at=clock())
    step = "start"
    try:
        step = "instance"
        writer = api_as(target, author)
        # media_post consults the server version; fetch it now so a failure raises
        # (Mastodon.py 2.3 recurses endlessly when a lazy version fetch fails)
        writer.retrieve_mastodon_version(fail_hard=True)
        step = "verify_credentials"
        reader = api_as(target, follower)
        me = writer.account_verify_credentials()
        other = reader.account_verify_credentials()
        markers.accounts += [AccountMarker(author, str(me["id"]), str(me["username"])),
                             AccountMarker(follower, str(other["id"]), str(other["username"]))]
        step = "media upload"
        image = marker_png(f"tootcheck-marker-{run_id}")
        media = writer.media_post(image, mime_type="image/png", file_name=f"{run_id}.png",
                                  description=f"tootcheck marker {run_id}")
        url = _uploaded_url(writer, media, media_timeout_s)
        served = download(target, url)
        step = "status post"
        nonce = f"tootcheck-marker-{run_id}"
        status = writer.status_post(f"{nonce} persistence marker", media_ids=[media["id"]],
                                    visibility="unlisted")
        markers.statuses.append(StatusMarker(str(status["id"]), str(me["id"]), author, nonce,
                                             status.get("url")))
        markers.media.append(MediaMarker(str(media["id"]), str(me["id"]), author,
                                         str(status["id"]), url,
                                         hashlib.sha256(served).hexdigest(), len(served)))
        step = "scheduled status"
        due = datetime.fromtimestamp(clock() + scheduled_in_s, tz=UTC)
        scheduled_nonce = f"tootcheck-scheduled-{run_id}"
        scheduled = writer.status_post(f"{scheduled_nonce} scheduled marker", scheduled_at=due,
                                       visibility="unlisted")
        markers.scheduled.append(ScheduledMarker(
            str(scheduled["id"]), str(me["id"]), author, scheduled_nonce,
            as_epoch(scheduled.get("scheduled_at")) or due.timestamp()))
        step = "follow"
        before = reader.account_relationships(me["id"])
        existed = any(str(r["id"]) == str(me["id"]) and r.get("following") for r in before)
        reader.account_follow(me["id"])
        markers.follows.append(FollowMarker(follower, str(other["id"]), str(me["id"]), existed))
    except (MastodonError, requests.RequestException, WaitTimeout, LookupError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else ""
        raise MarkerWriteError(f"writing markers failed at {step}: {type(exc).__name__}: "
                               f"{first}", markers) from exc
    return markers


# ------------------------------------------------------------- REST verify


def _client_error(exc: Exception) -> str:
    if isinstance(exc, MastodonUnauthorizedError):
        return "token rejected (401)"
    if isinstance(exc, MastodonNotFoundError):
        return "not found (404)"
    first = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {first}"[:200]


def _published_at(client: Mastodon, account_id: str, nonce: str) -> float | None:
    for status in client.account_statuses(account_id, limit=40):
        if nonce in str(status.get("content", "")):
            return as_epoch(status.get("created_at"))
    return None


def verify_markers(
    target: Target,
    markers: MarkerSet,
    *,
    publish_grace_s: float = DEFAULT_PUBLISH_GRACE_S,
    outages: Sequence[Outage] = (),
    check: str = "markers.rest",
    now: Callable[[], float] = time.time,
) -> CheckResult:
    """Check every marker through REST; metrics count written, found and lost."""
    outcomes = rest_outcomes(target, markers, publish_grace_s=publish_grace_s, outages=outages,
                             now=now)
    return result_of(outcomes, markers, check=check, target=target.name)


def rest_outcomes(
    target: Target,
    markers: MarkerSet,
    *,
    publish_grace_s: float = DEFAULT_PUBLISH_GRACE_S,
    outages: Sequence[Outage] = (),
    now: Callable[[], float] = time.time,
) -> list[Outcome]:
    """One outcome per marker, through REST; media bytes are downloaded and compared."""
    clients: dict[str, Mastodon] = {}

    def client(role: str) -> Mastodon:
        if role not in clients:
            clients[role] = api_as(target, role)
        return clients[role]

    outcomes: list[Outcome] = []
    for kind, marker in markers.items():
        try:
            outcomes.append(_verify_one(target, kind, marker, client, publish_grace_s, outages,
                                        now))
        except (MastodonError, requests.RequestException, LookupError) as exc:
            outcomes.append(Outcome(kind, marker.key, "lost",
                                    f"{marker.key}: {_client_error(exc)}"))
    return outcomes


def _verify_one(target: Target, kind: str, marker: Marker,
                client: Callable[[str], Mastodon], grace_s: float,
                outages: Sequence[Outage], now: Callable[[], float]) -> Outcome:
    if isinstance(marker, AccountMarker):
        me = client(marker.role).account_verify_credentials()
        looked_up = client(marker.role).account_lookup(marker.username)
        if str(me["id"]) != marker.id or str(looked_up["id"]) != marker.id:
            return Outcome(kind, marker.key, "lost",
                           f"{marker.key} now has id {looked_up['id']} (was {marker.id})")
        return Outcome(kind, marker.key, "found", "present")
    if isinstance(marker, StatusMarker):
        status = client(marker.author_role).status(marker.id)
        if marker.nonce not in str(status.get("content", "")):
            return Outcome(kind, marker.key, "lost", f"{marker.key} lost its text")
        return Outcome(kind, marker.key, "found", "present")
    if isinstance(marker, MediaMarker):
        return _verify_media(target, marker, client)
    if isinstance(marker, ScheduledMarker):
        api = client(marker.author_role)
        try:
            api.scheduled_status(marker.id)
            still = True
        except MastodonNotFoundError:
            still = False
        published = None if still else _published_at(api, marker.account_id, marker.nonce)
        return judge_scheduled(marker, now=now(), still_scheduled=still,
                               published_at=published, grace_s=grace_s, outages=outages)
    assert isinstance(marker, FollowMarker)
    relations = client(marker.follower_role).account_relationships(marker.target_account_id)
    following = any(str(r["id"]) == marker.target_account_id
                    and (r.get("following") or r.get("requested")) for r in relations)
    return Outcome(kind, marker.key, "found" if following else "lost",
                   "present" if following else f"{marker.key} is gone")


def _verify_media(target: Target, marker: MediaMarker,
                  client: Callable[[str], Mastodon]) -> Outcome:
    key = marker.key
    try:
        status = client(marker.author_role).status(marker.status_id)
    except MastodonNotFoundError:
        return Outcome("media", key, "lost", f"{key}: its status {marker.status_id} is gone")
    attached = [m for m in status.get("media_attachments", []) if str(m["id"]) == marker.id]
    if not attached:
        return Outcome("media", key, "lost",
                       f"{key} is no longer attached to status {marker.status_id}")
    if str(attached[0].get("url")) != marker.url:
        return Outcome("media", key, "changed",
                       f"{key} URL changed from {marker.url} to {attached[0].get('url')}")
    try:
        data = download(target, marker.url)
    except requests.HTTPError as exc:
        code = exc.response.status_code if exc.response is not None else "?"
        return Outcome("media", key, "lost", f"{key}: {marker.url} answers HTTP {code}")
    digest = hashlib.sha256(data).hexdigest()
    if digest != marker.sha256:
        return Outcome("media", key, "changed",
                       f"{key} bytes changed: sha256 {digest[:12]}.. ({len(data)} B), "
                       f"was {marker.sha256[:12]}.. ({marker.size} B)")
    return Outcome("media", key, "found", "bytes identical")


def cleanup_markers(target: Target, markers: MarkerSet) -> list[str]:
    """Best effort: delete what the markers created; returns what could not be removed."""
    problems: list[str] = []

    def attempt(what: str, action: Callable[[], object]) -> None:
        try:
            action()
        except (MastodonError, requests.RequestException, LookupError) as exc:
            if not isinstance(exc, MastodonNotFoundError):
                problems.append(f"{what}: {_client_error(exc)}")

    for status in markers.statuses:
        def delete(s: StatusMarker = status) -> None:
            api_as(target, s.author_role).status_delete(s.id)

        attempt(status.key, delete)
    for scheduled in markers.scheduled:
        api = api_as(target, scheduled.author_role)

        def drop(s: ScheduledMarker = scheduled, api: Mastodon = api) -> None:
            try:
                api.scheduled_status_delete(s.id)
            except MastodonNotFoundError:
                for status in api.account_statuses(s.account_id, limit=40):
                    if s.nonce in str(status.get("content", "")):
                        api.status_delete(status["id"])

        attempt(scheduled.key, drop)
    for follow in markers.follows:
        if not follow.preexisting:
            def unfollow(f: FollowMarker = follow) -> None:
                api_as(target, f.follower_role).account_unfollow(f.target_account_id)

            attempt(follow.key, unfollow)
    return problems


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

