"""Mastodon's streaming server protocol on ``websockets``' server (plain ws; the Ingress adds TLS).

Modelled on ``streaming/index.js`` and ``streaming/utils.js`` of Mastodon (read at
Lastorder-DC/mastodon 1ebb87a6, the upstream commit verified in docs/upstream-verification.md;
docs/streaming.md "Fidelity" lists each point and the test that pins it):

- The upgrade is accepted on any path (``server.on('upgrade')`` does not look at the path;
  the Ingress only forwards ``/api/v1/streaming...``). Before it, the token from
  ``Authorization``/``access_token``/``Sec-WebSocket-Protocol`` (the subprotocol echoed back),
  else a bare ``401`` with ``X-Error-Message`` and one ``Content-Type: text/plain``.
- Plain HTTP: ``/api/v1/streaming/health`` (Express matches a trailing slash too) answers
  ``OK``; every other path reaches ``authenticationMiddleware``, which answers 400
  ``{"error":"Unknown channel requested"}`` when the path names no channel. The EventSource
  channels (``/api/v1/streaming/public`` ...) are not modelled: 501 after the token check.
- ``subscribe``/``unsubscribe`` messages and ``?stream=``; errors as in-socket frames
  ``{"error": ..., "status": ...}``: scopes (401), ``Missing tag name parameter`` (400),
  ``Missing list name parameter`` (400), ``Not authorized to stream this list`` (401),
  ``Unknown stream type`` (400). Hashtag channel names are normalised like
  ``normalizeHashtag`` (NFKC, lower case, ASCII folding, then only letters, digits, ``_``,
  U+00B7 and U+200C are kept). A list subscription waits for ``authorizeListAccess``'s
  database query, so its answer comes after the answers to later messages.
- Filtered channels (``public*``, ``hashtag*``) for a signed-in account: an ``update`` waits
  for the block/mute/filter queries and gains ``"filtered": []``; every other event passes
  straight through, so a ``delete`` published right after an ``update`` can arrive first.
- A WebSocket ping every 30 s (``ping_interval_s``; a test may shorten it).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import parse_qs

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.http11 import Request, Response
from websockets.typing import Subprotocol

from tests.peers.streaming_broker import Broker, Directory, TokenRecord

STREAMING_PATH = "/api/v1/streaming"
HEALTH_PATH = "/api/v1/streaming/health"
PUBLIC_CHANNELS = ("public", "public:media", "public:local", "public:local:media",
                   "public:remote", "public:remote:media", "hashtag", "hashtag:local")
FILTERED_CHANNELS = PUBLIC_CHANNELS  # channelNameToIds: needsFiltering: true
# channelNameFromPath: the EventSource paths that name a channel
EVENTSOURCE_PATHS = ("/user", "/user/notification", "/public", "/public/local", "/public/remote",
                     "/hashtag", "/hashtag/local", "/direct", "/list")
KEEPALIVE_S = 30.0  # setInterval(... ws.ping ..., 30000)
DB_QUERY_S = 0.02  # stand-in for a PostgreSQL round trip (filter queries, authorizeListAccess)

# ASCII folding of streaming/utils.js#foldToASCII (canon: app/lib/ascii_folder.rb), grouped by
# the ASCII letter each character folds to.
_FOLDS = {
    "A": "ÀÁÂÃÄÅĀĂĄ", "a": "àáâãäåāăą", "C": "ÇĆĈĊČ", "c": "çćĉċč", "D": "ÐĎĐ", "d": "ðďđ",
    "E": "ÈÉÊËĒĔĖĘĚ", "e": "èéêëēĕėęě", "G": "ĜĞĠĢ", "g": "ĝğġģ", "H": "ĤĦ", "h": "ĥħ",
    "I": "ÌÍÎÏĨĪĬĮİ", "i": "ìíîïĩīĭįı", "J": "Ĵ", "j": "ĵ", "K": "Ķ", "k": "ķĸ",
    "L": "ĹĻĽĿŁ", "l": "ĺļľŀł", "N": "ÑŃŅŇŊ", "n": "ñńņňŉŋ", "O": "ÒÓÔÕÖØŌŎŐ",
    "o": "òóôõöøōŏő", "R": "ŔŖŘ", "r": "ŕŗř", "S": "ŚŜŞŠ", "s": "śŝşšſ", "T": "ŢŤŦ",
    "t": "ţťŧ", "U": "ÙÚÛÜŨŪŬŮŰŲ", "u": "ùúûüũūŭůűų", "W": "Ŵ", "w": "ŵ", "Y": "ÝŶŸ",
    "y": "ýÿŷ", "Z": "ŹŻŽ", "z": "źżž",
}
_FOLD_TABLE = {ord(ch): ascii_ for ascii_, chars in _FOLDS.items() for ch in chars}


def normalize_hashtag(tag: str) -> str:
    """``normalizeHashtag``: NFKC, lower case, ASCII folding, then drop every character that
    is not a letter, a digit, ``_``, U+00B7 or U+200C (``/[^\\p{L}\\p{N}_\\u00b7\\u200c]/gu``)."""
    folded = unicodedata.normalize("NFKC", tag).lower().translate(_FOLD_TABLE)
    return "".join(ch for ch in folded
                   if unicodedata.category(ch)[0] in "LN" or ch in "_\u00b7\u200c")


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


def _http(connection: ServerConnection, status: int, body: str, content_type: str,
          **extra: str) -> Response:
    """A plain HTTP answer with each header once (``connection.respond`` adds its own
    Content-Type, which Express would not send twice)."""
    response = connection.respond(status, body)
    del response.headers["Content-Type"]
    response.headers["Content-Type"] = content_type
    for name, value in extra.items():
        response.headers[name.replace("_", "-")] = value
    return response


@dataclass(frozen=True)
class _Channel:
    ids: list[str]
    stream: list[str]
    filtered: bool


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

    def channels(self, name: str, params: dict[str, Any]) -> _Channel | tuple[str, int]:
        """channelNameToIds: the channel for a stream name, or (error text, status)."""
        account = self.token.account_id if self.token else None
        plain = {"public": "timeline:public", "public:local": "timeline:public:local",
                 "public:remote": "timeline:public:remote"}
        if name in plain:
            return _Channel([plain[name]], [name], True)
        if name in ("public:media", "public:local:media", "public:remote:media"):
            return _Channel([plain[name.removesuffix(":media")] + ":media"], [name], True)
        if name in ("hashtag", "hashtag:local"):
            tag = params.get("tag")
            if not tag:
                return "Missing tag name parameter", 400
            suffix = ":local" if name == "hashtag:local" else ""
            return _Channel([f"timeline:hashtag:{normalize_hashtag(str(tag))}{suffix}"],
                            [name, str(tag)], True)
        if name == "user" and account:
            ids = [f"timeline:{account}"]
            if self.token and self.token.has_any("read", "read:notifications"):
                ids.append(f"timeline:{account}:notifications")
            return _Channel(ids, [name], False)
        if name == "user:notification" and account:
            return _Channel([f"timeline:{account}:notifications"], [name], False)
        if name == "direct" and account:
            return _Channel([f"timeline:direct:{account}"], [name], False)
        if name == "list":
            list_id = params.get("list")
            if not list_id:
                return "Missing list name parameter", 400
            if self.peer.directory.lists.get(str(list_id)) != account:  # authorizeListAccess
                return "Not authorized to stream this list", 401
            return _Channel([f"timeline:list:{list_id}"], [name, str(list_id)], False)
        return "Unknown stream type", 400

    def subscribe(self, name: str, params: dict[str, Any]) -> None:
        if name == "list" and params.get("list"):
            # authorizeListAccess queries PostgreSQL: the answer comes after the frames of
            # later messages that need no database (the client's sync probe included)
            self.loop.call_later(self.peer.db_query_s, self._subscribe, name, params)
            return
        self._subscribe(name, params)

    def _subscribe(self, name: str, params: dict[str, Any]) -> None:
        if name not in PUBLIC_CHANNELS:  # checkScopes
            needed = ("read", "read:notifications") if name == "user:notification" else (
                "read", "read:statuses")
            if self.token is None or not self.token.has_any(*needed):
                self.queue.put_nowait(_error_frame(
                    "Access token does not have the required scopes", 401))
                return
        resolved = self.channels(name, params)
        if isinstance(resolved, tuple):
            self.queue.put_nowait(_error_frame(*resolved))
            return
        key = ";".join(resolved.ids)
        if key in self.subscriptions:
            return
        self.subscriptions[key] = [
            self.peer.broker.subscribe(channel, self._listener(resolved))
            for channel in resolved.ids
        ]

    def unsubscribe(self, name: str, params: dict[str, Any]) -> None:
        if self.peer.faults.ignore_unsubscribe:
            return
        resolved = self.channels(name, params)
        if isinstance(resolved, tuple):
            self.queue.put_nowait(_error_frame("Error unsubscribing from channel"))
            return
        for stop in self.subscriptions.pop(";".join(resolved.ids), []):
            stop()

    def close(self) -> None:
        for stops in self.subscriptions.values():
            for stop in stops:
                stop()
        self.subscriptions.clear()

    def _listener(self, channel: _Channel) -> Callable[[str], None]:
        def on_message(text: str) -> None:  # runs in the publisher's thread
            self.loop.call_soon_threadsafe(self._transmit, channel, text)

        return on_message

    def _transmit(self, channel: _Channel, text: str) -> None:
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
        delay = faults.update_delay_s if event == "update" else 0.0
        if (channel.filtered and event in ("update", "status.update") and self.token is not None
                and isinstance(payload, dict)):
            # streamFrom: a signed-in account's filtered updates wait for the database and
            # gain the keyword-filter results (none here) unless Rails already set them.
            if "filtered" not in payload:
                payload = {**payload, "filtered": []}
            delay += self.peer.db_query_s
        frame = self._frame(channel, event, payload)
        if delay > 0:
            self.loop.call_later(delay, self.queue.put_nowait, frame)
        else:
            self.queue.put_nowait(frame)

    def _frame(self, channel: _Channel, event: str, payload: Any) -> str:
        faults = self.peer.faults
        stream = channel.stream
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
        return json.dumps({"stream": names, "event": event, "payload": encoded})


class StreamingPeer:
    """Mastodon's streaming server protocol on 127.0.0.1 (plain ws; the Ingress adds TLS)."""

    def __init__(self, directory: Directory, broker: Broker, *,
                 ping_interval_s: float = KEEPALIVE_S) -> None:
        self.directory = directory
        self.broker = broker
        self.faults = StreamingFaults()
        self.ping_interval_s = ping_interval_s
        self.db_query_s = DB_QUERY_S
        self.port = 0
        self.updates_seen = 0
        self.connections = 0
        self._server: Server | None = None

    async def start(self) -> None:
        self._server = await serve(
            self._handle, "127.0.0.1", 0,
            process_request=self._process_request,
            select_subprotocol=self._select_subprotocol,
            ping_interval=self.ping_interval_s,
            ping_timeout=self.ping_interval_s,  # isAlive false at the next tick: terminate
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    def _reject(self, connection: ServerConnection, reason: str) -> Response:
        """The upgrade refused by hand, as handleUpgrade writes it to the socket."""
        headers = Headers([("Connection", "close"), ("Content-Type", "text/plain"),
                           ("Content-Length", "0")])
        if self.faults.error_header == "real":
            headers["X-Error-Message"] = reason
        elif self.faults.error_header == "generic":
            headers["X-Error-Message"] = "Unauthorized"
        status = self.faults.reject_status
        response = connection.respond(status, "")
        return Response(status, response.reason_phrase, headers, b"")

    def _token(self, req: Request, query: str) -> tuple[bool, TokenRecord | None, str]:
        """accountFromRequest: (token given, its record, error message)."""
        headers: Headers = req.headers
        authorization = headers.get("Authorization")
        subprotocol = None if self.faults.ignore_subprotocol_token else headers.get(
            "Sec-WebSocket-Protocol")
        access_token = parse_qs(query).get("access_token", [None])[0] or subprotocol
        if not authorization and not access_token:
            return False, None, "Missing access token"
        token = authorization.removeprefix("Bearer ") if authorization else access_token
        record = self.directory.lookup(token)
        if self.faults.reject_valid_tokens or (record is None and not self.faults.accept_any_token):
            return True, None, "Invalid access token"
        return True, record, ""

    def _process_request(self, connection: ServerConnection, req: Request) -> Response | None:
        path, _, query = req.path.partition("?")
        upgrade = "websocket" in req.headers.get("Upgrade", "").lower()
        if not upgrade:
            return self._plain_http(connection, req, path, query)
        given, record, error = self._token(req, query)
        if not given and self.faults.accept_no_token:
            connection.tootcheck_token = None  # type: ignore[attr-defined]
            return None
        if error:
            return self._reject(connection, error)
        connection.tootcheck_token = record  # type: ignore[attr-defined]
        return None

    def _plain_http(self, connection: ServerConnection, req: Request, path: str,
                    query: str) -> Response:
        if path.rstrip("/") == HEALTH_PATH:  # Express: non-strict routing
            return _http(connection, self.faults.health_status, self.faults.health_body,
                         "text/plain", Cache_Control="private, no-store")
        channel = path.rstrip("/").removeprefix(STREAMING_PATH)
        if not path.startswith(STREAMING_PATH + "/") or channel not in EVENTSOURCE_PATHS:
            return _http(connection, 400, json.dumps({"error": "Unknown channel requested"}),
                         "application/json")
        _, _, error = self._token(req, query)
        if error:
            return _http(connection, 401, json.dumps({"error": error}), "application/json")
        return _http(connection, 501, json.dumps({"error": "EventSource is not modelled"}),
                     "application/json")

    def _select_subprotocol(self, connection: ServerConnection,
                            subprotocols: Sequence[Subprotocol]) -> Subprotocol | None:
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
