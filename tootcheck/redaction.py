"""Secrets never reach logs or reports.

:class:`Secret` wraps a value so that ``str``/``repr``/formatting print a mask;
code that needs the value calls :meth:`Secret.reveal`. Every Secret registers its
value with the process-wide :data:`REDACTOR`, which report writers and the
evidence collector run over all text they write.
"""

from __future__ import annotations

import functools
import re
import threading
from collections.abc import Iterator
from typing import Any, NoReturn

MASK = "***"
_MIN_LEN = 6  # shorter values would mask ordinary words


class Redactor:
    """Replaces every registered secret value in a text with a mask."""

    def __init__(self) -> None:
        self._values: set[str] = set()
        self._lock = threading.Lock()
        self._ordered: tuple[str, ...] = ()  # longest first: a secret inside another masks as one

    def register(self, value: str) -> None:
        if len(value) < _MIN_LEN:
            return
        with self._lock:
            if value not in self._values:
                self._values.add(value)
                self._ordered = tuple(sorted(self._values, key=len, reverse=True))

    def redact(self, text: str) -> str:
        # Find which secrets occur first (a substring search each, in C): one regex over
        # hundreds of registered values costs about ten times as much, and most texts hold none.
        present = [value for value in self._ordered if value in text]
        if not present:
            return text
        return re.sub("|".join(re.escape(v) for v in present), MASK, text)

    def __contains__(self, value: str) -> bool:
        return value in self._values


REDACTOR = Redactor()


class Secret:
    """A secret value that prints as a mask."""

    __slots__ = ("_label", "_value")

    def __init__(self, value: str, label: str = "secret") -> None:
        self._value = value
        self._label = label
        REDACTOR.register(value)

    def reveal(self) -> str:
        return self._value

    def __str__(self) -> str:
        return f"<{self._label}:{MASK}>"

    __repr__ = __str__

    def __format__(self, spec: str) -> str:
        return str(self)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __reduce__(self) -> NoReturn:
        raise TypeError("Secret values are not picklable")


def redact(text: str) -> str:
    """Mask every registered secret in ``text``."""
    return REDACTOR.redact(text)


# ---------------------------------------------------------------- secret-valued settings
# Mastodon's secret-valued settings (config.md "Secrets"; the ENV reads of config/, app/
# and lib/), beyond what Polaris's name patterns catch (they miss DB_PASS,
# REPLICA_DB_PASS, ES_PASS, VAPID_PRIVATE_KEY, SAML_PRIVATE_KEY, SWIFT_TEMP_URL_KEY and
# ACTIVE_RECORD_*).
MASTODON_SECRETS = frozenset({
    "SECRET_KEY_BASE", "OTP_SECRET", "VAPID_PRIVATE_KEY", "DB_PASS", "REPLICA_DB_PASS",
    "REDIS_PASSWORD", "OIDC_CLIENT_SECRET", "SMTP_PASSWORD", "BULK_SMTP_PASSWORD",
    "AWS_SECRET_ACCESS_KEY", "ES_PASS", "SIDEKIQ_REDIS_PASSWORD", "CACHE_REDIS_PASSWORD",
    "POSTGRES_PASSWORD", "LDAP_PASSWORD", "SAML_PRIVATE_KEY", "CACHE_BUSTER_SECRET",
    "DEEPL_API_KEY", "LIBRE_TRANSLATE_API_KEY", "HCAPTCHA_SECRET_KEY", "SWIFT_PASSWORD",
    "SWIFT_TEMP_URL_KEY", "AZURE_STORAGE_ACCESS_KEY", "FETCH_REPLIES_TOKEN"})
_SECRET_NAME = re.compile(r"(?i)password|token|bearer|secret|^AWS_SECRET_ACCESS_KEY$|"
                          r"^GOOGLE_APPLICATION_CREDENTIALS$|^AZURE_.+KEY$|"
                          r"^OCI_CLI_KEY_CONTENT$|_PASS$|_KEY$")
# Plain settings whose names match those patterns: public keys, URLs, a header name, flags.
NOT_SECRET = frozenset({
    "VAPID_PUBLIC_KEY", "OIDC_CLIENT_AUTH_METHOD", "OIDC_TOKEN_ENDPOINT",
    "OIDC_SEND_SCOPE_TO_TOKEN_ENDPOINT", "CACHE_BUSTER_SECRET_HEADER",
    "IGNORE_ALREADY_SET_SECRETS"})


@functools.lru_cache(maxsize=4096)  # the same setting names recur in every object
def is_secret_key(name: str) -> bool:
    """A setting whose value is a credential (SECRET_KEY_BASE, DB_PASS, any *_PASSWORD,
    *_SECRET, *_KEY that is not public, ...); the value is never looked at."""
    if name in NOT_SECRET or "PUBLIC" in name.upper():
        return False
    return (name in MASTODON_SECRETS or name.startswith("ACTIVE_RECORD_ENCRYPTION_")
            or bool(_SECRET_NAME.search(name)))


def _walk(value: Any, found: list[str] | None) -> Any:
    """A copy of ``value`` with secret-valued entries masked (ConfigMap data and
    binaryData keys; env entries {name, value}); their values go to ``found``."""
    if isinstance(value, list):
        return [_walk(v, found) for v in value]
    if not isinstance(value, dict):
        return value
    out = {k: _walk(v, found) for k, v in value.items()}
    for section, key, setting in _settings(value):
        if section is None:
            out["value"] = _mask_one(key, setting, found)
        else:  # out[section] is the copy made just above
            out[section][key] = _mask_one(key, setting, found)
    return out


def _settings(value: dict[Any, Any]) -> Iterator[tuple[str | None, Any, Any]]:
    """The settings ``value`` holds itself: (section, key, value) for each entry of a
    ConfigMap's data and binaryData, (None, name, value) for an env entry {name, value}."""
    if value.get("kind") == "ConfigMap":
        for section in ("data", "binaryData"):
            data = value.get(section)
            if isinstance(data, dict):
                for k, v in data.items():
                    yield section, k, v
    name = value.get("name")
    if isinstance(name, str) and "value" in value and not isinstance(value["value"], dict | list):
        yield None, name, value["value"]


def _mask_one(key: object, value: Any, found: list[str] | None) -> Any:
    if not is_secret_key(str(key)) or value in (None, ""):
        return value
    if found is not None:
        found.append(str(value))
    return MASK


def mask_secret_settings(value: Any) -> Any:
    """``value`` (objects, lists of them, a ConfigMap's data) with every secret-valued
    ConfigMap key and env value replaced by the mask; the key stays visible."""
    return _walk(value, None)


def secret_setting_values(value: Any) -> list[str]:
    """The values :func:`mask_secret_settings` hides, in the same order, for censoring
    free text (the walk of ``_walk`` without copying ``value``)."""
    found: list[str] = []
    if isinstance(value, dict | list):
        _collect(value, found)
    return found


def _collect(value: dict[Any, Any] | list[Any], found: list[str]) -> None:
    # Every mapping of every parsed object passes here: classes compared first (cheaper
    # than isinstance of a union), a subclass still recognised.
    for v in value if isinstance(value, list) else value.values():
        cls = v.__class__
        if cls is dict or cls is list or (cls is not str and isinstance(v, dict | list)):
            _collect(v, found)
    if not isinstance(value, list):
        own_secret_values(value, found)


def own_secret_values(value: dict[Any, Any], found: list[str]) -> None:
    """The step of :func:`secret_setting_values` for one mapping, its children left out:
    the values of the secret-valued settings it holds itself go to ``found``."""
    if "value" in value or "kind" in value:  # most dicts hold no setting: no generator
        for _, key, setting in _settings(value):
            _mask_one(key, setting, found)


def register_secret_settings(value: Any) -> list[str]:
    """Register the secret-valued settings in ``value`` with :data:`REDACTOR`, so every
    report writer masks them too; returns them."""
    values = secret_setting_values(value)
    register_values(values)
    return values


def register_values(values: list[str]) -> None:
    """Register secret values already collected (see :func:`secret_setting_values`)."""
    for secret_value in values:
        REDACTOR.register(secret_value)


def mask_setting(key: str, value: Any) -> Any:
    """One setting (ConfigMap key or env name) as printable: the mask if it is secret."""
    return MASK if is_secret_key(key) and value not in (None, "") else value
