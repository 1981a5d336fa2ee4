"""The sending side of Mastodon, simulated with real protocols and real libraries.

Mastodon cannot run here, so this Flask app on 127.0.0.1 (HTTPS with a local test CA,
reached as https://kirchner.social through the suite's name pinning) plays the parts
the checks talk to, and a small thread pool plays Sidekiq:

- web: ``/auth/password/new`` (CSRF meta + session cookie) and ``POST /auth/password``;
  the "mailers" job sends a real SMTP message (smtplib) with the reset link.
- ActivityPub: WebFinger and actor documents (RSA keys), an inbox that verifies the
  Follow's signature against the key the peer serves; "push" jobs deliver Accept,
  Create and Delete signed the way Mastodon signs (``HttpSignatureDraft``: headers
  ``host date digest content-type (request-target)``; written here independently of
  the suite's signer).
- REST (what Mastodon.py calls): statuses, push subscription, ``/api/v2/instance``.
- Web Push: pywebpush encrypts (RFC 8291) and py_vapid signs (RFC 8292).

``faults`` (a set of names) breaks one thing at a time; see ``FAULTS``.
"""

from __future__ import annotations

import base64
import email.utils
import hashlib
import json
import secrets
import smtplib
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from flask import Flask, Response, jsonify, redirect, request
from py_vapid import Vapid02
from pywebpush import WebPusher, webpush
from werkzeug.serving import make_server

from tests.peers.nodelay import NoDelayHandler
from tootcheck.clients import activitypub as ap
from tootcheck.clients import webpush as wp
from tootcheck.clients.pinning import PinMap, pinned_session
from tootcheck.peers.fediverse_peer import tls_context
from tootcheck.redaction import Secret
from tootcheck.target import Account, Target

DOMAIN = "kirchner.social"
BASE = f"https://{DOMAIN}"
SENDER = "Mastodon <notifications@kirchner.social>"
PUBLIC = "https://www.w3.org/ns/activitystreams#Public"

FAULTS = {
    # mail
    "no-mail", "mail-wrong-recipient", "mail-wrong-sender", "mail-wrong-host", "throttled",
    # federation
    "actor-missing", "refuse-follow", "no-accept", "no-create", "no-delete",
    "unsigned", "tamper", "wrong-key", "wrong-signer",
    # web push
    "refuse-subscription", "ignore-standard", "no-push", "legacy-push", "wrong-vapid",
    "forged-vapid", "wrong-aud",
    "wrong-sub-key", "tamper-push", "wrong-notification",
    # instance API
    "vapid-missing", "vapid-other", "vapid-garbage",
}


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def sign_like_mastodon(key: rsa.RSAPrivateKey, key_id: str, url: str, body: bytes) -> dict[str, str]:
    """Headers as app/lib/request.rb builds them for a POST delivery."""
    parts = urlsplit(url)
    headers = {
        "Host": parts.hostname or "",
        "Date": email.utils.formatdate(usegmt=True),
        "Digest": "SHA-256=" + b64(hashlib.sha256(body).digest()),
        "Content-Type": "application/activity+json",
    }
    signed = {**headers, "(request-target)": f"post {parts.path}"}
    text = "\n".join(f"{k.lower()}: {v}" for k, v in signed.items())
    signature = b64(key.sign(text.encode(), padding.PKCS1v15(), hashes.SHA256()))
    headers["Signature"] = (f'keyId="{key_id}",algorithm="rsa-sha256",'
                            f'headers="{" ".join(k.lower() for k in signed)}",signature="{signature}"')
    return headers


class SimulatedMastodon:
    def __init__(self, ca_file: Path, cert: Path, key: Path, peer_pins: PinMap, smtp_port: int) -> None:
        self.ca_file = ca_file
        self.smtp_port = smtp_port
        self.faults: set[str] = set()
        self.accounts = {
            "test": {"id": "1", "username": "test", "email": "test@kirchner.social",
                     "token": secrets.token_urlsafe(24)},
            "second": {"id": "2", "username": "second", "email": "second@kirchner.social",
                       "token": secrets.token_urlsafe(24)},
        }
        self.keys = {name: ap.generate_key() for name in self.accounts}
        self.stray_key = ap.generate_key()
        self.vapid = Vapid02()
        self.vapid.generate_keys()
        self.stray_vapid = Vapid02()
        self.stray_vapid.generate_keys()
        self.followers: dict[str, str] = {}  # follower actor -> inbox
        self.statuses: dict[str, dict[str, Any]] = {}
        self.subscriptions: dict[str, dict[str, Any]] = {}  # account name -> subscription
        self.web_sessions: dict[str, str] = {}
        self.next_id = 100
        self.lock = threading.Lock()
        self.to_peer = pinned_session(peer_pins, ca_file)
        self.jobs = ThreadPoolExecutor(max_workers=2, thread_name_prefix="sidekiq")
        self.pending: list[Future[Any]] = []
        self.app = self._app()
        self.server = make_server("127.0.0.1", 0, self.app, threaded=True,
                                  ssl_context=tls_context(str(cert), str(key)),
                                  request_handler=NoDelayHandler)
        self.port = self.server.server_port
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       kwargs={"poll_interval": 0.02}, daemon=True)

    # ------------------------------------------------------------ lifecycle
    def start(self) -> SimulatedMastodon:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.jobs.shutdown(wait=True, cancel_futures=True)

    def reset(self, *faults: str) -> None:
        unknown = set(faults) - FAULTS
        if unknown:
            raise ValueError(f"unknown fault(s) {sorted(unknown)}")
        self.drain()
        self.faults = set(faults)

    def drain(self) -> None:
        """Wait for the 'Sidekiq' jobs and raise the first error one hit."""
        pending, self.pending = self.pending, []
        for future in pending:
            future.result(timeout=30)

    def target(self) -> Target:
        return Target(
            name=f"sim://{DOMAIN}",
            domain=DOMAIN,
            ca_file=self.ca_file,
            pins=PinMap({(DOMAIN, 443): ("127.0.0.1", self.port)}),
            accounts={
                name: Account(a["username"], Secret(a["token"], f"{name}-token"), email=a["email"])
                for name, a in self.accounts.items()
            },
        )

    @property
    def vapid_public_key(self) -> str:
        """VAPID_PUBLIC_KEY as Mastodon's config holds it (urlsafe base64, padded)."""
        return base64.urlsafe_b64encode(wp.point_bytes(self.vapid.public_key)).decode()

    def _job(self, func: Callable[..., Any], *args: Any) -> None:
        self.pending.append(self.jobs.submit(func, *args))

    # -------------------------------------------------------------- helpers
    def actor(self, name: str) -> str:
        return f"{BASE}/users/{name}"

    def _account_by_token(self) -> str | None:
        auth = request.headers.get("Authorization", "")
        token = auth.removeprefix("Bearer ").strip()
        for name, account in self.accounts.items():
            if token and secrets.compare_digest(token, account["token"]):
                return name
        return None

    def _params(self) -> dict[str, Any]:
        data: dict[str, Any] = dict(request.form)
        data.update(request.get_json(silent=True) or {})
        return data

    def _account_json(self, name: str) -> dict[str, Any]:
        a = self.accounts[name]
        return {"id": a["id"], "username": a["username"], "acct": a["username"],
                "display_name": a["username"], "url": f"{BASE}/@{a['username']}",
                "created_at": "2026-01-01T00:00:00.000Z", "note": "", "avatar": "", "header": "",
                "locked": False, "bot": False, "fields": [], "emojis": []}

    # ------------------------------------------------------------- delivery
    def deliver(self, inbox: str, activity: dict[str, Any], sender: str = "test") -> None:
        body = json.dumps(activity).encode()
        key, key_id = self.keys[sender], f"{self.actor(sender)}#main-key"
        if "wrong-signer" in self.faults:
            key, key_id = self.keys["second"], f"{self.actor('second')}#main-key"
        if "wrong-key" in self.faults:
            key = self.stray_key
        headers = sign_like_mastodon(key, key_id, inbox, body)
        if "unsigned" in self.faults:
            headers.pop("Signature")
        if "tamper" in self.faults:
            body += b" "
        self.to_peer.post(inbox, data=body, headers=headers, timeout=10)

    def _to_followers(self, activity: dict[str, Any]) -> None:
        for inbox in set(self.followers.values()):
            self._job(self.deliver, inbox, activity)

    def _status(self, name: str, text: str, visibility: str) -> dict[str, Any]:
        with self.lock:
            self.next_id += 1
            sid = str(self.next_id)
        uri = f"{self.actor(name)}/statuses/{sid}"
        status = {"id": sid, "uri": uri, "url": f"{BASE}/@{name}/{sid}",
                  "created_at": "2026-01-01T00:00:00.000Z", "content": f"<p>{text}</p>",
                  "text": text, "visibility": visibility, "account": self._account_json(name),
                  "mentions": [], "media_attachments": [], "tags": [], "emojis": [],
                  "reblog": None, "spoiler_text": "", "sensitive": False}
        self.statuses[sid] = {"status": status, "owner": name}
        return status

    # ------------------------------------------------------------- web push
    def push(self, sub: dict[str, Any], payload: dict[str, Any]) -> None:
        keys = {"p256dh": wp.b64url(wp.b64url_decode(sub["p256dh"])),
                "auth": wp.b64url(wp.b64url_decode(sub["auth"]))}
        if "wrong-sub-key" in self.faults:
            keys["p256dh"] = wp.SubscriptionKeys.generate().p256dh
        info = {"endpoint": sub["endpoint"], "keys": keys}
        if "wrong-notification" in self.faults:
            payload = {**payload, "notification_type": "favourite"}
        data = json.dumps(payload)
        claims: dict[str, Any] = {"sub": "mailto:admin@kirchner.social",
                                  "aud": wp.origin(sub["endpoint"]),
                                  "exp": int(time.time()) + 24 * 3600 - 60}
        if "wrong-aud" in self.faults:
            claims["aud"] = "https://push.elsewhere.example"
        vapid = self.stray_vapid if "wrong-vapid" in self.faults else self.vapid
        # Web::PushNotificationWorker: aes128gcm only for `standard` subscriptions.
        encoding = "aes128gcm" if sub["standard"] and "legacy-push" not in self.faults else "aesgcm"
        if {"tamper-push", "forged-vapid"} & self.faults:
            encoded = WebPusher(info).encode(data.encode(), encoding)
            body = bytearray(encoded["body"])
            if "tamper-push" in self.faults:
                body[-5] ^= 0x01
            headers = dict(self.stray_vapid.sign(dict(claims))) if "forged-vapid" in self.faults \
                else dict(vapid.sign(dict(claims)))
            if "forged-vapid" in self.faults:  # a JWT from another key, naming ours
                token = headers["Authorization"].split("t=", 1)[1].split(",", 1)[0]
                ours = wp.b64url(wp.point_bytes(self.vapid.public_key))
                headers["Authorization"] = f"vapid t={token},k={ours}"
            headers.update({"Content-Encoding": encoding, "TTL": "172800", "Urgency": "normal",
                            "Content-Type": "application/octet-stream"})
            self.to_peer.post(sub["endpoint"], data=bytes(body), headers=headers, timeout=10)
            return
        webpush(info, data, vapid_private_key=vapid, vapid_claims=claims, content_encoding=encoding,
                ttl=172800, headers={"Urgency": "normal"}, requests_session=self.to_peer)

    # ----------------------------------------------------------------- mail
    def send_reset_mail(self, name: str) -> None:
        account = self.accounts[name]
        token = secrets.token_urlsafe(20)
        host = "localhost:3000" if "mail-wrong-host" in self.faults else DOMAIN
        link = f"https://{host}/auth/password/edit?reset_password_token={token}"
        message = EmailMessage()
        message["From"] = "root@localhost" if "mail-wrong-sender" in self.faults else SENDER
        message["To"] = "someone-else@kirchner.social" if "mail-wrong-recipient" in self.faults \
            else account["email"]
        message["Subject"] = "Reset password instructions"
        message["Date"] = email.utils.formatdate(usegmt=True)
        message["Message-ID"] = email.utils.make_msgid(domain=DOMAIN)
        message.set_content(f"Password reset\n\n=> {link}\n\nIf you didn't request this, ignore it.")
        message.add_alternative(f'<p>Password reset</p><p><a href="{link}">Change password</a></p>'
                                f'<img src="https://{DOMAIN}/packs/logo.png">', subtype="html")
        with smtplib.SMTP("127.0.0.1", self.smtp_port, timeout=10) as smtp:
            smtp.send_message(message)

    # ------------------------------------------------------------------ app
    def _app(self) -> Flask:
        app = Flask("simulated-mastodon")
        sim = self

        @app.get("/.well-known/webfinger")
        def webfinger() -> Any:
            resource = request.args.get("resource", "")
            name = resource.removeprefix("acct:").partition("@")[0]
            if name not in sim.accounts:
                return jsonify(error="not found"), 404
            return jsonify(subject=f"acct:{name}@{DOMAIN}", links=[
                {"rel": "self", "type": ap.ACTIVITY_JSON, "href": sim.actor(name)}])

        @app.get("/users/<name>")
        def actor(name: str) -> Any:
            if name not in sim.accounts or "actor-missing" in sim.faults:
                return jsonify(error="not found"), 404
            uid = sim.actor(name)
            document = {"@context": [ap.AS_CONTEXT, "https://w3id.org/security/v1"], "id": uid,
                        "type": "Person", "preferredUsername": name, "inbox": f"{uid}/inbox",
                        "endpoints": {"sharedInbox": f"{BASE}/inbox"},
                        "publicKey": {"id": f"{uid}#main-key", "owner": uid,
                                      "publicKeyPem": ap.public_pem(sim.keys[name])}}
            return Response(json.dumps(document), content_type=ap.ACTIVITY_JSON)

        @app.post("/users/<name>/inbox")
        def inbox(name: str) -> Any:
            if "refuse-follow" in sim.faults:
                return jsonify(error="Requests to private network addresses are disallowed "
                                     "(tried to query fedi.peer.test)"), 401
            body = request.get_data()
            headers = ap.Headers(request.headers.items())
            params = ap.parse_signature(headers.get("signature") or 'keyId="",signature=""')
            try:
                owner, pem = ap.fetch_public_key(sim.to_peer, params.get("keyId", ""))
            except ap.ActorUnavailable as exc:
                return jsonify(error=str(exc)), 401
            target = request.path + (f"?{request.query_string.decode()}" if request.query_string else "")
            verdict = ap.verify_signature(request.method, target, headers, body, pem)
            if not verdict.ok:
                return jsonify(error=verdict.problem), 401
            activity = json.loads(body)
            follower_inbox = str((owner.get("endpoints") or {}).get("sharedInbox") or owner["inbox"])
            if activity.get("type") == "Follow":
                sim.followers[owner["id"]] = follower_inbox
                if "no-accept" not in sim.faults:
                    accept = {"@context": ap.AS_CONTEXT, "id": f"{sim.actor(name)}#accepts/follows/1",
                              "type": "Accept", "actor": sim.actor(name),
                              "object": {"id": activity["id"], "type": "Follow",
                                         "actor": owner["id"], "object": sim.actor(name)}}
                    sim._job(sim.deliver, follower_inbox, accept, name)
            elif activity.get("type") == "Undo":
                sim.followers.pop(owner["id"], None)
            return "", 202

        @app.post("/api/v1/statuses")
        def post_status() -> Any:
            name = sim._account_by_token()
            if name is None:
                return jsonify(error="The access token is invalid"), 401
            params = sim._params()
            text, visibility = str(params.get("status", "")), str(params.get("visibility", "public"))
            status = sim._status(name, text, visibility)
            if visibility == "public" and "no-create" not in sim.faults:
                sim._to_followers({
                    "@context": ap.AS_CONTEXT, "id": f"{status['uri']}/activity", "type": "Create",
                    "actor": sim.actor(name), "to": [PUBLIC], "cc": [f"{sim.actor(name)}/followers"],
                    "object": {"id": status["uri"], "type": "Note", "attributedTo": sim.actor(name),
                               "content": status["content"], "to": [PUBLIC]}})
            mentioned = sim.subscriptions.get("test")
            if ("@test" in text and name != "test" and mentioned and mentioned["alerts"].get("mention")
                    and mentioned["policy"] == "all" and "no-push" not in sim.faults):
                sim._job(sim.push, mentioned, {
                    "access_token": sim.accounts["test"]["token"], "preferred_locale": "en",
                    "notification_id": str(int(status["id"]) + 5000), "notification_type": "mention",
                    "icon": f"{BASE}/avatars/original/missing.png",
                    "title": f"{name} mentioned you", "body": text})
            return jsonify(status)

        @app.delete("/api/v1/statuses/<sid>")
        def delete_status(sid: str) -> Any:
            name = sim._account_by_token()
            entry = sim.statuses.pop(sid, None)
            if name is None or entry is None or entry["owner"] != name:
                return jsonify(error="Record not found"), 404
            status = entry["status"]
            if status["visibility"] == "public" and "no-delete" not in sim.faults:
                sim._to_followers({
                    "@context": ap.AS_CONTEXT, "id": f"{status['uri']}#delete", "type": "Delete",
                    "actor": sim.actor(name), "to": [PUBLIC],
                    "object": {"id": status["uri"], "type": "Tombstone", "atomUri": status["uri"]}})
            return jsonify(status)

        @app.post("/api/v1/push/subscription")
        def subscribe() -> Any:
            name = sim._account_by_token()
            if name is None:
                return jsonify(error="The access token is invalid"), 401
            if "refuse-subscription" in sim.faults:
                return jsonify(error="This action is outside the authorized scopes"), 403
            params = sim._params()
            truthy = ("1", "true", "on")
            sub = {
                "endpoint": params["subscription[endpoint]"],
                "p256dh": params["subscription[keys][p256dh]"],
                "auth": params["subscription[keys][auth]"],
                "standard": str(params.get("subscription[standard]", "")).lower() in truthy
                and "ignore-standard" not in sim.faults,
                "alerts": {k[len("data[alerts]["):-1]: str(v).lower() in truthy
                           for k, v in params.items() if k.startswith("data[alerts][")},
                "policy": params.get("data[policy]", "all"),
            }
            sim.subscriptions[name] = sub
            return jsonify(id=1, endpoint=sub["endpoint"], policy=sub["policy"], alerts=sub["alerts"],
                           server_key=sim.vapid_public_key, standard=sub["standard"])

        @app.delete("/api/v1/push/subscription")
        def unsubscribe() -> Any:
            name = sim._account_by_token()
            sim.subscriptions.pop(name or "", None)
            return jsonify({})

        @app.get("/api/v2/instance", strict_slashes=False)
        def instance() -> Any:
            key = sim.vapid_public_key
            if "vapid-other" in sim.faults:
                key = base64.urlsafe_b64encode(wp.point_bytes(sim.stray_vapid.public_key)).decode()
            if "vapid-garbage" in sim.faults:
                key = "bm90LWEta2V5"
            vapid = {} if "vapid-missing" in sim.faults else {"public_key": key}
            return jsonify(domain=DOMAIN, version="4.7.2", configuration={"vapid": vapid})

        @app.get("/auth/password/new")
        def password_form() -> Any:
            sid, csrf = secrets.token_urlsafe(16), secrets.token_urlsafe(32)
            sim.web_sessions[sid] = csrf
            page = (f'<html><head><meta name="csrf-param" content="authenticity_token">'
                    f'<meta name="csrf-token" content="{csrf}"></head><body><form></form></body></html>')
            response = Response(page, content_type="text/html")
            response.set_cookie("_mastodon_session", sid, secure=True, httponly=True)
            return response

        @app.post("/auth/password")
        def password_reset() -> Any:
            sid = request.cookies.get("_mastodon_session", "")
            expected = sim.web_sessions.get(sid)
            if not expected or request.form.get("authenticity_token") != expected:
                return "Invalid authenticity token", 422
            if "throttled" in sim.faults:
                return "Too many requests", 429
            wanted = request.form.get("user[email]", "")
            for name, account in sim.accounts.items():
                if account["email"] == wanted and "no-mail" not in sim.faults:
                    sim._job(sim.send_reset_mail, name)
            return redirect("/auth/sign_in", code=302)

        return app

