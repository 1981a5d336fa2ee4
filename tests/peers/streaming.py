"""A local Mastodon for the streaming checks: streaming server, REST API and an ingress.

Three servers on 127.0.0.1, wired like the reference deployment:

- :class:`StreamingPeer`: Mastodon's streaming protocol (``streaming/index.js``)
  on ``websockets``' server: 401 with ``X-Error-Message`` before the upgrade,
  the token from ``Authorization``/``Sec-WebSocket-Protocol``/``access_token``
  (the subprotocol echoed back), ``subscribe``/``unsubscribe`` messages,
  ``{"stream": [...], "event": ..., "payload": "<json string>"}`` frames,
  in-socket error frames, and plain-HTTP ``/api/v1/streaming/health``.
  It listens on the Redis-style channels of a :class:`Broker`
  (``timeline:<account_id>``, ``timeline:public:local``, ...).
- :class:`RestPeer`: ``POST /api/v1/statuses``, ``DELETE /api/v1/statuses/:id``
  and ``GET /api/v1/accounts/verify_credentials`` with Mastodon's scopes and
  entity shapes; it publishes ``update``/``delete`` to the channels Rails'
  FanOutOnWriteService/RemoveStatusService use. Its ``publish`` callable can be
  a redis-py client instead of the in-memory broker, to drive a real streaming
  server.
- :class:`Ingress`: TLS for ``kirchner.social`` and path routing like the
  Traefik Ingress (``/api/v1/streaming`` to streaming, ``/`` to REST), so the
  checks use exactly the production path: ``wss://`` and ``https://`` on one host.

Faults are plain mutable dataclasses (:class:`StreamingFaults`,
:class:`RestFaults`) that a test flips before running a check.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import itertools
import json
import secrets
import ssl
import threading
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qs

from flask import Flask, jsonify, request
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.http11 import Request, Response
from websockets.typing import Subprotocol
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from tests.peers.entities import (
    account_entity,
    credential_account_entity,
    iso_timestamp,
    status_entity,
)
from tootcheck.clients.pinning import PinMap
from tootcheck.redaction import Secret
from tootcheck.target import Account, Target

STREAMING_PATH = "/api/v1/streaming"
HEALTH_PATH = "/api/v1/streaming/health"
PUBLIC_CHANNELS = ("public", "public:media", "public:local", "public:local:media",
                   "public:remote", "public:remote:media", "hashtag", "hashtag:local")
STOP_TIMEOUT_S = 5.0


# ----------------------------------------------------------------- directory


@dataclass(frozen=True)
class AccountRecord:
    id: str
    username: str
    entity: dict[str, Any]


@dataclass
class TokenRecord:
    id: int
    token: str
    account_id: str
    scopes: tuple[str, ...]
    revoked: bool = False

    def has_any(self, *scopes: str) -> bool:
        return any(scope in self.scopes for scope in scopes)


class Directory:
    """Accounts and OAuth access tokens, shared by the REST and streaming peers."""

    def __init__(self, domain: str = "kirchner.social") -> None:
        self.domain = domain
        self.accounts: dict[str, AccountRecord] = {}
        self.tokens: dict[str, TokenRecord] = {}
        self._ids = itertools.count(1)

    def add_account(self, username: str) -> AccountRecord:
        account_id = str(next(self._ids) + 100)
        record = AccountRecord(account_id, username,
                               account_entity(account_id, username, domain=self.domain))
        self.accounts[account_id] = record
        return record

    def add_token(self, account: AccountRecord, scopes: str = "read write follow push") -> str:
        token = secrets.token_urlsafe(32)
        self.tokens[token] = TokenRecord(next(self._ids), token, account.id, tuple(scopes.split()))
        return token

    def lookup(self, token: str | None) -> TokenRecord | None:
        record = self.tokens.get(token or "")
        return record if record is not None and not record.revoked else None


# -------------------------------------------------------------------- broker


class Broker:
    """Redis-like pub/sub in memory: ``publish(channel, text)``, ``subscribe(channel, cb)``."""

    def __init__(self) -> None:
        self._subscribers: dict[str, list[Callable[[str], None]]] = {}
        self._lock = threading.Lock()
        self.published: list[tuple[str, str]] = []

    def subscribe(self, channel: str, callback: Callable[[str], None]) -> Callable[[], None]:
        with self._lock:
            self._subscribers.setdefault(channel, []).append(callback)

        def unsubscribe() -> None:
            with self._lock:
                callbacks = self._subscribers.get(channel, [])
                if callback in callbacks:
                    callbacks.remove(callback)

        return unsubscribe

    def publish(self, channel: str, message: str) -> int:
        with self._lock:
            callbacks = list(self._subscribers.get(channel, []))
            self.published.append((channel, message))
        for callback in callbacks:
            callback(message)
        return len(callbacks)

    def subscriber_count(self, channel: str) -> int:
        with self._lock:
            return len(self._subscribers.get(channel, []))


# ---------------------------------------------------------------- event loop


class PeerLoop:
    """An asyncio loop in a daemon thread, for servers the tests call synchronously."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="peer-loop",
                                        daemon=True)

    def start(self) -> None:
        self._thread.start()

    def call(self, coro: Coroutine[Any, Any, Any], timeout: float = STOP_TIMEOUT_S) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(STOP_TIMEOUT_S)
        if not self._thread.is_alive():
            self.loop.close()


# ----------------------------------------------------------------- streaming


@dataclass
class StreamingFaults:
    """What the streaming peer gets wrong. Defaults: nothing."""

    accept_no_token: bool = False
    accept_any_token: bool = False
    reject_valid_tokens: bool = False
    ignore_subprotocol_token: bool = False
    echo_subprotocol: bool = True
    reject_status: int = 401
    error_header: Literal["real", "missing", "generic"] = "real"
    drop_events: set[str] = field(default_factory=set)
    drop_every_nth_update: int = 0
    rename_streams: dict[str, str] = field(default_factory=dict)
    update_payload: Literal["string", "object", "garbage"] = "string"
    delete_payload: Literal["bare", "json-object", "number"] = "bare"
    update_delay_s: float = 0.0
    ignore_unsubscribe: bool = False
    crash_on_update: bool = False  # drop the TCP connection like the real server's exit
    health_status: int = 200
    health_body: str = "OK"


def _error_frame(message: str, status: int | None = None) -> str:
    body: dict[str, Any] = {"error": message}
    if status is not None:
        body["status"] = status
    return json.dumps(body)


class _Client:
    """One accepted WebSocket connection: its subscriptions and an ordered writer."""

    def __init__(self, peer: StreamingPeer, connection: ServerConnection,
                 token: TokenRecord | None) -> None:
        self.peer = peer
        self.connection = connection
        self.token = token
        self.queue: asyncio.Queue[str] = asyncio.Queue()
        self.subscriptions: dict[str, list[Callable[[], None]]] = {}
        self.loop = asyncio.get_running_loop()

    async def write_forever(self) -> None:
        while True:
            await self.connection.send(await self.queue.get())

    def channels(self, name: str, params: dict[str, Any]) -> tuple[list[str], list[str]] | str:
        """(channel ids, stream field) for a stream name, or an error text."""
        account = self.token.account_id if self.token else None
        plain = {"public": "timeline:public", "public:local": "timeline:public:local",
                 "public:remote": "timeline:public:remote"}
        if name in plain:
            return [plain[name]], [name]
        if name in ("public:media", "public:local:media", "public:remote:media"):
            return [plain[name.removesuffix(":media")] + ":media"], [name]
        if name in ("hashtag", "hashtag:local"):
            tag = params.get("tag")
            if not tag:
                return "Missing tag name parameter"
            suffix = ":local" if name == "hashtag:local" else ""
            return [f"timeline:hashtag:{str(tag).lower()}{suffix}"], [name, str(tag)]
        if name == "user" and account:
            ids = [f"timeline:{account}"]
            if self.token and self.token.has_any("read", "read:notifications"):
                ids.append(f"timeline:{account}:notifications")
            return ids, [name]
        if name == "user:notification" and account:
            return [f"timeline:{account}:notifications"], [name]
        if name == "direct" and account:
            return [f"timeline:direct:{account}"], [name]
        return "Unknown stream type"

    def subscribe(self, name: str, params: dict[str, Any]) -> None:
        if name not in PUBLIC_CHANNELS:
            needed = ("read", "read:notifications") if name == "user:notification" else (
                "read", "read:statuses")
            if self.token is None or not self.token.has_any(*needed):
                self.queue.put_nowait(_error_frame(
                    "Access token does not have the required scopes", 401))
                return
        resolved = self.channels(name, params)
        if isinstance(resolved, str):
            self.queue.put_nowait(_error_frame(resolved, 400))
            return
        channel_ids, stream = resolved
        key = ";".join(channel_ids)
        if key in self.subscriptions:
            return
        self.subscriptions[key] = [
            self.peer.broker.subscribe(channel, self._listener(stream)) for channel in channel_ids
        ]

    def unsubscribe(self, name: str, params: dict[str, Any]) -> None:
        if self.peer.faults.ignore_unsubscribe:
            return
        resolved = self.channels(name, params)
        if isinstance(resolved, str):
            self.queue.put_nowait(_error_frame("Error unsubscribing from channel"))
            return
        for stop in self.subscriptions.pop(";".join(resolved[0]), []):
            stop()

    def close(self) -> None:
        for stops in self.subscriptions.values():
            for stop in stops:
                stop()
        self.subscriptions.clear()

    def _listener(self, stream: list[str]) -> Callable[[str], None]:
        def on_message(text: str) -> None:  # runs in the publisher's thread
            self.loop.call_soon_threadsafe(self._transmit, stream, text)

        return on_message

    def _transmit(self, stream: list[str], text: str) -> None:
        faults = self.peer.faults
        try:
            message = json.loads(text)
        except ValueError:
            return
        event, payload = message.get("event"), message.get("payload")
        if not event or not payload or event in faults.drop_events:
            return
        if event == "update" and faults.crash_on_update:
            self.connection.transport.abort()
            return
        if event == "update":
            self.peer.updates_seen += 1
            nth = faults.drop_every_nth_update
            if nth and self.peer.updates_seen % nth == 0:
                return
        names = [faults.rename_streams.get(stream[0], stream[0]), *stream[1:]]
        encoded: Any = json.dumps(payload) if isinstance(payload, dict) else payload
        if event == "update" and faults.update_payload == "object":
            encoded = payload
        elif event == "update" and faults.update_payload == "garbage":
            encoded = "<html>status</html>"
        elif event == "delete" and faults.delete_payload == "json-object":
            encoded = json.dumps({"id": payload})
        elif event == "delete" and faults.delete_payload == "number":
            encoded = int(payload)
        frame = json.dumps({"stream": names, "event": event, "payload": encoded})
        if event == "update" and faults.update_delay_s > 0:
            self.loop.call_later(faults.update_delay_s, self.queue.put_nowait, frame)
        else:
            self.queue.put_nowait(frame)


class StreamingPeer:
    """Mastodon's streaming server protocol on 127.0.0.1 (plain ws; the Ingress adds TLS)."""

    def __init__(self, directory: Directory, broker: Broker) -> None:
        self.directory = directory
        self.broker = broker
        self.faults = StreamingFaults()
        self.port = 0
        self.updates_seen = 0
        self.connections = 0
        self._server: Server | None = None

    async def start(self) -> None:
        self._server = await serve(
            self._handle, "127.0.0.1", 0,
            process_request=self._process_request,
            select_subprotocol=self._select_subprotocol,
            ping_interval=None,
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    def _reject(self, connection: ServerConnection, reason: str) -> Response:
        response = connection.respond(self.faults.reject_status, "")
        response.headers["Content-Type"] = "text/plain"
        if self.faults.error_header == "real":
            response.headers["X-Error-Message"] = reason
        elif self.faults.error_header == "generic":
            response.headers["X-Error-Message"] = "Unauthorized"
        return response

    def _process_request(self, connection: ServerConnection, req: Request) -> Response | None:
        path, _, query = req.path.partition("?")
        if path == HEALTH_PATH:
            response = connection.respond(self.faults.health_status, self.faults.health_body)
            response.headers["Content-Type"] = "text/plain"
            response.headers["Cache-Control"] = "private, no-store"
            return response
        if path.rstrip("/") != STREAMING_PATH:
            response = connection.respond(404, json.dumps({"error": "Not found"}))
            response.headers["Content-Type"] = "application/json"
            return response
        headers: Headers = req.headers
        authorization = headers.get("Authorization")
        subprotocol = None if self.faults.ignore_subprotocol_token else headers.get(
            "Sec-WebSocket-Protocol")
        access_token = parse_qs(query).get("access_token", [None])[0] or subprotocol
        if not authorization and not access_token:
            if not self.faults.accept_no_token:
                return self._reject(connection, "Missing access token")
            connection.tootcheck_token = None  # type: ignore[attr-defined]
            return None
        token = authorization.removeprefix("Bearer ") if authorization else access_token
        record = self.directory.lookup(token)
        if self.faults.reject_valid_tokens or (record is None and not self.faults.accept_any_token):
            return self._reject(connection, "Invalid access token")
        connection.tootcheck_token = record  # type: ignore[attr-defined]
        return None

    def _select_subprotocol(self, connection: ServerConnection,
                            subprotocols: list[Subprotocol]) -> Subprotocol | None:
        if subprotocols and self.faults.echo_subprotocol:
            return subprotocols[0]  # like ws' default: the first offered (the token)
        return None

    async def _handle(self, connection: ServerConnection) -> None:
        self.connections += 1
        client = _Client(self, connection, getattr(connection, "tootcheck_token", None))
        writer = asyncio.create_task(client.write_forever())
        query = parse_qs(connection.request.path.partition("?")[2]) if connection.request else {}
        if query.get("stream"):
            client.subscribe(query["stream"][0], {k: v[0] for k, v in query.items()})
        try:
            async for message in connection:
                if isinstance(message, bytes):
                    await connection.close(
                        1003, "The mastodon streaming server does not support binary messages")
                    break
                try:
                    body = json.loads(message)
                except ValueError:
                    continue
                if not isinstance(body, dict):
                    continue
                kind, stream = body.pop("type", None), body.pop("stream", None)
                stream = stream[0] if isinstance(stream, list) and stream else stream
                if kind == "subscribe" and isinstance(stream, str):
                    client.subscribe(stream, body)
                elif kind == "unsubscribe" and isinstance(stream, str):
                    client.unsubscribe(stream, body)
        finally:
            client.close()
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await writer


# ---------------------------------------------------------------------- REST


@dataclass
class RestFaults:
    """HTTP status codes the REST peer answers instead of doing the work (0: no fault)."""

    fail_verify: int = 0
    fail_post: int = 0
    fail_delete: int = 0


class _QuietHandler(WSGIRequestHandler):
    def log_request(self, *args: object, **kwargs: object) -> None:
        pass


class RestPeer:
    """Mastodon's REST API for statuses and credentials; publishes what Rails would."""

    def __init__(self, directory: Directory, publish: Callable[[str, str], Any]) -> None:
        self.directory = directory
        self.publish = publish
        self.faults = RestFaults()
        self.statuses: dict[str, tuple[str, str, dict[str, Any]]] = {}  # id: (author, text, entity)
        self.deleted: list[str] = []
        self.port = 0
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None
        self.app = self._build_app()

    def start(self) -> None:
        self._server = make_server("127.0.0.1", 0, self.app, threaded=True,
                                   request_handler=_QuietHandler)
        self.port = self._server.server_port
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.05}, name="rest-peer",
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(STOP_TIMEOUT_S)

    def _auth(self, *scopes: str) -> TokenRecord | tuple[Any, int]:
        header = request.headers.get("Authorization", "")
        record = self.directory.lookup(header.removeprefix("Bearer ").strip() or None)
        if record is None:
            return jsonify(error="The access token is invalid"), 401
        if not record.has_any(*scopes):
            return jsonify(error="This action is outside the authorized scopes"), 403
        return record

    def _publish(self, channel: str, event: str, payload: Any) -> None:
        self.publish(channel, json.dumps({"event": event, "payload": payload}))

    def _build_app(self) -> Flask:
        app = Flask("tootcheck-rest-peer")

        @app.get("/api/v1/accounts/verify_credentials")
        def verify_credentials() -> Any:
            auth = self._auth("read", "read:accounts", "profile")
            if not isinstance(auth, TokenRecord):
                return auth
            if self.faults.fail_verify:
                return jsonify(error="peer fault"), self.faults.fail_verify
            account = self.directory.accounts[auth.account_id].entity
            return jsonify(credential_account_entity(account))

        @app.post("/api/v1/statuses")
        def post_status() -> Any:
            auth = self._auth("write", "write:statuses")
            if not isinstance(auth, TokenRecord):
                return auth
            if self.faults.fail_post:
                return jsonify(error="peer fault"), self.faults.fail_post
            params = request.get_json(silent=True) or request.form
            text = str(params.get("status") or "")
            if not text.strip():
                return jsonify(error="Validation failed: Text can't be blank"), 422
            visibility = str(params.get("visibility") or "public")
            language = params.get("language") or "en"
            account = self.directory.accounts[auth.account_id].entity
            created_at = iso_timestamp()
            own = status_entity(account, text, visibility=visibility, language=language,
                                domain=self.directory.domain, created_at=created_at)
            self.statuses[own["id"]] = (auth.account_id, text, own)
            # FanOutOnWriteService: the author's home (PushUpdateWorker, rendered
            # for the author), then the public streams (anonymous rendering).
            self._publish(f"timeline:{auth.account_id}", "update", own)
            if visibility == "public":
                anonymous = status_entity(account, text, status_id=own["id"],
                                          visibility=visibility, language=language,
                                          domain=self.directory.domain, viewer=False,
                                          created_at=created_at)
                self._publish("timeline:public", "update", anonymous)
                self._publish("timeline:public:local", "update", anonymous)
            return jsonify(own)

        @app.delete("/api/v1/statuses/<status_id>")
        def delete_status(status_id: str) -> Any:
            auth = self._auth("write", "write:statuses")
            if not isinstance(auth, TokenRecord):
                return auth
            if self.faults.fail_delete:
                return jsonify(error="peer fault"), self.faults.fail_delete
            stored = self.statuses.get(status_id)
            if stored is None or stored[0] != auth.account_id:
                return jsonify(error="Record not found"), 404
            del self.statuses[status_id]
            self.deleted.append(status_id)
            _, text, status = stored
            response = status_entity(status["account"], text, status_id=status_id,
                                     visibility=status["visibility"],
                                     language=status["language"],
                                     domain=self.directory.domain, source_requested=True,
                                     created_at=status["created_at"])
            # RemoveStatusService: the author's home first, then the public streams.
            self._publish(f"timeline:{auth.account_id}", "delete", status_id)
            if status["visibility"] == "public":
                self._publish("timeline:public", "delete", status_id)
                self._publish("timeline:public:local", "delete", status_id)
            return jsonify(response)

        return app


# ------------------------------------------------------------------- ingress


class Ingress:
    """TLS termination and path routing on one port, like the Traefik Ingress.

    Routes by the first request of each connection (path prefix, element-wise);
    forwards plain HTTP with ``Connection: close`` so one connection carries
    one request, and pipes WebSocket upgrades through untouched.
    """

    def __init__(self, server_ssl: ssl.SSLContext, routes: dict[str, tuple[str, int]]) -> None:
        self.server_ssl = server_ssl
        self.routes = dict(sorted(routes.items(), key=lambda kv: -len(kv[0])))
        self.port = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0,
                                                  ssl=self.server_ssl)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=STOP_TIMEOUT_S)
        if self._server is not None:
            await self._server.wait_closed()

    def route(self, path: str) -> tuple[str, int] | None:
        for prefix, backend in self.routes.items():
            if prefix == "/" or path == prefix or path.startswith(prefix.rstrip("/") + "/"):
                return backend
        return None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        backend_writer: asyncio.StreamWriter | None = None
        try:
            try:
                async with asyncio.timeout(10):
                    head = await reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError,
                    ConnectionError, ssl.SSLError):
                return
            request_line, *lines = head[:-4].split(b"\r\n")
            parts = request_line.split(b" ")
            path = parts[1].split(b"?", 1)[0].decode("latin-1") if len(parts) == 3 else ""
            backend = self.route(path)
            if backend is None:
                writer.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n"
                             b"Connection: close\r\n\r\n")
                return
            if not any(line.lower().startswith(b"upgrade:") for line in lines):
                lines = [line for line in lines if not line.lower().startswith(b"connection:")]
                lines.append(b"Connection: close")
            try:
                backend_reader, backend_writer = await asyncio.open_connection(*backend)
            except OSError:
                writer.write(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n"
                             b"Connection: close\r\n\r\n")
                return
            backend_writer.write(b"\r\n".join([request_line, *lines]) + b"\r\n\r\n")
            upstream = asyncio.create_task(self._pipe(reader, backend_writer, half_close=True))
            await self._pipe(backend_reader, writer, half_close=False)
            upstream.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await upstream
        finally:
            for stream_writer in (backend_writer, writer):
                if stream_writer is not None:
                    stream_writer.close()
            self._tasks.discard(task)

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                    *, half_close: bool) -> None:
        try:
            while chunk := await reader.read(65536):
                writer.write(chunk)
                await writer.drain()
            if half_close and writer.can_write_eof():
                writer.write_eof()
        except (ConnectionError, ssl.SSLError, OSError):
            return


# -------------------------------------------------------------- the instance


class MastodonPeer:
    """REST + streaming + ingress for one domain, with a test account and token."""

    def __init__(self, server_ssl: ssl.SSLContext, ca_file: Path,
                 domain: str = "kirchner.social") -> None:
        self.domain = domain
        self.ca_file = ca_file
        self.directory = Directory(domain)
        self.broker = Broker()
        self.streaming = StreamingPeer(self.directory, self.broker)
        self.rest = RestPeer(self.directory, self.broker.publish)
        self.account = self.directory.add_account("tootcheck")
        self.token = self.directory.add_token(self.account)
        self._server_ssl = server_ssl
        self._loop = PeerLoop()
        self.ingress: Ingress | None = None

    def start(self) -> MastodonPeer:
        self._loop.start()
        self.rest.start()
        self._loop.call(self.streaming.start())
        self.ingress = Ingress(self._server_ssl, {
            STREAMING_PATH: ("127.0.0.1", self.streaming.port),
            "/": ("127.0.0.1", self.rest.port),
        })
        self._loop.call(self.ingress.start())
        return self

    def stop(self) -> None:
        with contextlib.suppress(concurrent.futures.TimeoutError, RuntimeError):
            if self.ingress is not None:
                self._loop.call(self.ingress.stop())
            self._loop.call(self.streaming.stop())
        self.rest.stop()
        self._loop.stop()

    def stop_streaming(self) -> None:
        """Stop the streaming server only: the ingress then answers 502, like Traefik."""
        self._loop.call(self.streaming.stop())

    def target(self, token: str | None = "default", *, https_port: int | None = None) -> Target:
        """A Target pinning ``kirchner.social:443`` to the ingress; ``token=None``: no account."""
        assert self.ingress is not None, "start() the peer first"
        port = https_port if https_port is not None else self.ingress.port
        accounts: dict[str, Account] = {}
        if token is not None:
            value = self.token if token == "default" else token
            accounts["test"] = Account(username=self.account.username,
                                       token=Secret(value, "test_token"))
        return Target(
            name=f"peer://{self.domain}",
            domain=self.domain,
            ca_file=self.ca_file,
            pins=PinMap({(self.domain, 443): ("127.0.0.1", port)}),
            accounts=accounts,
        )


@contextlib.contextmanager
def running_peer(server_ssl: ssl.SSLContext, ca_file: Path) -> Iterator[MastodonPeer]:
    peer = MastodonPeer(server_ssl, ca_file).start()
    try:
        yield peer
    finally:
        peer.stop()
