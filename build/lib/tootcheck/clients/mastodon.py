"""Mastodon's REST API through Mastodon.py, over the target's pinned, CA-scoped session.

Mastodon.py knows the documented paths, scopes and entity shapes; this module
only builds a client that reaches the target the suite's way (name pinning, the
test CA only, bounded timeouts, fail fast on rate limits).
"""

from __future__ import annotations

from mastodon import Mastodon

from tootcheck import versions
from tootcheck.redaction import Secret
from tootcheck.target import Target

REQUEST_TIMEOUT_S = 30.0


def api(
    target: Target, token: Secret | None = None, *, timeout: float = REQUEST_TIMEOUT_S
) -> Mastodon:
    """A Mastodon.py client for ``target`` acting with ``token`` (anonymous when None)."""
    return Mastodon(
        access_token=token.reveal() if token is not None else None,
        api_base_url=target.base_url,
        session=target.http(),
        request_timeout=timeout,
        ratelimit_method="throw",
        version_check_mode="none",
        # A known version stops Mastodon.py fetching /api/v1/instance lazily (in 2.3 a
        # failed fetch makes media_post recurse); feature checks are off anyway.
        mastodon_version=versions.MASTODON.lstrip("v"),
        user_agent="tootcheck",
    )


def api_as(target: Target, role: str, **kwargs: float) -> Mastodon:
    """A client acting as the target's account ``role`` (test, second, admin)."""
    return api(target, target.account(role).token, **kwargs)
