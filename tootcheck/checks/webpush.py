"""webpush.*: the instance's VAPID key, and Web Push messages Sidekiq sends for notifications.

``webpush.vapid_key`` (read-only): ``GET /api/v2/instance`` serves
``configuration.vapid.public_key`` (app/serializers/rest/instance_serializer.rb), which
must be the configured ``VAPID_PUBLIC_KEY`` (config/vapid.yml).

``webpush.delivery`` (mutating): the test account subscribes (``POST
/api/v1/push/subscription`` with ``subscription[standard]=true``, mention alerts, policy
``all``; the token needs the ``push`` scope) with an endpoint on the in-cluster receiver and keys made
here; a second account mentions it; Web::PushNotificationWorker (queue ``push``) POSTs an
RFC 8291 message with a VAPID JWT. The receiver records it; this check verifies the JWT
against the configured key, decrypts the body and reads Web::NotificationSerializer's
payload (notification_id, notification_type, title, body; the payload's access_token is
never kept). The mention status and the subscription are removed afterwards.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any, cast

import requests
from mastodon import MastodonError

from tootcheck.checks.registry import live_check
from tootcheck.clients import webpush as wp
from tootcheck.clients.activitypub import PeerAdmin, PeerError, Recorded
from tootcheck.clients.mastodon import api, api_as
from tootcheck.model import CheckResult, CheckRun
from tootcheck.target import Target
from tootcheck.waiting import Poll, WaitTimeout, wait_until

VAPID_NAME = "webpush.vapid_key"
VAPID_FAULTS = {
    "vapid-key-missing": "the instance API serves no VAPID public key",
    "vapid-key-invalid": "the served or configured VAPID key is not a P-256 public key",
    "vapid-key-mismatch": "the served VAPID key differs from the configured VAPID_PUBLIC_KEY",
}
DELIVERY_NAME = "webpush.delivery"
DELIVERY_FAULTS = {
    "push-subscription-refused": "Mastodon refused to create the push subscription",
    "push-not-delivered": "no Web Push request reached the receiver within the bound",
    "push-not-standard": "the subscription or the push is not RFC 8291 aes128gcm with a 'vapid' "
                         "Authorization",
    "push-vapid-wrong-key": "the push names another VAPID key than the configured one",
    "push-vapid-invalid": "the VAPID JWT does not verify with the key it names",
    "push-vapid-claims": "the VAPID claims (aud, exp, sub) are wrong",
    "push-undecryptable": "the body does not decrypt with the subscription's keys "
                          "(encrypted for another key, or altered)",
    "push-wrong-notification": "the decrypted message does not name the mention notification",
}


@live_check(VAPID_NAME, faults=VAPID_FAULTS)
def check_vapid_key(target: Target, *, configured_key: str) -> CheckResult:
    """The VAPID public key the instance serves is the configured VAPID_PUBLIC_KEY."""
    run = CheckRun(VAPID_NAME, target.name)
    try:
        instance = api(target).instance_v2()
        served = str(((instance.get("configuration") or {}).get("vapid") or {}).get("public_key") or "")
    except MastodonError as exc:
        run.fail("vapid-key-missing", f"GET /api/v2/instance failed: {exc}")
        return run.result()
    run.evidence.update(served=served, configured=configured_key)
    if not run.expect(bool(served), "vapid-key-missing",
                      "/api/v2/instance has no configuration.vapid.public_key"):
        return run.result()
    for label, value in (("served", served), ("configured VAPID_PUBLIC_KEY", configured_key)):
        try:
            wp.decode_p256_public(value)
        except wp.KeyFormatError as exc:
            run.fail("vapid-key-invalid", f"the {label} key {value[:16]}... is invalid: {exc}")
    if run.faults:
        return run.result()
    run.expect(wp.same_p256_key(served, configured_key), "vapid-key-mismatch",
               f"/api/v2/instance serves {served[:16]}..., VAPID_PUBLIC_KEY is {configured_key[:16]}...")
    return run.result()


class SubscriptionRefused(Exception):
    """Mastodon did not create the push subscription."""


def subscribe(target: Target, role: str, endpoint: str, keys: wp.SubscriptionKeys) -> dict[str, Any]:
    """``POST /api/v1/push/subscription`` for a standard (RFC 8291) subscription to mentions.

    Sent directly rather than through Mastodon.py: its ``push_subscription_set`` (2.3.3)
    accepts ``standard=`` but never sends it, and puts ``policy`` outside ``data[]``
    (Api::V1::Push::SubscriptionsController reads ``subscription[standard]`` and
    ``data[policy]``).
    """
    token = target.account(role).token
    if token is None:
        raise SubscriptionRefused(f"the {role} account has no token")
    url = f"{target.base_url}/api/v1/push/subscription"
    form = {
        "subscription[endpoint]": endpoint,
        "subscription[keys][p256dh]": keys.p256dh,
        "subscription[keys][auth]": keys.auth_b64,
        "subscription[standard]": "true",
        "data[alerts][mention]": "true",
        "data[policy]": "all",
    }
    try:
        response = target.http().post(url, data=form, timeout=30,
                                       headers={"Authorization": f"Bearer {token.reveal()}"})
    except requests.RequestException as exc:
        raise SubscriptionRefused(f"POST {url} failed: {exc}") from exc
    if response.status_code != 200:
        try:
            error = str(response.json().get("error", ""))
        except ValueError:
            error = response.text[:120]
        hint = " (the token needs the push scope)" if response.status_code == 403 else ""
        raise SubscriptionRefused(f"POST /api/v1/push/subscription answered HTTP "
                                  f"{response.status_code}{hint}: {error}")
    body = response.json()
    return body if isinstance(body, dict) else {}


def _judge_push(run: CheckRun, record: Recorded, keys: wp.SubscriptionKeys, *,
                configured_key: str, audience: str, nonce: str) -> None:
    encoding = record.headers.get("content-encoding") or ""
    run.evidence.update(content_encoding=encoding, ttl=record.headers.get("ttl"),
                        urgency=record.headers.get("urgency"))
    if not run.expect(encoding.lower() == "aes128gcm", "push-not-standard",
                      f"Content-Encoding is {encoding or 'absent'!r}, not aes128gcm (RFC 8291)"):
        return
    # VAPID: who signed, is the signature good, are the claims right.
    try:
        header = wp.parse_vapid_authorization(record.headers.get("authorization"))
    except wp.VapidError as exc:
        run.fail("push-not-standard", f"Authorization: {exc}")
        return
    run.evidence["vapid_key"] = header.key
    if not run.expect(wp.same_p256_key(header.key, configured_key), "push-vapid-wrong-key",
                      f"the push is signed for VAPID key {header.key[:16]}..., "
                      f"the configured VAPID_PUBLIC_KEY is {configured_key[:16]}..."):
        return
    try:
        claims = wp.verify_vapid_token(header)
    except wp.VapidError as exc:
        run.fail("push-vapid-invalid", str(exc))
        return
    run.observe()
    run.evidence["vapid_claims"] = {k: claims.get(k) for k in ("aud", "exp", "sub")}
    problems = wp.claim_problems(claims, audience=audience, now=time.time())
    run.expect(not problems, "push-vapid-claims", "VAPID claims: " + "; ".join(problems))
    # The message itself.
    try:
        plaintext = wp.decrypt(record.body, keys)
    except wp.DecryptError as exc:
        run.fail("push-undecryptable",
                 f"the body does not decrypt with the subscription's key ({exc}): "
                 "encrypted for another key, or altered in transit")
        return
    try:
        payload = json.loads(plaintext)
    except ValueError:
        run.fail("push-wrong-notification", "the decrypted body is not JSON")
        return
    payload = payload if isinstance(payload, dict) else {}
    payload.pop("access_token", None)  # Web::NotificationSerializer puts the token here
    summary = {k: payload.get(k) for k in ("notification_id", "notification_type", "title",
                                           "preferred_locale")}
    run.evidence["payload"] = summary
    wrong = []
    if payload.get("notification_type") != "mention":
        wrong.append(f"notification_type is {payload.get('notification_type')!r}, not 'mention'")
    if not payload.get("notification_id"):
        wrong.append("no notification_id")
    if not payload.get("title"):
        wrong.append("no title")
    if nonce not in str(payload.get("body", "")):
        wrong.append("its body is not the mention's text")
    run.expect(not wrong, "push-wrong-notification", "the push payload " + "; ".join(wrong))


@live_check(DELIVERY_NAME, faults=DELIVERY_FAULTS, modes=("gate", "rehearsal"), mutating=True)
def check_delivery(
    target: Target,
    receiver: PeerAdmin,
    *,
    receiver_url: str,
    configured_key: str,
    role: str = "test",
    sender_role: str = "second",
    timeout: float | str = "push",
    interval: float = 0.5,
) -> CheckResult:
    """A mention's Web Push is VAPID-signed with the configured key, decrypts, and names it."""
    run = CheckRun(DELIVERY_NAME, target.name)
    client = api_as(target, role)
    sender = api_as(target, sender_role)
    keys = wp.SubscriptionKeys.generate()
    nonce = uuid.uuid4().hex[:12]
    path = f"/push/{nonce}"
    endpoint = f"{receiver_url.rstrip('/')}{path}"
    run.evidence["endpoint"] = endpoint
    try:
        subscription = subscribe(target, role, endpoint, keys)
    except SubscriptionRefused as exc:
        run.fail("push-subscription-refused", str(exc))
        return run.result()
    run.observe()
    run.evidence["subscription"] = {k: subscription.get(k) for k in ("standard", "alerts", "policy")}
    if not run.expect(subscription.get("standard") is True, "push-not-standard",
                      "the subscription came back without standard: true, so Mastodon would send "
                      "legacy aesgcm (draft) pushes"):
        _clean_up(run, client, sender, None)
        return run.result()
    status_id: str | None = None
    try:
        mark = receiver.last_seq()
        started = time.monotonic()
        username = target.account(role).username
        status = sender.status_post(f"@{username} tootcheck push probe {nonce}", visibility="unlisted")
        status_id = str(status["id"])

        def poll() -> Poll[Recorded]:
            records = [r for r in receiver.records(after=mark, kind="push") if r.path == path]
            if records:
                return Poll(True, records[0], "push received")
            return Poll(False, state=f"nothing at {path} yet")

        try:
            found = wait_until(poll, what=f"a Web Push request at {path}", timeout=timeout,
                               interval=interval, retry_on=(PeerError,))
        except WaitTimeout as exc:
            run.fail("push-not-delivered",
                     f"no Web Push request reached {endpoint} within {exc.timeout:g}s "
                     f"(last state: {exc.last_seen})")
            return run.result()
        run.metrics["push_latency_s"] = round(time.monotonic() - started, 3)
        _judge_push(run, cast(Recorded, found), keys, configured_key=configured_key,
                    audience=wp.origin(endpoint), nonce=nonce)
    except MastodonError as exc:
        run.fail("push-not-delivered", f"could not post the mention: {exc}")
    except PeerError as exc:
        run.fail("push-not-delivered", f"the receiver's admin API failed: {exc}")
    finally:
        _clean_up(run, client, sender, status_id)
    return run.result()


def _clean_up(run: CheckRun, client: Any, sender: Any, status_id: str | None) -> None:
    notes = []
    if status_id is not None:
        try:
            sender.status_delete(status_id)
            notes.append("mention deleted")
        except MastodonError as exc:
            notes.append(f"could not delete mention {status_id}: {exc}")
    try:
        client.push_subscription_delete()
        notes.append("push subscription deleted")
    except MastodonError as exc:
        notes.append(f"could not delete the push subscription: {exc}")
    run.evidence["cleanup"] = notes
