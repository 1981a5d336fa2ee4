"""Mastodon's streaming API over WebSocket (``wss://<domain>/api/v1/streaming``).

Speaks the multiplexed protocol of Mastodon's ``streaming/index.js``:

- the token travels in ``Authorization: Bearer``, in ``Sec-WebSocket-Protocol``
  (the web UI's way; the server echoes it back) or in ``?access_token=``;
- a refused upgrade is an HTTP response (401 with ``X-Error-Message``), which
  :func:`connect` returns as a :class:`Rejection` instead of raising;
- the client sends ``{"type": "subscribe"|"unsubscribe", "stream": ..., ...}``;
- the server sends ``{"stream": [...], "event": ..., "payload": ...}`` frames,
  whose payload is a JSON *string* (a bare id for ``delete``), and
  ``{"error": ..., "status": ...}`` frames when a subscription fails.

A :class:`StreamingSession` reads frames in a background task, stamps each with
its arrival time, keeps the raw text for evidence and parses it with
:func:`parse_frame`, which never raises. Waits are bounded and fail with
:class:`~tootcheck.waiting.WaitTimeout` naming what was awaited and the last
frame seen. This module never asserts; checks judge what it returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlencode

import requests
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus
from websockets.typing import Subprotocol

from tootcheck.redaction import Secret, redact
from tootcheck.target import Target
from tootcheck.waiting import WaitTimeout

HEALTH_PATH = "/api/v1/streaming/health"
ERROR_HEADER = "X-Error-Message"
# The sync probe: a stream name the server cannot know. Mastodon answers
# {"error": "Unknown stream type", "status": 400} after it has processed every
# earlier message of this connection (see StreamingSession.sync).
SYNC_STREAM = "tootcheck:sync"
UNKNOWN_STREAM_ERROR = "Unknown stream type"
RAW_EVIDENCE_CHARS = 2000

TokenVia = Literal["header", "subprotocol", "query"]


class StreamingUnavailable(Exception):
    """The streaming endpoint could not be reached (network, TLS, timeout, bad reply)."""


class StreamClosed(StreamingUnavailable):
    """A message could not be sent: the server had closed the connection."""


@dataclass(frozen=True)
class Rejection:
    """The HTTP response that refused the WebSocket upgrade."""

    status: int
    reason: str
    headers: Mapping[str, str]
    body: str = ""

    @property
    def error_message(self) -> str | None:
        """The ``X-Error-Message`` header Mastodon sets on a refused upgrade."""
        for name, value in self.headers.items():
            if name.lower() == ERROR_HEADER.lower():
                return value
        return None

    def describe(self) -> str:
        reason = self.error_message
        tail = f" ({ERROR_HEADER}: {reason!r})" if reason is not None else f" (no {ERROR_HEADER})"
        return f"HTTP {self.status} {self.reason}".rstrip() + tail


@dataclass(frozen=True)
class StreamEvent:
    """One frame from the server, parsed without judging it.

    ``stream`` is the ``stream`` field as sent (normally a list of names),
    ``payload`` the raw payload (normally a string). ``problem`` says why the
    frame is not a well-formed event or error frame, if it is not.
    """

    raw: str
    received_at: float
    stream: Any = None
    event: str | None = None
    payload: Any = None
    error: str | None = None
    status: int | None = None
    problem: str | None = None

    @property
    def is_error(self) -> bool:
        return self.error is not None

    @property
    def stream_names(self) -> tuple[str, ...]:
        if isinstance(self.stream, list) and all(isinstance(s, str) for s in self.stream):
            return tuple(self.stream)
        return ()

    def parsed_payload(self) -> Any:
        """The payload decoded from its JSON string; ``None`` when it is not one."""
        if not isinstance(self.payload, str):
            return None
        try:
            return json.loads(self.payload)
        except ValueError:
            return None

    def payload_status_id(self) -> str | None:
        """The status id an ``update`` carries, tolerating a non-string payload."""
        body = self.payload if isinstance(self.payload, dict) else self.parsed_payload()
        if isinstance(body, dict) and body.get("id") is not None:
            return str(body["id"])
        return None

    def describe(self) -> str:
        """One line for messages: event, stream and id, or the error."""
        if self.is_error:
            return f"error frame {self.error!r} (status {self.status})"
        if self.problem:
            return f"unparsed frame ({self.problem}): {self.raw[:120]!r}"
        ident = self.payload if self.event == "delete" else self.payload_status_id()
        where = list(self.stream_names) if self.stream_names else self.stream
        return f"{self.event} on {where} (id {ident})"

    def evidence(self) -> dict[str, Any]:
        return {"raw": redact(self.raw[:RAW_EVIDENCE_CHARS]), "received_at": self.received_at}


def parse_frame(raw: str | bytes, received_at: float) -> StreamEvent:
    """Parse a server frame into a :class:`StreamEvent`; never raises."""
    if isinstance(raw, bytes):
        text = raw.decode("utf-8", "replace")
        return StreamEvent(raw=text, received_at=received_at, problem="binary frame")
    try:
        body = json.loads(raw)
    except ValueError as exc:
        return StreamEvent(raw=raw, received_at=received_at, problem=f"not JSON: {exc}")
    if not isinstance(body, dict):
        return StreamEvent(raw=raw, received_at=received_at,
                           problem=f"not a JSON object but {type(body).__name__}")
    if "error" in body:
        status = body.get("status")
        return StreamEvent(raw=raw, received_at=received_at, error=str(body["error"]),
                           status=status if isinstance(status, int) else None)
    event = body.get("event")
    return StreamEvent(
        raw=raw,
        received_at=received_at,
        stream=body.get("stream"),
        event=event if isinstance(event, str) else None,
        payload=body.get("payload"),
        problem=None if isinstance(event, str) else "no event name",
    )


def subscribe_message(stream: str, **params: str) -> str:
    """``{"type":"subscribe","stream":"user"}`` (plus ``tag``/``list`` params)."""
    return json.dumps({"type": "subscribe", "stream": stream, **params})


def unsubscribe_message(stream: str, **params: str) -> str:
    return json.dumps({"type": "unsubscribe", "stream": stream, **params})


def _describe_exception(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return redact(f"{type(exc).__name__}: {' '.join(text.split())}")


class StreamingSession:
    """An open streaming connection: subscribe, unsubscribe, and bounded waits on frames."""

    def __init__(self, connection: ClientConnection, uri: str) -> None:
        self._ws = connection
        self.uri = uri
        self.events: list[StreamEvent] = []
        self.closed: str | None = None
        self._changed = asyncio.Condition()
        self._reader = asyncio.create_task(self._read())

    @property
    def subprotocol(self) -> str | None:
        """The subprotocol the server selected (it echoes the token when sent that way)."""
        return self._ws.subprotocol

    async def _read(self) -> None:
        try:
            async for message in self._ws:
                self.events.append(parse_frame(message, time.monotonic()))
                await self._notify()
        except ConnectionClosed as exc:
            self.closed = _describe_exception(exc)
        except Exception as exc:  # the reader must not die silently
            self.closed = _describe_exception(exc)
        else:
            self.closed = "connection closed by the server"
            if self._ws.close_code is not None:
                self.closed += f" (code {self._ws.close_code} {self._ws.close_reason!r})"
        await self._notify()

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def send_text(self, text: str) -> None:
        """Send one text frame; :class:`StreamClosed` when the connection is gone."""
        try:
            await self._ws.send(text)
        except ConnectionClosed as exc:
            reason = self.closed or _describe_exception(exc)
            raise StreamClosed(f"cannot send on {self.uri}: {reason}") from None

    async def subscribe(self, stream: str, **params: str) -> None:
        await self.send_text(subscribe_message(stream, **params))

    async def unsubscribe(self, stream: str, **params: str) -> None:
        await self.send_text(unsubscribe_message(stream, **params))

    def last_event(self) -> StreamEvent | None:
        return self.events[-1] if self.events else None

    def last_state(self) -> str:
        last = self.last_event()
        state = f"last frame: {last.describe()}" if last else "no frame received"
        if self.closed:
            state += f"; {self.closed}"
        return f"{len(self.events)} frame(s); {state}"

    async def wait_for(
        self,
        predicate: Callable[[StreamEvent], bool],
        *,
        what: str,
        timeout: float,
        since: int = 0,
    ) -> StreamEvent:
        """The first frame at index >= ``since`` matching ``predicate``.

        Raises :class:`WaitTimeout` (what was awaited, last frame seen) after
        ``timeout`` seconds, or at once when the connection has closed.
        """
        checked = since
        polls = 0

        def found() -> StreamEvent | None:
            nonlocal checked
            while checked < len(self.events):
                event = self.events[checked]
                checked += 1
                if predicate(event):
                    return event
            return None

        try:
            async with asyncio.timeout(timeout):
                while True:
                    polls += 1
                    match = found()
                    if match is not None:
                        return match
                    if self.closed:
                        raise WaitTimeout(what, timeout, self.last_state(), polls)
                    async with self._changed:
                        if checked >= len(self.events) and not self.closed:
                            await self._changed.wait()
        except TimeoutError:
            raise WaitTimeout(what, timeout, self.last_state(), polls) from None

    async def sync(self, timeout: float, *, since: int | None = None) -> StreamEvent | None:
        """Wait until the server has handled every message sent so far.

        Mastodon does not acknowledge (un)subscriptions. It does answer a
        subscription to an unknown stream with an error frame, after the
        earlier messages' work (scope check, channel lookup, local listener
        changes) has been done, so that frame serves as a barrier. The wait
        also ends at any earlier error frame (index >= ``since``, default: from
        now), since an error answers one of the messages being synced.
        Returns the frame that ended the wait, or None after ``timeout``.
        """
        start = len(self.events) if since is None else since
        await self.subscribe(SYNC_STREAM)
        try:
            return await self.wait_for(lambda e: e.is_error, what="the answer to the sync probe",
                                       timeout=timeout, since=start)
        except WaitTimeout:
            return None

    async def iter_events(self, *, idle_timeout: float, since: int = 0) -> AsyncIterator[StreamEvent]:
        """Yield frames as they arrive; raises WaitTimeout after ``idle_timeout`` of silence."""
        index = since
        while True:
            yield await self.wait_for(lambda _e: True, what="the next frame",
                                      timeout=idle_timeout, since=index)
            index += 1

    async def close(self) -> None:
        await self._ws.close()
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader

    async def __aenter__(self) -> StreamingSession:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()


def streaming_uri(target: Target, *, stream: str | None = None, token: Secret | None = None,
                  via: TokenVia = "header") -> str:
    query: dict[str, str] = {}
    if stream:
        query["stream"] = stream
    if token is not None and via == "query":
        query["access_token"] = token.reveal()
    return target.streaming_url + (f"?{urlencode(query)}" if query else "")


async def connect(
    target: Target,
    token: Secret | None,
    *,
    via: TokenVia = "header",
    stream: str | None = None,
    open_timeout: float = 10.0,
) -> StreamingSession | Rejection:
    """Open the streaming WebSocket the way the target's clients do.

    Returns a :class:`StreamingSession` (use ``async with``) or, when the server
    answers the upgrade with an HTTP status, a :class:`Rejection`. Raises
    :class:`StreamingUnavailable` when there is no HTTP answer at all.
    """
    uri = streaming_uri(target, stream=stream, token=token, via=via)
    headers: dict[str, str] = {}
    subprotocols: list[Subprotocol] | None = None
    if token is not None and via == "header":
        headers["Authorization"] = f"Bearer {token.reveal()}"
    if token is not None and via == "subprotocol":
        subprotocols = [Subprotocol(token.reveal())]
    ssl_context: ssl.SSLContext | None = target.ssl_context() if uri.startswith("wss:") else None
    try:
        connection = await ws_connect(
            uri,
            ssl=ssl_context,
            additional_headers=headers,
            subprotocols=subprotocols,
            user_agent_header="tootcheck",
            open_timeout=open_timeout,
            proxy=None,  # like the pinned requests session: ignore proxy variables
            max_size=2**22,
            **target.pins.websocket_kwargs(uri),  # type: ignore[arg-type]
        )
    except InvalidStatus as exc:
        response = exc.response
        body = response.body.decode("utf-8", "replace") if response.body else ""
        return Rejection(status=response.status_code, reason=response.reason_phrase,
                         headers=dict(response.headers.raw_items()), body=body[:500])
    except (OSError, TimeoutError, InvalidHandshake, ssl.SSLError) as exc:
        raise StreamingUnavailable(
            f"{target.streaming_url}: {_describe_exception(exc)}") from None
    return StreamingSession(connection, target.streaming_url)


@dataclass(frozen=True)
class HealthAnswer:
    status: int
    body: str
    content_type: str = ""
    headers: Mapping[str, str] = field(default_factory=dict)


def health(target: Target, *, timeout: float = 10.0) -> HealthAnswer:
    """``GET /api/v1/streaming/health`` over the target's pinned, CA-scoped session."""
    url = f"{target.base_url}{HEALTH_PATH}"
    with target.http() as session:
        try:
            response = session.get(url, timeout=timeout, allow_redirects=False)
        except requests.RequestException as exc:
            raise StreamingUnavailable(f"{url}: {_describe_exception(exc)}") from None
        return HealthAnswer(status=response.status_code, body=response.text[:500],
                            content_type=response.headers.get("Content-Type", ""),
                            headers=dict(response.headers))
