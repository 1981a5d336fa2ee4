"""Mailpit's HTTP API (v1): what the in-cluster SMTP sink received.

Endpoints used (axllent/mailpit ``server/server.go``, ``server/apiv1``):
``GET /api/v1/messages`` (summaries, newest first), ``GET /api/v1/search?query=``,
``GET /api/v1/message/{ID}`` (full message: From, To, Subject, Text, HTML, Date),
``DELETE /api/v1/messages`` with ``{"IDs": [...]}``, and ``GET /readyz``.
Field names are Mailpit's (``From.Address``, ``Created``...).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import Any

import requests

REQUEST_TIMEOUT_S = 15.0
_URL = re.compile(r"https?://[^\s<>\"')\]]+")


class MailSinkError(Exception):
    """The sink's API could not be reached or answered with an error."""


@dataclass(frozen=True)
class Address:
    name: str
    address: str

    @classmethod
    def from_api(cls, data: Mapping[str, Any] | None) -> Address:
        data = data or {}
        return cls(str(data.get("Name") or ""), str(data.get("Address") or ""))

    def __str__(self) -> str:
        return f"{self.name} <{self.address}>" if self.name else self.address


@dataclass(frozen=True)
class MessageSummary:
    id: str
    sender: Address
    to: tuple[Address, ...]
    subject: str
    created: str

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> MessageSummary:
        return cls(
            id=str(data["ID"]),
            sender=Address.from_api(data.get("From")),
            to=tuple(Address.from_api(a) for a in data.get("To") or ()),
            subject=str(data.get("Subject") or ""),
            created=str(data.get("Created") or ""),
        )


@dataclass(frozen=True)
class Message:
    id: str
    sender: Address
    to: tuple[Address, ...]
    subject: str
    date: str
    text: str
    html: str

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> Message:
        return cls(
            id=str(data["ID"]),
            sender=Address.from_api(data.get("From")),
            to=tuple(Address.from_api(a) for a in data.get("To") or ()),
            subject=str(data.get("Subject") or ""),
            date=str(data.get("Date") or ""),
            text=str(data.get("Text") or ""),
            html=str(data.get("HTML") or ""),
        )

    def links(self) -> list[str]:
        """Every http(s) URL in the text part and every href in the HTML part, in order."""
        found = _URL.findall(self.text)
        parser = _Hrefs()
        parser.feed(self.html)
        found.extend(parser.hrefs)
        found.extend(_URL.findall(self.html))
        seen: dict[str, None] = {}
        for url in found:
            seen.setdefault(url.rstrip(".,;"), None)
        return list(seen)


class _Hrefs(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self.hrefs.extend(v for k, v in attrs if k == "href" and v)


class MailpitClient:
    """A thin client for Mailpit's API at ``base_url`` (e.g. a port-forward)."""

    def __init__(self, base_url: str, session: requests.Session | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        if session is None:
            session = requests.Session()
            session.trust_env = False
        self.session = session

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        url = f"{self.base_url}{path}"
        try:
            response = self.session.request(method, url, timeout=REQUEST_TIMEOUT_S, **kwargs)
        except requests.RequestException as exc:
            raise MailSinkError(f"mail sink API {url} unreachable: {exc}") from exc
        if response.status_code >= 300:
            raise MailSinkError(f"mail sink {method} {path} answered HTTP {response.status_code}: "
                                f"{response.text[:200]}")
        if method != "GET":
            return None  # Mailpit answers writes with a plain "ok"
        try:
            return response.json()
        except ValueError as exc:
            raise MailSinkError(f"mail sink {method} {path} did not answer JSON") from exc

    def messages(self, limit: int = 50) -> list[MessageSummary]:
        """The newest ``limit`` messages, newest first."""
        data = self._call("GET", "/api/v1/messages", params={"limit": limit})
        return [MessageSummary.from_api(m) for m in data.get("messages") or ()]

    def search(self, query: str, limit: int = 50) -> list[MessageSummary]:
        """Messages matching a Mailpit search (``to:addr``, ``subject:"..."``)."""
        data = self._call("GET", "/api/v1/search", params={"query": query, "limit": limit})
        return [MessageSummary.from_api(m) for m in data.get("messages") or ()]

    def message(self, message_id: str) -> Message:
        return Message.from_api(self._call("GET", f"/api/v1/message/{message_id}"))

    def delete(self, ids: Iterable[str]) -> None:
        self._call("DELETE", "/api/v1/messages", json={"IDs": list(ids)})
