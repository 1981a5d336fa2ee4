"""webpush.vapid_key and webpush.delivery with real Web Push crypto.

The simulated Mastodon answers ``/api/v2/instance`` and, when the second account
mentions the test account, sends a Web Push message the way Web::PushNotificationWorker
does: encrypted per RFC 8291 by pywebpush, VAPID-signed (RFC 8292) by py_vapid, POSTed
to the receiver in the fediverse peer program. The check decrypts and verifies it.
"""

from __future__ import annotations

import json
import time

import pytest
from py_vapid import Vapid02
from pywebpush import WebPusher

from tests.peers.fediverse import FediversePeer
from tests.peers.mastodon_side import SimulatedMastodon
from tootcheck.checks.webpush import check_delivery, check_vapid_key
from tootcheck.clients import webpush as wp
from tootcheck.testing import expect_fault, expect_ok

FAST = 0.5  # the bound when the push is meant never to come (a healthy one takes ms)
HEALTHY = 15.0


def run_delivery(mastodon_sim: SimulatedMastodon, peer: FediversePeer, timeout: float = FAST):
    return check_delivery(mastodon_sim.target(), peer.admin, receiver_url=peer.public_url,
                          configured_key=mastodon_sim.vapid_public_key, timeout=timeout, interval=0.05)


# ----------------------------------------------------------------- the client


def test_library_made_push_is_verified_and_decrypted():
    """pywebpush encrypts, py_vapid signs; the client verifies and decrypts."""
    keys = wp.SubscriptionKeys.generate()
    vapid = Vapid02()
    vapid.generate_keys()
    endpoint = "https://fedi.peer.test/push/x"
    encoded = WebPusher(keys.subscription_info(endpoint)).encode(b'{"hello": "push"}', "aes128gcm")
    claims = {"aud": "https://fedi.peer.test", "exp": int(time.time()) + 3600, "sub": "mailto:a@b.example"}
    header = wp.parse_vapid_authorization(vapid.sign(dict(claims))["Authorization"])
    assert wp.same_p256_key(header.key, wp.b64url(wp.point_bytes(vapid.public_key)))
    assert wp.verify_vapid_token(header) == claims
    assert wp.claim_problems(claims, audience=wp.origin(endpoint), now=time.time()) == []
    assert json.loads(wp.decrypt(encoded["body"], keys)) == {"hello": "push"}
    with pytest.raises(wp.DecryptError):
        wp.decrypt(encoded["body"], wp.SubscriptionKeys.generate())


def test_claim_problems_name_what_is_wrong():
    now = time.time()
    problems = wp.claim_problems({"aud": "https://x.example", "exp": now + 90000, "sub": "mailto:"},
                                 audience="https://fedi.peer.test", now=now)
    assert problems[0] == "aud is 'https://x.example', expected 'https://fedi.peer.test'"
    assert "25.0 h ahead" in problems[1]
    assert "set the server's contact e-mail" in problems[2]
    assert "in the past" in wp.claim_problems({"aud": "a", "exp": now - 10, "sub": "https://x"},
                                              audience="a", now=now)[0]


def test_origin_matches_addressable_normalized_site():
    assert wp.origin("https://Fedi.Peer.test:443/push/1") == "https://fedi.peer.test"
    assert wp.origin("https://fedi.peer.test:8443/push/1") == "https://fedi.peer.test:8443"


def test_key_spellings_compare_by_point():
    keys = wp.SubscriptionKeys.generate()
    padded = wp.b64url(keys.public_bytes) + "="
    standard = __import__("base64").b64encode(keys.public_bytes).decode()
    assert wp.same_p256_key(padded, standard)
    assert not wp.same_p256_key(padded, wp.SubscriptionKeys.generate().p256dh)
    with pytest.raises(wp.KeyFormatError):
        wp.decode_p256_public("bm90LWEta2V5")


# ------------------------------------------------------------- vapid_key check


def test_served_vapid_key_matches_configuration(mastodon_sim):
    expect_ok(check_vapid_key(mastodon_sim.target(), configured_key=mastodon_sim.vapid_public_key))


@pytest.mark.parametrize(("fault", "code", "mentions"), [
    ("vapid-missing", "vapid-key-missing", "no configuration.vapid.public_key"),
    ("vapid-other", "vapid-key-mismatch", "VAPID_PUBLIC_KEY is"),
    ("vapid-garbage", "vapid-key-invalid", "the served key bm90LWEta2V5... is invalid"),
])
def test_vapid_key_faults(mastodon_sim, fault, code, mentions):
    mastodon_sim.reset(fault)
    expect_fault(check_vapid_key(mastodon_sim.target(), configured_key=mastodon_sim.vapid_public_key),
                 code, mentions=mentions)


# ------------------------------------------------------------- delivery check


def test_push_is_delivered_signed_and_decryptable(mastodon_sim, fediverse_peer):
    result = expect_ok(run_delivery(mastodon_sim, fediverse_peer, HEALTHY))
    assert result.evidence["payload"]["notification_type"] == "mention"
    assert result.evidence["payload"]["title"] == "second mentioned you"
    assert result.evidence["vapid_claims"]["aud"] == "https://fedi.peer.test"
    assert "access_token" not in json.dumps(result.evidence)
    assert mastodon_sim.accounts["test"]["token"] not in json.dumps(result.evidence)
    assert result.evidence["subscription"] == {"standard": True, "alerts": {"mention": True},
                                              "policy": "all"}
    assert result.evidence["cleanup"] == ["mention deleted", "push subscription deleted"]
    assert mastodon_sim.subscriptions == {}


@pytest.mark.parametrize(("fault", "code", "mentions"), [
    ("refuse-subscription", "push-subscription-refused", "HTTP 403 (the token needs the push scope)"),
    ("ignore-standard", "push-not-standard", "came back without standard: true"),
    ("no-push", "push-not-delivered", "no Web Push request reached https://fedi.peer.test/push/"),
    ("legacy-push", "push-not-standard", "Content-Encoding is 'aesgcm', not aes128gcm"),
    ("wrong-vapid", "push-vapid-wrong-key", "the configured VAPID_PUBLIC_KEY is"),
    ("forged-vapid", "push-vapid-invalid", "JWT signature does not verify with k="),
    ("wrong-aud", "push-vapid-claims", "aud is 'https://push.elsewhere.example'"),
    ("wrong-sub-key", "push-undecryptable", "does not decrypt with the subscription's key"),
    ("tamper-push", "push-undecryptable", "encrypted for another key, or altered in transit"),
    ("wrong-notification", "push-wrong-notification", "notification_type is 'favourite'"),
])
def test_broken_push_is_caught(mastodon_sim, fediverse_peer, fault, code, mentions):
    mastodon_sim.reset(fault)
    timeout = FAST if fault.startswith("no-") else HEALTHY  # only absence waits out the bound
    result = expect_fault(run_delivery(mastodon_sim, fediverse_peer, timeout), code, mentions=mentions)
    assert len(result.faults) == 1, result.summary
