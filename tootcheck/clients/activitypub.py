"""ActivityPub as the suite speaks it: draft-cavage HTTP signatures, actors, the peer's API.

The byte-level pieces (Signature header parsing, the signing string, Digest) are in
``tootcheck.clients.httpsig``; this module adds RSA signing and verification with
``cryptography``, actors, and the HTTP calls.

Signatures follow Mastodon (app/lib/http_signature_draft.rb, app/lib/signed_request.rb):
``keyId``, ``algorithm="rsa-sha256"``, ``headers`` naming (request-target), host, date,
digest and content-type, RSASSA-PKCS1-v1_5 over SHA-256, ``Digest: SHA-256=<base64>``.
"""

from __future__ import annotations

import base64
import email.utils
import json
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urldefrag, urlsplit

import requests
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from tootcheck.clients.httpsig import (
    ACTIVITY_JSON,
    AS_CONTEXT,
    REQUEST_TARGET,
    Headers,
    body_digest,
    digest_problem,
    parse_signature,
    signed_header_names,
    signing_string,
)

__all__ = [
    "ACTIVITY_JSON",
    "AS_CONTEXT",
    "ActorUnavailable",
    "Headers",
    "PeerAdmin",
    "PeerError",
    "Recorded",
    "SignatureVerdict",
    "deliveries",
    "fetch_actor",
    "fetch_public_key",
    "follow",
    "generate_key",
    "object_id",
    "public_pem",
    "sign_request",
    "undo",
    "verify_signature",
]

SIGNED_HEADERS = (REQUEST_TARGET, "host", "date", "digest", "content-type")
REQUEST_TIMEOUT_S = 15.0


# ------------------------------------------------------------------------ keys


def generate_key() -> rsa.RSAPrivateKey:
    """A fresh 2048-bit RSA key, as Mastodon generates for its accounts."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def public_pem(key: rsa.RSAPrivateKey | rsa.RSAPublicKey) -> str:
    public = key.public_key() if isinstance(key, rsa.RSAPrivateKey) else key
    return public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


# ------------------------------------------------------------------- signing


def sign_request(
    key: rsa.RSAPrivateKey,
    key_id: str,
    method: str,
    url: str,
    body: bytes,
    *,
    content_type: str = ACTIVITY_JSON,
    now: float | None = None,
) -> dict[str, str]:
    """Headers (Host, Date, Digest, Content-Type, Signature) for a signed request."""
    parts = urlsplit(url)
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    host = parts.netloc
    headers = {
        "Host": host,
        "Date": email.utils.formatdate(time.time() if now is None else now, usegmt=True),
        "Digest": body_digest(body),
        "Content-Type": content_type,
    }
    text = signing_string(SIGNED_HEADERS, method, target, Headers(headers.items()))
    signature = base64.b64encode(key.sign(text.encode(), padding.PKCS1v15(), hashes.SHA256()))
    headers["Signature"] = (
        f'keyId="{key_id}",algorithm="rsa-sha256",headers="{" ".join(SIGNED_HEADERS)}",'
        f'signature="{signature.decode()}"'
    )
    return headers


# -------------------------------------------------------------- verification


@dataclass(frozen=True)
class SignatureVerdict:
    """The outcome of checking one request's signature against a published key."""

    ok: bool
    key_id: str = ""
    problem: str = ""
    signed_headers: tuple[str, ...] = ()


def verify_signature(
    method: str,
    target: str,
    headers: Headers,
    body: bytes,
    public_key_pem: str,
    *,
    expected_key_id: str | None = None,
) -> SignatureVerdict:
    """Verify a draft-cavage signature the way Mastodon's inbox does.

    Requires a Signature with keyId and signature, rsa-sha256 (or hs2019), signed
    date, digest and (request-target), a matching SHA-256 Digest, and an
    RSASSA-PKCS1-v1_5/SHA-256 signature that verifies with ``public_key_pem``.
    """
    value = headers.get("signature")
    if value is None:
        return SignatureVerdict(False, problem="unsigned: no Signature header")
    try:
        params = parse_signature(value)
    except ValueError as exc:
        return SignatureVerdict(False, problem=f"unparseable Signature header: {exc}")
    key_id = params.get("keyId", "")
    names = tuple(signed_header_names(params))

    def verdict(problem: str) -> SignatureVerdict:
        return SignatureVerdict(not problem, key_id, problem, names)

    if not key_id or not params.get("signature"):
        return verdict("Signature header lacks keyId or signature")
    if expected_key_id is not None and key_id != expected_key_id:
        return verdict(f"signed with key {key_id}, expected {expected_key_id}")
    if params.get("algorithm", "hs2019") not in ("rsa-sha256", "hs2019"):
        return verdict(f"unsupported algorithm {params.get('algorithm')!r}")
    missing = [n for n in ("date", "digest", REQUEST_TARGET) if n not in names]
    if missing:
        return verdict(f"signature does not cover {', '.join(missing)}")
    problem = digest_problem(headers, body)
    if problem:
        return verdict(problem)
    try:
        text = signing_string(names, method, target, headers)
    except KeyError as exc:
        return verdict(f"signed header {exc.args[0]!r} is missing from the request")
    try:
        public = serialization.load_pem_public_key(public_key_pem.encode())
    except ValueError:
        return verdict("the published key is not a PEM public key")
    if not isinstance(public, rsa.RSAPublicKey):
        return verdict("the published key is not an RSA key")
    try:
        raw = base64.b64decode(params["signature"], validate=True)
        public.verify(raw, text.encode(), padding.PKCS1v15(), hashes.SHA256())
    except (ValueError, InvalidSignature):
        return verdict(f"RSA signature does not verify with the key published at {key_id}")
    return verdict("")


class ActorUnavailable(Exception):
    """The actor or its key could not be fetched or has no usable key."""


def fetch_actor(session: requests.Session, uri: str) -> dict[str, Any]:
    """GET an actor document as ActivityPub JSON."""
    try:
        response = session.get(uri, headers={"Accept": ACTIVITY_JSON}, timeout=REQUEST_TIMEOUT_S)
    except requests.RequestException as exc:
        raise ActorUnavailable(f"GET {uri} failed: {exc}") from exc
    if response.status_code != 200:
        raise ActorUnavailable(f"GET {uri} answered HTTP {response.status_code}")
    try:
        document = response.json()
    except ValueError as exc:
        raise ActorUnavailable(f"GET {uri} did not return JSON") from exc
    if not isinstance(document, dict) or document.get("id") != uri:
        raise ActorUnavailable(f"GET {uri} returned a document whose id is not {uri}")
    return document


def fetch_public_key(session: requests.Session, key_id: str) -> tuple[dict[str, Any], str]:
    """The actor owning ``key_id`` and the PEM it publishes under that id."""
    owner = urldefrag(key_id)[0]
    actor = fetch_actor(session, owner)
    key = actor.get("publicKey")
    keys = key if isinstance(key, list) else [key]
    for entry in keys:
        if isinstance(entry, dict) and entry.get("id") == key_id and entry.get("publicKeyPem"):
            return actor, str(entry["publicKeyPem"])
    raise ActorUnavailable(f"actor {owner} publishes no key with id {key_id}")


# ------------------------------------------------------------------ activities


def follow(actor: str, target: str) -> dict[str, Any]:
    return {
        "@context": AS_CONTEXT,
        "id": f"{actor}#follows/{uuid.uuid4().hex}",
        "type": "Follow",
        "actor": actor,
        "object": target,
    }


def undo(actor: str, activity: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "@context": AS_CONTEXT,
        "id": f"{actor}#undo/{uuid.uuid4().hex}",
        "type": "Undo",
        "actor": actor,
        "object": {k: v for k, v in activity.items() if k != "@context"},
    }


def object_id(activity: Mapping[str, Any]) -> str:
    """The id of an activity's object, whether embedded or referenced."""
    obj = activity.get("object")
    if isinstance(obj, Mapping):
        return str(obj.get("id", ""))
    return str(obj or "")


# --------------------------------------------------------------- the peer's API


class PeerError(Exception):
    """The peer's admin API could not be reached or refused a request."""


@dataclass(frozen=True)
class Recorded:
    """One request the peer recorded."""

    seq: int
    time: float
    kind: str
    method: str
    target: str
    path: str
    headers: Headers
    body: bytes
    status: int
    problem: str = ""
    _json: Any = field(default=None, compare=False, repr=False)

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> Recorded:
        return cls(
            seq=int(data["seq"]),
            time=float(data["time"]),
            kind=str(data["kind"]),
            method=str(data["method"]),
            target=str(data["target"]),
            path=str(data["path"]),
            headers=Headers((str(k), str(v)) for k, v in data["headers"]),
            body=base64.b64decode(data["body_b64"]),
            status=int(data["status"]),
            problem=str(data.get("problem", "")),
        )

    def activity(self) -> dict[str, Any] | None:
        """The body as a JSON object, or None."""
        try:
            value = json.loads(self.body)
        except ValueError:
            return None
        return value if isinstance(value, dict) else None


class PeerAdmin:
    """Client of the peer's admin API (``/_peer/...``), reached by a port-forward."""

    def __init__(self, base_url: str, session: requests.Session | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.session = session or _plain_session()

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        url = f"{self.base_url}{path}"
        try:
            response = self.session.request(method, url, timeout=REQUEST_TIMEOUT_S, **kwargs)
        except requests.RequestException as exc:
            raise PeerError(f"peer admin API {url} unreachable: {exc}") from exc
        if response.status_code >= 300:
            raise PeerError(f"peer admin API {method} {path} answered HTTP {response.status_code}: "
                            f"{response.text[:200]}")
        return response.json()

    def health(self) -> dict[str, Any]:
        return dict(self._call("GET", "/_peer/health"))

    def put_actor(self, name: str, public_key_pem: str) -> str:
        """Serve actor ``name`` with this key; returns its id."""
        return str(self._call("PUT", f"/_peer/actors/{name}", json={"publicKeyPem": public_key_pem})["id"])

    def records(self, after: int = 0, kind: str | None = None) -> list[Recorded]:
        params: dict[str, Any] = {"after": after}
        if kind:
            params["kind"] = kind
        data = self._call("GET", "/_peer/records", params=params)
        return [Recorded.from_api(r) for r in data["records"]]

    def last_seq(self) -> int:
        return int(self.health()["records"])


def _plain_session() -> requests.Session:
    session = requests.Session()
    session.trust_env = False
    return session


def deliveries(records: Iterable[Recorded], kind: str, object_uri: str) -> list[Recorded]:
    """Recorded inbox POSTs carrying an activity of ``kind`` about ``object_uri``."""
    found = []
    for record in records:
        activity = record.activity()
        if activity and activity.get("type") == kind and object_id(activity) == object_uri:
            found.append(record)
    return found
