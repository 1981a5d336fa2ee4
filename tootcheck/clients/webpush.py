"""Web Push as a receiving user agent sees it: subscription keys, VAPID, RFC 8291.

What Mastodon sends for a ``standard`` subscription (app/workers/web/push_notification_worker.rb,
app/lib/web_push_request.rb): a POST to the endpoint with ``Content-Encoding: aes128gcm``,
a body encrypted per RFC 8291 to the subscription's P-256 key and auth secret, and
``Authorization: vapid t=<JWT>,k=<public key>`` (RFC 8292), the JWT signed ES256 with the
instance's VAPID key and carrying ``aud`` (the endpoint's origin), ``exp`` (at most
24 h ahead) and ``sub`` (``mailto:<contact e-mail>``).

The crypto is the libraries': ``http_ece`` decrypts, ``joserfc`` verifies the JWT,
``cryptography`` makes and checks the keys.
"""

from __future__ import annotations

import base64
import binascii
import os
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import http_ece
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import ECKey

MAX_EXP_AHEAD_S = 24 * 3600  # RFC 8292 section 2: no more than 24 hours
CLOCK_SLACK_S = 300


def b64url_decode(text: str) -> bytes:
    """Decode URL-safe (or standard) base64 with or without padding."""
    cleaned = text.strip().replace("+", "-").replace("/", "_").rstrip("=")
    return base64.urlsafe_b64decode(cleaned + "=" * (-len(cleaned) % 4))


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class KeyFormatError(ValueError):
    """Text that should hold a P-256 public key does not."""


def decode_p256_public(text: str) -> ec.EllipticCurvePublicKey:
    """A VAPID/subscription public key (base64url of the 65-byte uncompressed point)."""
    try:
        raw = b64url_decode(text)
    except (binascii.Error, ValueError) as exc:
        raise KeyFormatError(f"not base64url: {exc}") from exc
    if len(raw) != 65 or raw[0] != 4:
        raise KeyFormatError(f"not an uncompressed P-256 point ({len(raw)} bytes)")
    try:
        return ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), raw)
    except ValueError as exc:
        raise KeyFormatError("not a point on P-256") from exc


def point_bytes(key: ec.EllipticCurvePublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)


def same_p256_key(a: str, b: str) -> bool:
    """Whether two base64/base64url spellings name the same public key."""
    try:
        return point_bytes(decode_p256_public(a)) == point_bytes(decode_p256_public(b))
    except KeyFormatError:
        return False


# ------------------------------------------------------------ subscription keys


@dataclass(frozen=True)
class SubscriptionKeys:
    """The user agent's half of a push subscription: a P-256 key pair and a 16-byte auth secret."""

    private_key: ec.EllipticCurvePrivateKey = field(repr=False)
    auth: bytes = field(repr=False)

    @classmethod
    def generate(cls) -> SubscriptionKeys:
        return cls(ec.generate_private_key(ec.SECP256R1()), os.urandom(16))

    @property
    def public_bytes(self) -> bytes:
        return point_bytes(self.private_key.public_key())

    @property
    def p256dh(self) -> str:
        return b64url(self.public_bytes)

    @property
    def auth_b64(self) -> str:
        return b64url(self.auth)

    def subscription_info(self, endpoint: str) -> dict[str, Any]:
        """The W3C PushSubscription JSON (what pywebpush takes)."""
        return {"endpoint": endpoint, "keys": {"p256dh": self.p256dh, "auth": self.auth_b64}}


class DecryptError(Exception):
    """The body does not decrypt with the subscription's keys."""


def decrypt(body: bytes, keys: SubscriptionKeys) -> bytes:
    """Decrypt an RFC 8291 ``aes128gcm`` Web Push body."""
    try:
        return bytes(http_ece.decrypt(body, private_key=keys.private_key, auth_secret=keys.auth,
                                      version="aes128gcm"))
    except (http_ece.ECEException, InvalidTag, ValueError, IndexError) as exc:
        raise DecryptError(type(exc).__name__ + (f": {exc}" if str(exc) else "")) from exc


# ------------------------------------------------------------------------ VAPID


@dataclass(frozen=True)
class VapidHeader:
    token: str
    key: str


class VapidError(Exception):
    """The Authorization header is not a usable VAPID credential."""


def parse_vapid_authorization(value: str | None) -> VapidHeader:
    """Parse ``vapid t=<jwt>, k=<key>`` (RFC 8292 section 3)."""
    if not value:
        raise VapidError("no Authorization header")
    scheme, _, rest = value.strip().partition(" ")
    if scheme.lower() != "vapid":
        raise VapidError(f"Authorization scheme is {scheme!r}, not 'vapid' (legacy WebPush?)")
    params: dict[str, str] = {}
    for part in rest.split(","):
        name, _, val = part.strip().partition("=")
        params[name.strip().lower()] = val.strip()
    if not params.get("t") or not params.get("k"):
        raise VapidError("Authorization vapid lacks t= or k=")
    return VapidHeader(params["t"], params["k"])


def verify_vapid_token(header: VapidHeader) -> dict[str, Any]:
    """Verify the JWT's ES256 signature with the key in ``k``; returns the claims."""
    try:
        public = decode_p256_public(header.key)
    except KeyFormatError as exc:
        raise VapidError(f"k= is not a P-256 public key: {exc}") from exc
    try:
        token = jwt.decode(header.token, ECKey.import_key(public), algorithms=["ES256"])
    except (JoseError, ValueError) as exc:
        raise VapidError(f"JWT signature does not verify with k= ({type(exc).__name__})") from exc
    return dict(token.claims)


def claim_problems(claims: dict[str, Any], *, audience: str, now: float) -> list[str]:
    """What is wrong with the VAPID claims for an endpoint whose origin is ``audience``."""
    problems = []
    if claims.get("aud") != audience:
        problems.append(f"aud is {claims.get('aud')!r}, expected {audience!r}")
    exp = claims.get("exp")
    if not isinstance(exp, int | float):
        problems.append("no numeric exp")
    elif exp <= now:
        problems.append(f"exp is {now - exp:.0f}s in the past")
    elif exp > now + MAX_EXP_AHEAD_S + CLOCK_SLACK_S:
        problems.append(f"exp is {(exp - now) / 3600:.1f} h ahead (RFC 8292 allows 24 h)")
    sub = str(claims.get("sub") or "")
    if not (sub.startswith("https://") or (sub.startswith("mailto:") and "@" in sub)):
        problems.append(f"sub {sub!r} is not a mailto: address or https: URL "
                        "(set the server's contact e-mail)")
    return problems


def origin(url: str) -> str:
    """The origin of ``url`` as Mastodon puts it in ``aud`` (Addressable normalized_site)."""
    parts = urlsplit(url)
    default = {"https": 443, "http": 80}.get(parts.scheme)
    port = f":{parts.port}" if parts.port and parts.port != default else ""
    return f"{parts.scheme}://{(parts.hostname or '').lower()}{port}"
