"""A real SMTP sink on 127.0.0.1 (aiosmtpd) with a Mailpit-compatible HTTP reader.

The reader answers the subset of Mailpit's API v1 that ``tootcheck.clients.mailsink``
uses, with Mailpit's field names (axllent/mailpit ``internal/storage/structs.go``,
``server/apiv1/messages.go``), so the check's client path is the one used in kind:
``GET /api/v1/messages``, ``GET /api/v1/search?query=to:<addr>``,
``GET /api/v1/message/<ID>``, ``DELETE /api/v1/messages``, ``GET /readyz``.
"""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import json
import secrets
import threading
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import getaddresses, parseaddr
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from tests.peers.databases import free_port


def _address(name: str, address: str) -> dict[str, str]:
    return {"Name": name, "Address": address}


@dataclass
class Received:
    id: str
    envelope_from: str
    envelope_to: list[str]
    raw: bytes
    created: dt.datetime
    parsed: EmailMessage = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.parsed = email.message_from_bytes(self.raw, policy=email.policy.default)  # type: ignore[assignment]

    def _body(self, subtype: str) -> str:
        part = self.parsed.get_body(preferencelist=(subtype,))
        return part.get_content() if part is not None else ""

    def summary(self) -> dict[str, Any]:
        name, addr = parseaddr(str(self.parsed.get("From", "")))
        return {
            "ID": self.id,
            "MessageID": str(self.parsed.get("Message-ID", "")).strip("<>"),
            "Read": False,
            "From": _address(name, addr),
            "To": [_address(n, a) for n, a in getaddresses([str(self.parsed.get("To", ""))])],
            "Cc": [],
            "Bcc": [],
            "ReplyTo": [],
            "Subject": str(self.parsed.get("Subject", "")),
            "Created": self.created.isoformat().replace("+00:00", "Z"),
            "Tags": [],
            "Size": len(self.raw),
            "Attachments": 0,
            "Snippet": self._body("plain")[:250],
        }

    def full(self) -> dict[str, Any]:
        data = self.summary()
        for key in ("Read", "Created", "Snippet"):
            data.pop(key)
        data.update(Date=str(self.parsed.get("Date", "")), Text=self._body("plain"),
                    HTML=self._body("html"), Inline=[], Attachments=[])
        return data


class _Handler:
    """aiosmtpd handler: keep every message."""

    def __init__(self, sink: SmtpSink) -> None:
        self.sink = sink

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.sink.add(envelope.mail_from or "", list(envelope.rcpt_tos), envelope.original_content or b"")
        return "250 Message accepted for delivery"


class SmtpSink:
    """aiosmtpd on 127.0.0.1 plus the Mailpit-style reader; ``stop()`` ends both."""

    def __init__(self) -> None:
        self.messages: list[Received] = []
        self.lock = threading.Lock()
        self.smtp = Controller(_Handler(self), hostname="127.0.0.1", port=free_port())
        self.http = ThreadingHTTPServer(("127.0.0.1", 0), type("H", (_Api,), {"sink": self}))
        self._thread = threading.Thread(target=self.http.serve_forever,
                                        kwargs={"poll_interval": 0.02}, daemon=True)

    @property
    def smtp_port(self) -> int:
        return int(self.smtp.port)

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.http.server_address[1]}"

    def start(self) -> SmtpSink:
        self.smtp.start()
        self._thread.start()
        return self

    def stop(self) -> None:
        self.smtp.stop()
        self.http.shutdown()
        self.http.server_close()

    def add(self, mail_from: str, rcpt_tos: list[str], raw: bytes) -> None:
        with self.lock:
            self.messages.append(Received(secrets.token_urlsafe(16), mail_from, rcpt_tos, raw,
                                          dt.datetime.now(dt.UTC)))

    def newest_first(self) -> list[Received]:
        with self.lock:
            return list(reversed(self.messages))


class _Api(BaseHTTPRequestHandler):
    sink: SmtpSink

    def _send(self, status: int, payload: Any) -> None:
        is_text = isinstance(payload, bytes)
        data = payload if is_text else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain" if is_text else "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _listing(self, messages: list[Received], limit: int) -> dict[str, Any]:
        total = len(self.sink.messages)
        return {"total": total, "unread": total, "count": min(limit, len(messages)),
                "messages_count": len(messages), "messages_unread": len(messages), "start": 0,
                "tags": [], "messages": [m.summary() for m in messages[:limit]]}

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        query = parse_qs(parts.query)
        limit = int((query.get("limit") or ["50"])[0])
        if parts.path == "/readyz":
            return self._send(200, b"ok")
        if parts.path == "/api/v1/messages":
            return self._send(200, self._listing(self.sink.newest_first(), limit))
        if parts.path == "/api/v1/search":
            term = (query.get("query") or [""])[0]
            if not term.startswith("to:"):
                return self._send(400, b"this reader supports to: searches only")
            wanted = term[3:].strip('"').lower()
            found = [m for m in self.sink.newest_first()
                     if any(a["Address"].lower() == wanted for a in m.summary()["To"])]
            return self._send(200, self._listing(found, limit))
        if parts.path.startswith("/api/v1/message/"):
            wanted = parts.path.rsplit("/", 1)[1]
            for message in self.sink.newest_first():
                if message.id == wanted:
                    return self._send(200, message.full())
            return self._send(404, b"message not found")
        return self._send(404, b"not found")

    def do_DELETE(self) -> None:
        if urlsplit(self.path).path != "/api/v1/messages":
            return self._send(404, b"not found")
        length = int(self.headers.get("Content-Length") or 0)
        ids = set(json.loads(self.rfile.read(length) or b"{}").get("IDs") or [])
        with self.sink.lock:
            self.sink.messages = [m for m in self.sink.messages if ids and m.id not in ids]
        return self._send(200, b"ok")

    def log_message(self, format: str, *args: Any) -> None:
        pass
