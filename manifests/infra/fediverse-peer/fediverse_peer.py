"""A small ActivityPub peer and Web Push receiver for the kind environment.

Standard library only: it runs in a stock ``python`` image with this one file mounted
from a ConfigMap generated beside it. It never imports tootcheck; tootcheck loads this
same file as ``tootcheck.peers.fediverse_peer`` and uses its protocol helpers.

    python fediverse_peer.py --public-url https://fedi.fediverse-peer.svc.cluster.local \\
        --port 8443 --tls-cert /tls/tls.crt --tls-key /tls/tls.key --admin-port 8080

Public side (what Mastodon talks to; HTTPS when a certificate is given):
  GET  /.well-known/webfinger?resource=acct:<name>@<host>   JRD for a known actor
  GET  /users/<name>                                         actor document with its public key
  POST /users/<name>/inbox, POST /inbox                      inbox (records every request)
  POST /push/<id>                                            Web Push receiver (records it)
Admin side (plain HTTP on its own port, reached through a port-forward only):
  GET  /_peer/health
  PUT  /_peer/actors/<name>   {"publicKeyPem": "..."}: serve an actor with this key
  GET  /_peer/records?after=<seq>&kind=<inbox|push|fetch>

The inbox enforces what needs no RSA: a well-formed draft-cavage ``Signature`` header
naming (request-target), host, date and digest, a SHA-256 ``Digest`` that matches the
body, and a fresh ``Date``; otherwise it answers 401 (as Mastodon does). The RSA check
against the sender's published key is made by the suite from the recorded request
(``tootcheck.clients.activitypub.verify_signature``): a stock image has no RSA.
"""

from __future__ import annotations

import argparse
import base64
import collections
import email.utils
import hashlib
import json
import re
import signal
import socket
import ssl
import sys
import threading
import time
from collections.abc import Callable, Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

ACTIVITY_JSON = "application/activity+json"
JRD_JSON = "application/jrd+json"
AS_CONTEXT = "https://www.w3.org/ns/activitystreams"
SECURITY_CONTEXT = "https://w3id.org/security/v1"
REQUEST_TARGET = "(request-target)"
# What Mastodon signs on a delivery (app/lib/request.rb, HttpSignatureDraft) and what the
# inbox insists on; content-type is signed too but not required by the inbox.
REQUIRED_SIGNED = (REQUEST_TARGET, "host", "date", "digest")
MAX_BODY = 1024 * 1024
MAX_RECORDS = 2000
DATE_MAX_AGE_S = 12 * 3600  # Mastodon: EXPIRATION_WINDOW_LIMIT
DATE_MAX_SKEW_S = 3600  # Mastodon: CLOCK_SKEW_MARGIN
_ACTOR_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_SIG_PARAM = re.compile(r'\s*([A-Za-z]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([0-9.]+))\s*(?:,|$)')


# ----------------------------------------------------------------- protocol helpers


class Headers:
    """An ordered, case-insensitive list of header pairs (repeated names kept)."""

    def __init__(self, pairs: Iterable[tuple[str, str]]) -> None:
        self.pairs = [(str(k), str(v)) for k, v in pairs]

    def get(self, name: str) -> str | None:
        values = [v for k, v in self.pairs if k.lower() == name.lower()]
        return ", ".join(values) if values else None

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None


def parse_signature(value: str) -> dict[str, str]:
    """Parse a draft-cavage ``Signature`` header into its parameters.

    >>> parse_signature('keyId="https://a/u#k",algorithm="rsa-sha256",signature="eA=="')["keyId"]
    'https://a/u#k'
    """
    params: dict[str, str] = {}
    pos = 0
    text = value.strip()
    while pos < len(text):
        match = _SIG_PARAM.match(text, pos)
        if match is None or match.end() == pos:
            raise ValueError(f"malformed Signature header near {text[pos:pos + 20]!r}")
        quoted, bare = match.group(2), match.group(3)
        params[match.group(1)] = quoted.replace('\\"', '"') if quoted is not None else bare
        pos = match.end()
    return params


def signed_header_names(params: dict[str, str]) -> list[str]:
    """The header names a signature covers, in order (draft-cavage default: date)."""
    return params.get("headers", "date").lower().split()


def signing_string(names: Iterable[str], method: str, target: str, headers: Headers) -> str:
    """The string a draft-cavage signature is computed over.

    ``target`` is the path with its query string, as Mastodon's verifier uses it.
    Raises ``KeyError`` naming a signed header the request does not carry.
    """
    lines = []
    for name in names:
        if name == REQUEST_TARGET:
            lines.append(f"{REQUEST_TARGET}: {method.lower()} {target}")
            continue
        value = headers.get(name)
        if value is None:
            raise KeyError(name)
        lines.append(f"{name}: {value}")
    return "\n".join(lines)


def body_digest(body: bytes) -> str:
    """The ``Digest`` header value Mastodon sends: ``SHA-256=<base64>``."""
    return "SHA-256=" + base64.b64encode(hashlib.sha256(body).digest()).decode()


def digest_problem(headers: Headers, body: bytes) -> str | None:
    """Why the ``Digest`` header does not vouch for ``body`` (None when it does)."""
    value = headers.get("digest")
    if value is None:
        return "no Digest header"
    offered = {}
    for part in value.split(","):
        algo, _, digest = part.strip().partition("=")
        offered[algo.lower()] = digest
    if "sha-256" not in offered:
        return f"Digest offers no SHA-256 ({', '.join(offered) or 'nothing'})"
    if offered["sha-256"] != body_digest(body).partition("=")[2]:
        return "Digest does not match the body (altered in transit?)"
    return None


def date_problem(headers: Headers, now: float) -> str | None:
    value = headers.get("date")
    if value is None:
        return "no Date header"
    try:
        when = email.utils.parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError):
        return f"unparseable Date header {value!r}"
    if when < now - DATE_MAX_AGE_S:
        return f"Date {value} is more than 12 h old"
    if when > now + DATE_MAX_SKEW_S:
        return f"Date {value} is more than 1 h in the future"
    return None


def inbox_problem(method: str, target: str, headers: Headers, body: bytes, now: float) -> str | None:
    """Everything about an inbox POST that can be judged without RSA (None: acceptable)."""
    value = headers.get("signature")
    if value is None:
        return "unsigned: no Signature header"
    try:
        params = parse_signature(value)
    except ValueError as exc:
        return f"unparseable Signature header: {exc}"
    missing = [p for p in ("keyId", "signature") if not params.get(p)]
    if missing:
        return f"Signature header lacks {', '.join(missing)}"
    algorithm = params.get("algorithm", "hs2019")
    if algorithm not in ("rsa-sha256", "hs2019"):
        return f"unsupported signature algorithm {algorithm!r}"
    names = signed_header_names(params)
    unsigned = [n for n in REQUIRED_SIGNED if n not in names]
    if unsigned:
        return f"signature does not cover {', '.join(unsigned)}"
    try:
        signing_string(names, method, target, headers)
    except KeyError as exc:
        return f"signed header {exc.args[0]!r} is missing from the request"
    return digest_problem(headers, body) or date_problem(headers, now)


def actor_id(public_url: str, name: str) -> str:
    return f"{public_url.rstrip('/')}/users/{name}"


def actor_document(public_url: str, name: str, public_key_pem: str) -> dict[str, Any]:
    """A minimal actor Mastodon accepts (ActivityPub::FetchRemoteActorService)."""
    base = public_url.rstrip("/")
    uid = actor_id(base, name)
    return {
        "@context": [AS_CONTEXT, SECURITY_CONTEXT],
        "id": uid,
        "type": "Service",
        "preferredUsername": name,
        "name": f"tootcheck peer {name}",
        "inbox": f"{uid}/inbox",
        "endpoints": {"sharedInbox": f"{base}/inbox"},
        "manuallyApprovesFollowers": False,
        "discoverable": False,
        "publicKey": {"id": f"{uid}#main-key", "owner": uid, "publicKeyPem": public_key_pem},
    }


def webfinger_document(public_url: str, name: str) -> dict[str, Any]:
    host = urlsplit(public_url).hostname or ""
    uid = actor_id(public_url, name)
    return {
        "subject": f"acct:{name}@{host}",
        "aliases": [uid],
        "links": [{"rel": "self", "type": ACTIVITY_JSON, "href": uid}],
    }


# --------------------------------------------------------------------- the server


class PeerState:
    """Actors served and requests recorded; shared by both listeners."""

    def __init__(self, public_url: str, clock: Callable[[], float] = time.time) -> None:
        self.public_url = public_url.rstrip("/")
        self.host = urlsplit(public_url).hostname or ""
        self.clock = clock
        self.actors: dict[str, str] = {}
        self.records: collections.deque[dict[str, Any]] = collections.deque(maxlen=MAX_RECORDS)
        self.seq = 0
        self.lock = threading.Lock()

    def record(self, kind: str, handler: BaseHTTPRequestHandler, body: bytes, status: int,
               problem: str | None) -> None:
        parts = urlsplit(handler.path)
        with self.lock:
            self.seq += 1
            self.records.append({
                "seq": self.seq,
                "time": self.clock(),
                "kind": kind,
                "method": handler.command,
                "target": handler.path,
                "path": parts.path,
                "headers": list(handler.headers.items()),
                "body_b64": base64.b64encode(body).decode(),
                "status": status,
                "problem": problem or "",
            })

    def records_after(self, after: int, kind: str | None) -> list[dict[str, Any]]:
        with self.lock:
            return [r for r in self.records if r["seq"] > after and (kind is None or r["kind"] == kind)]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "tootcheck-fediverse-peer"
    timeout = 30  # seconds a connection may idle (keep-alive included)
    state: PeerState

    def setup(self) -> None:
        super().setup()  # applies the timeout to the socket
        # The status line and headers, then the body, go out as separate small writes
        # (wfile is unbuffered): without TCP_NODELAY the body waits for the client's
        # delayed ACK of the headers, about 40 ms on every keep-alive request.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if isinstance(self.connection, ssl.SSLSocket):
            self.connection.do_handshake()

    # ------------------------------------------------------------ plumbing
    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            total = 0
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    break
                total += size
                if total > MAX_BODY:
                    raise ValueError("body too large")
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            raise ValueError("body too large")
        return self.rfile.read(length) if length else b""

    def _send(self, status: int, payload: Any = None, content_type: str = "application/json") -> None:
        data = b"" if payload is None else json.dumps(payload).encode()
        self.send_response(status)
        if data:
            self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if data and self.command != "HEAD":
            self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        sys.stderr.write(f"{self.log_date_time_string()} {self.address_string()} {format % args}\n")


class PublicHandler(_Handler):
    """What Mastodon sees: WebFinger, actors, inboxes, the push receiver."""

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        state = self.state
        if parts.path == "/.well-known/webfinger":
            resource = (parse_qs(parts.query).get("resource") or [""])[0]
            name, _, host = resource.removeprefix("acct:").partition("@")
            if host.lower() != state.host.lower() or name not in state.actors:
                self._record_fetch(404)
                return self._send(404, {"error": f"no such account {resource}"})
            self._record_fetch(200)
            return self._send(200, webfinger_document(state.public_url, name), JRD_JSON)
        match = re.fullmatch(r"/users/([^/]+)", parts.path)
        if match and match.group(1) in state.actors:
            name = match.group(1)
            self._record_fetch(200)
            return self._send(200, actor_document(state.public_url, name, state.actors[name]),
                              ACTIVITY_JSON)
        self._record_fetch(404)
        return self._send(404, {"error": "not found"})

    def _record_fetch(self, status: int) -> None:
        self.state.record("fetch", self, b"", status, None)

    def do_POST(self) -> None:
        path = urlsplit(self.path).path
        try:
            body = self._body()
        except ValueError as exc:
            return self._send(413, {"error": str(exc)})
        if path.startswith("/push/"):
            self.state.record("push", self, body, 201, None)
            return self._send(201)
        if path == "/inbox" or re.fullmatch(r"/users/[^/]+/inbox", path):
            problem = inbox_problem(self.command, self.path, Headers(self.headers.items()), body,
                                    self.state.clock())
            status = 401 if problem else 202
            self.state.record("inbox", self, body, status, problem)
            return self._send(status, {"error": problem} if problem else None)
        self.state.record("other", self, body, 404, "unknown path")
        return self._send(404, {"error": "not found"})


class AdminHandler(_Handler):
    """The suite's side: configure actors, read recordings."""

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        state = self.state
        if parts.path == "/_peer/health":
            return self._send(200, {"ok": True, "actors": len(state.actors), "records": state.seq})
        if parts.path == "/_peer/records":
            query = parse_qs(parts.query)
            try:
                after = int((query.get("after") or ["0"])[0])
            except ValueError:
                return self._send(400, {"error": "after must be an integer"})
            kind = (query.get("kind") or [None])[0]
            return self._send(200, {"records": state.records_after(after, kind), "last": state.seq})
        return self._send(404, {"error": "not found"})

    def do_PUT(self) -> None:
        match = re.fullmatch(r"/_peer/actors/([^/]+)", urlsplit(self.path).path)
        if not match or not _ACTOR_NAME.match(match.group(1)):
            return self._send(404, {"error": "PUT /_peer/actors/<name> ([A-Za-z0-9_-]{1,64})"})
        try:
            pem = json.loads(self._body() or b"{}").get("publicKeyPem", "")
        except (ValueError, AttributeError):
            return self._send(400, {"error": "body must be JSON with publicKeyPem"})
        if "BEGIN PUBLIC KEY" not in pem:
            return self._send(400, {"error": "publicKeyPem must be a PEM public key"})
        name = match.group(1)
        self.state.actors[name] = pem
        return self._send(201, {"id": actor_id(self.state.public_url, name)})


class _TLSServer(ThreadingHTTPServer):
    daemon_threads = True
    tls: ssl.SSLContext | None = None

    def get_request(self):
        sock, address = super().get_request()
        if self.tls is not None:
            # Handshake in the handler thread, so a slow client cannot stall accept().
            sock = self.tls.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        return sock, address


class Peer:
    """Both listeners; ``stop()`` shuts them down."""

    def __init__(self, state: PeerState, bind: str, port: int, admin_port: int,
                 tls: ssl.SSLContext | None) -> None:
        self.state = state
        public_handler = type("Public", (PublicHandler,), {"state": state})
        admin_handler = type("Admin", (AdminHandler,), {"state": state})
        self.public = _TLSServer((bind, port), public_handler)
        self.public.tls = tls
        self.admin = _TLSServer((bind, admin_port), admin_handler)
        self.threads = [threading.Thread(target=s.serve_forever, daemon=True)
                        for s in (self.public, self.admin)]

    @property
    def ports(self) -> tuple[int, int]:
        return self.public.server_address[1], self.admin.server_address[1]

    def start(self) -> Peer:
        for thread in self.threads:
            thread.start()
        return self

    def stop(self) -> None:
        for server in (self.public, self.admin):
            server.shutdown()
            server.server_close()


def tls_context(cert: str, key: str) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert, key)
    return context


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--public-url", required=True, help="https://<host> Mastodon reaches us at")
    parser.add_argument("--bind", default="0.0.0.0")
    parser.add_argument("--port", type=int, default=8443, help="public listener (0: any free port)")
    parser.add_argument("--admin-port", type=int, default=8080, help="admin listener (0: any)")
    parser.add_argument("--tls-cert", help="PEM certificate chain for the public listener")
    parser.add_argument("--tls-key", help="PEM private key for the public listener")
    args = parser.parse_args(argv)
    if bool(args.tls_cert) != bool(args.tls_key):
        parser.error("--tls-cert and --tls-key go together")
    tls = tls_context(args.tls_cert, args.tls_key) if args.tls_cert else None
    peer = Peer(PeerState(args.public_url), args.bind, args.port, args.admin_port, tls).start()
    public_port, admin_port = peer.ports
    # First line on stdout: where we listen (tests start us with port 0).
    print(json.dumps({"event": "listening", "public_port": public_port, "admin_port": admin_port,
                      "public_url": args.public_url, "tls": tls is not None}), flush=True)
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    signal.signal(signal.SIGINT, lambda *_: stopped.set())
    while not stopped.wait(1.0):
        pass
    peer.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
