"""Mastodon REST entities as JSON-ready dicts, shaped like the real serializers.

The shapes follow Mastodon's ``app/serializers/rest/status_serializer.rb``,
``account_serializer.rb`` and ``credential_account_serializer.rb`` (upstream
4.5-era source) and the entity pages of docs.joinmastodon.org. Peers use them
for REST responses and streaming payloads; realism matters because the real
streaming server reads ``media_attachments``, ``mentions``, ``poll``,
``spoiler_text``, ``language`` and ``account.acct`` of every ``update`` it
filters (and exits when one is missing, see local-peers.md).

Other peers may add builders here (notifications, media, polls, ...).
"""

from __future__ import annotations

import html
import itertools
import threading
import time
from datetime import UTC, datetime
from typing import Any

_SEQUENCE = itertools.count()
_SEQUENCE_LOCK = threading.Lock()


def snowflake_id(at: float | None = None) -> str:
    """A Mastodon-style id: milliseconds since the epoch << 16 plus a sequence."""
    millis = int((time.time() if at is None else at) * 1000)
    with _SEQUENCE_LOCK:
        sequence = next(_SEQUENCE) & 0xFFFF
    return str((millis << 16) | sequence)


def iso_timestamp(at: float | None = None) -> str:
    """``2026-11-24T10:11:12.345Z``, the format Mastodon's JSON uses."""
    moment = datetime.fromtimestamp(time.time() if at is None else at, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def account_entity(
    account_id: str,
    username: str,
    *,
    domain: str = "kirchner.social",
    remote_domain: str | None = None,
    display_name: str = "",
    statuses_count: int = 0,
    created_at: str | None = None,
) -> dict[str, Any]:
    """REST::AccountSerializer output for a local (or, with ``remote_domain``, remote) account."""
    host = remote_domain or domain
    acct = f"{username}@{remote_domain}" if remote_domain else username
    url = f"https://{host}/@{username}"
    entity: dict[str, Any] = {
        "id": account_id,
        "username": username,
        "acct": acct,
        "display_name": display_name,
        "locked": False,
        "bot": False,
        "discoverable": True,
        "indexable": False,
        "group": False,
        "created_at": created_at or iso_timestamp(),
        "note": "",
        "url": url,
        "uri": f"https://{host}/users/{username}",
        "avatar": f"https://{domain}/avatars/original/missing.png",
        "avatar_static": f"https://{domain}/avatars/original/missing.png",
        "header": f"https://{domain}/headers/original/missing.png",
        "header_static": f"https://{domain}/headers/original/missing.png",
        "followers_count": 0,
        "following_count": 0,
        "statuses_count": statuses_count,
        "last_status_at": None,
        "hide_collections": False,
        "emojis": [],
        "fields": [],
    }
    if remote_domain is None:
        entity["noindex"] = False
        entity["roles"] = []
    return entity


def credential_account_entity(account: dict[str, Any]) -> dict[str, Any]:
    """REST::CredentialAccountSerializer: the account plus ``source`` and ``role``."""
    return {
        **account,
        "source": {
            "privacy": "public",
            "sensitive": False,
            "language": None,
            "note": account.get("note", ""),
            "fields": [],
            "follow_requests_count": 0,
            "hide_collections": False,
            "discoverable": True,
            "indexable": False,
            "attribution_domains": [],
        },
        "role": {"id": "-99", "name": "", "permissions": "0", "color": "", "highlighted": False},
    }


def status_content(text: str) -> str:
    """Plain text rendered the way Mastodon's formatter does for simple text."""
    paragraphs = [p for p in text.split("\n\n") if p]
    return "".join(f"<p>{html.escape(p).replace(chr(10), '<br />')}</p>" for p in paragraphs)


def status_entity(
    account: dict[str, Any],
    text: str,
    *,
    status_id: str | None = None,
    visibility: str = "public",
    language: str | None = "en",
    spoiler_text: str = "",
    sensitive: bool = False,
    domain: str = "kirchner.social",
    viewer: bool = True,
    source_requested: bool = False,
    created_at: str | None = None,
    application: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """REST::StatusSerializer output.

    ``viewer`` adds the per-user fields (favourited, reblogged, muted,
    bookmarked, pinned, filtered) that a rendering for a signed-in user carries;
    the anonymous rendering Mastodon publishes to public streams lacks them.
    ``source_requested`` swaps ``content`` for ``text`` as DELETE's response does.
    """
    status_id = status_id or snowflake_id()
    username = account["username"]
    entity: dict[str, Any] = {
        "id": status_id,
        "created_at": created_at or iso_timestamp(),
        "in_reply_to_id": None,
        "in_reply_to_account_id": None,
        "sensitive": sensitive,
        "spoiler_text": spoiler_text,
        "visibility": visibility,
        "language": language,
        "uri": f"https://{domain}/users/{username}/statuses/{status_id}",
        "url": f"https://{domain}/@{username}/{status_id}",
        "replies_count": 0,
        "reblogs_count": 0,
        "favourites_count": 0,
        "edited_at": None,
    }
    if viewer:
        entity.update({"favourited": False, "reblogged": False, "muted": False,
                       "bookmarked": False})
        if visibility in ("public", "unlisted"):
            entity["pinned"] = False
        entity["filtered"] = []
    if source_requested:
        entity["text"] = text
    else:
        entity["content"] = status_content(text)
    entity.update({
        "reblog": None,
        "application": application or {"name": "tootcheck", "website": None},
        "account": account,
        "media_attachments": [],
        "mentions": [],
        "tags": [],
        "emojis": [],
        "quote": None,
        "card": None,
        "poll": None,
    })
    return entity


# ---- media, scheduled statuses, notifications, relationships (persistence/sidekiq peer)


def media_attachment_entity(
    media_id: str,
    url: str | None,
    *,
    media_type: str = "image",
    description: str | None = None,
    width: int = 0,
    height: int = 0,
) -> dict[str, Any]:
    """REST::MediaAttachmentSerializer output; ``url`` is None while processing."""
    size = {"width": width, "height": height, "size": f"{width}x{height}",
            "aspect": (width / height) if height else 0}
    return {
        "id": media_id,
        "type": media_type,
        "url": url,
        "preview_url": url,
        "remote_url": None,
        "preview_remote_url": None,
        "text_url": None,
        "meta": {"original": size, "small": size} if width else {},
        "description": description,
        "blurhash": None,
    }


def scheduled_status_entity(
    scheduled_id: str,
    scheduled_at: str,
    params: dict[str, Any],
    media_attachments: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """REST::ScheduledStatusSerializer output: id, scheduled_at, params, media."""
    full_params = {
        "text": "", "poll": None, "media_ids": None, "sensitive": None, "visibility": None,
        "spoiler_text": None, "language": None, "scheduled_at": None, "in_reply_to_id": None,
        "application_id": None, "idempotency": None, "with_rate_limit": False,
        **params,
    }
    return {"id": scheduled_id, "scheduled_at": scheduled_at, "params": full_params,
            "media_attachments": media_attachments or []}


def notification_entity(
    notification_id: str,
    notification_type: str,
    account: dict[str, Any],
    *,
    status: dict[str, Any] | None = None,
    created_at: str | None = None,
) -> dict[str, Any]:
    """REST::NotificationSerializer output (``status`` for status-bearing types)."""
    entity: dict[str, Any] = {
        "id": notification_id,
        "type": notification_type,
        "created_at": created_at or iso_timestamp(),
        "group_key": f"ungrouped-{notification_id}",
        "account": account,
    }
    if status is not None:
        entity["status"] = status
    return entity


def relationship_entity(
    account_id: str, *, following: bool = False, followed_by: bool = False,
    requested: bool = False,
) -> dict[str, Any]:
    """REST::RelationshipSerializer output."""
    return {
        "id": account_id,
        "following": following,
        "showing_reblogs": following,
        "notifying": False,
        "languages": None,
        "followed_by": followed_by,
        "blocking": False,
        "blocked_by": False,
        "muting": False,
        "muting_notifications": False,
        "requested": requested,
        "requested_by": False,
        "domain_blocking": False,
        "endorsed": False,
        "note": "",
    }
