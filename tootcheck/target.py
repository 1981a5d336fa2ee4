"""A target: where the live checks point (the kind deployment, or the live instance).

A :class:`Target` is plain data. Suites receive one from ``fixtures/target.py``;
the suite's own tests build one pointing at local peers on 127.0.0.1. Checks take
what they need from it and never read settings or the environment themselves.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

import requests

from tootcheck.clients.pinning import PinMap, client_ssl_context, pinned_session
from tootcheck.redaction import Secret


@dataclass(frozen=True)
class Account:
    """A Mastodon account the suite may act as. The token is a :class:`Secret`."""

    username: str
    token: Secret | None = None
    email: str = ""
    password: Secret | None = None


@dataclass(frozen=True)
class Target:
    """Everything a live check needs to reach the system under test."""

    name: str  # URL-like id used in test ids: kind://tootcheck, live://kirchner.social
    domain: str = "kirchner.social"
    ca_file: Path | None = None
    pins: PinMap = field(default_factory=PinMap)
    auth_host: str = "auth.kirchner.social"
    oidc_issuer: str = "https://auth.kirchner.social/application/o/mastodon/"
    accounts: Mapping[str, Account] = field(default_factory=dict)
    kubeconfig: Path | None = None
    kube_context: str | None = None
    namespace: str = "mastodon"
    created_by_suite: bool = False
    streaming_path: str = "/api/v1/streaming"

    @property
    def base_url(self) -> str:
        return f"https://{self.domain}"

    @property
    def http_url(self) -> str:
        return f"http://{self.domain}"

    @property
    def streaming_url(self) -> str:
        return f"wss://{self.domain}{self.streaming_path}"

    def http(self) -> requests.Session:
        """A fresh session that trusts this target's CA only and honours the pins."""
        return pinned_session(self.pins, self.ca_file)

    def ssl_context(self) -> ssl.SSLContext:
        return client_ssl_context(self.ca_file)

    def account(self, role: str) -> Account:
        try:
            return self.accounts[role]
        except KeyError:
            known = ", ".join(sorted(self.accounts)) or "none"
            raise LookupError(
                f"target {self.name} has no {role!r} account (known: {known})") from None

    def with_(self, **changes: object) -> Target:
        return replace(self, **changes)  # type: ignore[arg-type]
