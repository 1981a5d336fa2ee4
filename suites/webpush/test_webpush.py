"""Web push on the target: the served VAPID key, and a mention's push to the receiver.

Thin: checks from ``tootcheck.checks.webpush`` (proven with pywebpush-made messages in
``tests/checks/test_webpush.py``). ``webpush.vapid_key`` is read-only (every mode);
``webpush.delivery`` is mutating and kind-only (the receiver is the in-cluster peer).
"""

from __future__ import annotations

import pytest

from tootcheck.checks.webpush import check_delivery, check_vapid_key
from tootcheck.clients.activitypub import PeerAdmin
from tootcheck.peers import PEER_URL
from tootcheck.target import Target

pytestmark = pytest.mark.needs_target


def configured_vapid_key(env: dict[str, str]) -> str:
    if not env.get("VAPID_PUBLIC_KEY"):
        pytest.fail("ConfigMap mastodon-env has no VAPID_PUBLIC_KEY", pytrace=False)
    return env["VAPID_PUBLIC_KEY"]


@pytest.mark.check("webpush.vapid_key")
def test_vapid_key(target: Target, mastodon_env: dict[str, str]) -> None:
    result = check_vapid_key(target, configured_key=configured_vapid_key(mastodon_env))
    assert result.ok, result.summary


@pytest.mark.check("webpush.delivery")
def test_webpush_delivery(target: Target, peer_admin: PeerAdmin, mastodon_env: dict[str, str]) -> None:
    result = check_delivery(target, peer_admin, receiver_url=PEER_URL,
                            configured_key=configured_vapid_key(mastodon_env))
    assert result.ok, result.summary
