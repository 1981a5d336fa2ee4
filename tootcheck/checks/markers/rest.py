"""The markers through Mastodon's REST API: write them, verify them, clean them up."""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import requests
from mastodon import Mastodon, MastodonError, MastodonNotFoundError, MastodonUnauthorizedError

from tootcheck.checks.markers.model import (
    DEFAULT_PUBLISH_GRACE_S,
    DEFAULT_SCHEDULED_IN_S,
    AccountMarker,
    FollowMarker,
    Marker,
    MarkerSet,
    MarkerWriteError,
    MediaMarker,
    Outage,
    Outcome,
    ScheduledMarker,
    StatusMarker,
    judge_scheduled,
    marker_png,
    result_of,
)
from tootcheck.clients.mastodon import api_as
from tootcheck.model import CheckResult
from tootcheck.target import Target
from tootcheck.waiting import Poll, WaitTimeout, wait_until

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


