"""Per-run secrets for the kind deployment: real random values, never printed.

Formats follow what Mastodon and Authentik generate themselves:

* ``SECRET_KEY_BASE``, ``OTP_SECRET``: ``SecureRandom.hex(64)`` — 128 hex digits
  (Mastodon ``lib/tasks/mastodon.rake``, ``mastodon:setup``).
* ``ACTIVE_RECORD_ENCRYPTION_*``: ``SecureRandom.alphanumeric(32)`` each, as
  Mastodon's own ``bin/rails db:encryption:init`` prints them
  (``lib/tasks/db.rake``, which replaces the Rails task).
* ``VAPID_PRIVATE_KEY`` / ``VAPID_PUBLIC_KEY``: a P-256 key pair, URL-safe base64
  *with* padding of the 32-byte private scalar and of the 65-byte uncompressed
  public point, as ``rake mastodon:webpush:generate_vapid_key`` prints them
  (``Webpush.generate_key``; the webpush gem's ``encode64`` is
  ``Base64.urlsafe_encode64``). The public key goes to the ConfigMap.
* ``AUTHENTIK_SECRET_KEY``: 60 random bytes in standard base64, as authentik's
  installation guide generates it (``openssl rand 60 | base64 -w 0``).
* Passwords and tokens: alphanumeric, so they survive a shell, a URL, and
  ``--requirepass $(REDIS_PASSWORD)`` without quoting.

Every value is wrapped in :class:`~tootcheck.redaction.Secret` the moment it
exists, so it is registered with the redactor and masked in any report.
"""

from __future__ import annotations

import base64
import re
import secrets as random
import string
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from tootcheck.errors import BadInput
from tootcheck.redaction import Secret

ALNUM = string.ascii_letters + string.digits


def hex_secret(nbytes: int = 64) -> str:
    return random.token_hex(nbytes)


def alphanumeric(length: int = 32) -> str:
    return "".join(random.choice(ALNUM) for _ in range(length))


def vapid_key_pair() -> tuple[str, str]:
    """(private, public): URL-safe base64 with padding, as Mastodon's rake task prints."""
    key = ec.generate_private_key(ec.SECP256R1())
    private = key.private_numbers().private_value.to_bytes(32, "big")
    public = key.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
    return (base64.urlsafe_b64encode(private).decode(), base64.urlsafe_b64encode(public).decode())


def authentik_secret_key() -> str:
    return base64.b64encode(random.token_bytes(60)).decode()


# name -> (generator, format pattern). VAPID keys are generated as a pair below.
_HEX128 = r"[0-9a-f]{128}"
_ALNUM = r"[A-Za-z0-9]{%d}"
SPECS: dict[str, tuple[Callable[[], str] | None, str]] = {
    "SECRET_KEY_BASE": (hex_secret, _HEX128),
    "OTP_SECRET": (hex_secret, _HEX128),
    "ACTIVE_RECORD_ENCRYPTION_DETERMINISTIC_KEY": (alphanumeric, _ALNUM % 32),
    "ACTIVE_RECORD_ENCRYPTION_KEY_DERIVATION_SALT": (alphanumeric, _ALNUM % 32),
    "ACTIVE_RECORD_ENCRYPTION_PRIMARY_KEY": (alphanumeric, _ALNUM % 32),
    "VAPID_PRIVATE_KEY": (None, r"[A-Za-z0-9_-]{43}="),
    "VAPID_PUBLIC_KEY": (None, r"B[A-Za-z0-9_-]{86}="),
    "DB_PASS": (alphanumeric, _ALNUM % 32),
    "REDIS_PASSWORD": (alphanumeric, _ALNUM % 32),
    "SMTP_PASSWORD": (alphanumeric, _ALNUM % 32),
    "OIDC_CLIENT_SECRET": (lambda: alphanumeric(64), _ALNUM % 64),
    "AUTHENTIK_SECRET_KEY": (authentik_secret_key, r"[A-Za-z0-9+/]{80}"),
    "AUTHENTIK_BOOTSTRAP_PASSWORD": (alphanumeric, _ALNUM % 32),
    "AUTHENTIK_BOOTSTRAP_TOKEN": (lambda: alphanumeric(64), _ALNUM % 64),
    "AUTHENTIK_POSTGRESQL_PASSWORD": (alphanumeric, _ALNUM % 32),
    "OIDC_TEST_USER_PASSWORD": (alphanumeric, _ALNUM % 32),
}

# Keys of the Secret the manifests reference as ``mastodon-secrets``.
MASTODON_SECRET_KEYS = (
    "SECRET_KEY_BASE", "OTP_SECRET", "VAPID_PRIVATE_KEY", "DB_PASS", "REDIS_PASSWORD",
    "OIDC_CLIENT_SECRET", "ACTIVE_RECORD_ENCRYPTION_DETERMINISTIC_KEY",
    "ACTIVE_RECORD_ENCRYPTION_KEY_DERIVATION_SALT", "ACTIVE_RECORD_ENCRYPTION_PRIMARY_KEY",
    "SMTP_PASSWORD",
)


def format_problem(name: str, value: str) -> str | None:
    """Why ``value`` is not a well-formed ``name``, or None. Never quotes the value."""
    spec = SPECS.get(name)
    if spec is None:
        return f"{name}: not a known secret"
    if not re.fullmatch(spec[1], value):
        return f"{name}: malformed ({len(value)} characters, expected /{spec[1]}/)"
    if name == "VAPID_PUBLIC_KEY" and len(base64.urlsafe_b64decode(value)) != 65:
        return f"{name}: not a 65-byte uncompressed P-256 point"
    return None


@dataclass(frozen=True)
class SecretSet:
    """The run's secrets by name. Iterating yields names; values are Secrets."""

    values: Mapping[str, Secret]

    def __getitem__(self, name: str) -> Secret:
        return self.values[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.values)

    def __len__(self) -> int:
        return len(self.values)

    def __repr__(self) -> str:
        return f"SecretSet({', '.join(sorted(self.values))})"

    @property
    def vapid_public_key(self) -> str:
        """Public by design (it is served to browsers); goes to the ConfigMap."""
        return self.values["VAPID_PUBLIC_KEY"].reveal()

    def secret_data(self, names: tuple[str, ...] | list[str] | None = None) -> dict[str, str]:
        """base64 ``data`` for a Kubernetes Secret (all names by default)."""
        chosen = list(self.values) if names is None else list(names)
        return {n: base64.b64encode(self.values[n].reveal().encode()).decode() for n in chosen}


def generate() -> SecretSet:
    """A complete, fresh set of secrets."""
    return complete({})[0]


def complete(existing: Mapping[str, str]) -> tuple[SecretSet, list[str]]:
    """Keep well-formed existing values (a reused cluster), generate the rest.

    Returns the set and the names generated now. A malformed stored value is
    bad input: silently replacing it would break the data it protects.
    """
    values: dict[str, Secret] = {}
    generated: list[str] = []
    for name, value in existing.items():
        if name not in SPECS:
            continue
        problem = format_problem(name, value)
        if problem:
            raise BadInput(f"stored run secret {problem}; delete the cluster or fix the Secret")
        values[name] = Secret(value, name)
    if "VAPID_PRIVATE_KEY" not in values or "VAPID_PUBLIC_KEY" not in values:
        private, public = vapid_key_pair()
        values["VAPID_PRIVATE_KEY"] = Secret(private, "VAPID_PRIVATE_KEY")
        values["VAPID_PUBLIC_KEY"] = Secret(public, "VAPID_PUBLIC_KEY")
        generated += ["VAPID_PRIVATE_KEY", "VAPID_PUBLIC_KEY"]
    for name, (make, _pattern) in SPECS.items():
        if name not in values and make is not None:
            values[name] = Secret(make(), name)
            generated.append(name)
    ordered = {name: values[name] for name in SPECS}
    return SecretSet(ordered), generated


def from_secret_data(data: Mapping[str, str] | None) -> dict[str, str]:
    """Decode a Kubernetes Secret's base64 ``data``."""
    out: dict[str, str] = {}
    for name, encoded in (data or {}).items():
        try:
            out[name] = base64.b64decode(encoded, validate=True).decode()
        except (ValueError, UnicodeDecodeError):
            raise BadInput(f"stored run secret {name}: not valid base64 text") from None
    return out
