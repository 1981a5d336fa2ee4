"""The streaming peer behaves like Mastodon's own streaming server, point by point.

Each test pins one behaviour of ``streaming/index.js`` / ``streaming/utils.js`` (Mastodon,
read at Lastorder-DC/mastodon 1ebb87a6, the upstream commit the checks were verified
against: docs/upstream-verification.md). docs/streaming.md "Fidelity" maps point to test.
"""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
import socket
import ssl
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme

from tests.peers.entities import status_entity
from tests.peers.streaming import KEEPALIVE_S, MastodonPeer, normalize_hashtag, running_peer
from tootcheck.checks.streaming import check_auth, check_delivery, check_health
from tootcheck.clients.streaming import StreamEvent, StreamingSession, connect
from tootcheck.redaction import Secret
from tootcheck.testing import expect_ok

pytestmark = pytest.mark.timeout(60)

FAST_PING_S = 0.3
WAIT_S = 5.0


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> tuple[ssl.SSLContext, Path]:
    ca = trustme.CA()
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("kirchner.social").configure_cert(server)
    ca_file = tmp_path_factory.mktemp("streaming-fidelity-ca") / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    return server, ca_file


@pytest.fixture(scope="module")
def peer(tls: tuple[ssl.SSLContext, Path]) -> Iterator[MastodonPeer]:
    with running_peer(*tls) as running:
        yield running


@pytest.fixture
def fast_ping_peer(tls: tuple[ssl.SSLContext, Path]) -> Iterator[MastodonPeer]:
    """A peer of its own that pings every FAST_PING_S (the others keep the real 30 s)."""
    with running_peer(*tls, ping_interval_s=FAST_PING_S) as running:
        yield running


# ------------------------------------------------------------------ helpers


def raw_exchange(peer: MastodonPeer, request: str, *, read_s: float = 2.0,
                 until: Callable[[bytes], bool] | None = None) -> bytes:
    """Send ``request`` over TLS to the ingress as-is; the bytes that come back."""
    context = ssl.create_default_context(cafile=str(peer.ca_file))
    assert peer.ingress is not None
    with socket.create_connection(("127.0.0.1", peer.ingress.port), timeout=read_s) as raw, \
            context.wrap_socket(raw, server_hostname=peer.domain) as tls_socket:
        tls_socket.sendall(request.encode())
        received = b""
        deadline = time.monotonic() + read_s
        while time.monotonic() < deadline:
            try:
                chunk = tls_socket.recv(65536)
            except (TimeoutError, ssl.SSLError):
                break
            if not chunk:
                break
            received += chunk
            if until is not None and until(received):
                break
        return received


def http_get(peer: MastodonPeer, path: str, **headers: str) -> tuple[int, list[tuple[str, str]],
                                                                     bytes]:
    lines = [f"GET {path} HTTP/1.1", f"Host: {peer.domain}", "Connection: close",
             *(f"{k.replace('_', '-')}: {v}" for k, v in headers.items())]
    received = raw_exchange(peer, "\r\n".join(lines) + "\r\n\r\n")
    head, _, body = received.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    parsed = [(name.strip().lower(), value.strip())
              for name, _, value in (line.partition(":") for line in header_lines)]
    return int(status_line.split()[1]), parsed, body


def header_values(headers: list[tuple[str, str]], name: str) -> list[str]:
    return [value for key, value in headers if key == name.lower()]


def run_session(peer: MastodonPeer, body: Callable[[StreamingSession], Awaitable[Any]], *,
                token: str | None = None, path: str | None = None, stream: str | None = None
                ) -> Any:
    target = peer.target()
    if path is not None:
        target = target.with_(streaming_path=path)

    async def scenario() -> Any:
        session = await connect(target, Secret(token or peer.token, "t"), stream=stream)
        assert isinstance(session, StreamingSession), session
        async with session:
            return await body(session)

    return asyncio.run(scenario())


def publish(peer: MastodonPeer, channel: str, event: str, payload: Any) -> None:
    peer.broker.publish(channel, json.dumps({"event": event, "payload": payload}))


async def subscribed(session: StreamingSession, stream: str, **params: str) -> StreamEvent | None:
    """Subscribe, then the sync barrier (an unknown stream answered after the subscription);
    the error frame the subscription produced, if any. Waits for the barrier's own frame so
    that it cannot be mistaken for the answer to the next subscription."""
    since = len(session.events)
    await session.subscribe(stream, **params)
    await session.subscribe("tootcheck:sync")
    await session.wait_for(lambda e: e.error == "Unknown stream type",
                           what="the answer to the sync probe", timeout=WAIT_S, since=since)
    errors = [e for e in session.events[since:] if e.is_error]
    return errors[0] if errors[0].error != "Unknown stream type" else None


# ------------------------------------------------------------------ hashtags


@pytest.mark.parametrize(("tag", "channel"), [
    ("Café", "cafe"), ("\uff23\uff21\uff26\uff25", "cafe"), ("ŁÓDŹ", "lodz"), ("ﬁsh", "fish"),
    ("tag-with.dots!", "tagwithdots"), ("snake_case·x", "snake_case·x"), ("Ĳssel", "ijssel"),
    ("日本語", "日本語"),
])
def test_hashtag_names_are_normalised_like_normalize_hashtag(tag: str, channel: str) -> None:
    assert normalize_hashtag(tag) == channel


def test_hashtag_stream_listens_on_the_normalised_channel(peer: MastodonPeer) -> None:
    status = status_entity(peer.account.entity, "#Café", viewer=False)

    async def body(session: StreamingSession) -> StreamEvent:
        assert await subscribed(session, "hashtag", tag="Café") is None
        publish(peer, "timeline:hashtag:cafe", "update", status)
        return await session.wait_for(lambda e: e.event == "update", what="the update",
                                      timeout=WAIT_S)

    event = run_session(peer, body)
    assert event.stream_names == ("hashtag", "Café")


# ------------------------------------------------------------------ lists


def test_list_stream_errors_and_own_list(peer: MastodonPeer) -> None:
    other = peer.directory.add_account("other")
    foreign = peer.directory.add_list(other)
    own = peer.directory.add_list(peer.account)

    async def body(session: StreamingSession) -> tuple[Any, ...]:
        missing = await subscribed(session, "list")
        since = len(session.events)
        await session.subscribe("list", list=foreign)
        await session.subscribe("tootcheck:sync")
        not_yours = await session.wait_for(lambda e: e.status == 401, what="the list refusal",
                                           timeout=WAIT_S, since=since)
        # the database query makes the refusal overtake nothing: the sync answer comes first
        assert [e.error for e in session.events[since:]] == [
            "Unknown stream type", "Not authorized to stream this list"]
        await session.subscribe("list", list=own)
        channel, deadline = f"timeline:list:{own}", time.monotonic() + WAIT_S
        while peer.broker.subscriber_count(channel) == 0:  # no acknowledgement: poll the broker
            assert time.monotonic() < deadline, f"never subscribed to {channel}"
            await asyncio.sleep(0.01)
        publish(peer, f"timeline:list:{own}", "update",
                status_entity(peer.account.entity, "on my list", viewer=False))
        update = await session.wait_for(lambda e: e.event == "update", what="the list update",
                                        timeout=WAIT_S)
        assert len(session.events) == since + 3, "subscribing to one's own list is silent"
        return missing, not_yours, update

    missing, not_yours, update = run_session(peer, body)
    assert (missing.error, missing.status) == ("Missing list name parameter", 400)
    assert (not_yours.error, not_yours.status) == ("Not authorized to stream this list", 401)
    assert update.stream_names == ("list", own)
    assert "filtered" not in json.loads(update.payload)  # lists are not filtered streams


# ------------------------------------------------------------------ paths and plain HTTP


@pytest.mark.parametrize("path", ["/api/v1/streaming/", "/api/v1/streaming/public",
                                  "/api/v1/streaming/anything/at/all"])
def test_upgrade_is_accepted_on_any_path_under_streaming(peer: MastodonPeer, path: str) -> None:
    async def body(session: StreamingSession) -> StreamEvent | None:
        return await subscribed(session, "public:local")

    assert run_session(peer, body, path=path) is None


@pytest.mark.parametrize("path", ["/api/v1/streaming/health", "/api/v1/streaming/health/"])
def test_health_with_and_without_trailing_slash(peer: MastodonPeer, path: str) -> None:
    status, headers, body = http_get(peer, path)
    assert (status, body) == (200, b"OK")
    assert header_values(headers, "Content-Type") == ["text/plain"]  # once
    assert header_values(headers, "Cache-Control") == ["private, no-store"]


@pytest.mark.parametrize("path", ["/api/v1/streaming", "/api/v1/streaming/",
                                  "/api/v1/streaming/nonsense"])
def test_plain_get_without_a_channel_is_unknown_channel(peer: MastodonPeer, path: str) -> None:
    status, headers, body = http_get(peer, path, Authorization=f"Bearer {peer.token}")
    assert status == 400
    assert json.loads(body) == {"error": "Unknown channel requested"}
    assert header_values(headers, "Content-Type") == ["application/json"]


def test_refused_upgrade_sends_content_type_once(peer: MastodonPeer) -> None:
    key = base64.b64encode(secrets.token_bytes(16)).decode()
    status, headers, body = http_get(
        peer, "/api/v1/streaming", Upgrade="websocket", Connection_="Upgrade",
        Sec_WebSocket_Key=key, Sec_WebSocket_Version="13")
    assert status == 401 and body == b""
    assert header_values(headers, "Content-Type") == ["text/plain"]
    assert header_values(headers, "X-Error-Message") == ["Missing access token"]


# ------------------------------------------------------------------ filtering and order


def test_public_updates_gain_filtered_for_a_signed_in_account(peer: MastodonPeer) -> None:
    status = status_entity(peer.account.entity, "public", viewer=False)

    async def body(session: StreamingSession) -> list[StreamEvent]:
        assert await subscribed(session, "public:local") is None
        assert await subscribed(session, "user") is None
        publish(peer, "timeline:public:local", "update", status)
        publish(peer, f"timeline:{peer.account.id}", "update", status)
        await session.wait_for(lambda e: e.event == "update" and "public:local" in e.stream_names,
                               what="the public update", timeout=WAIT_S)
        await session.wait_for(lambda e: e.event == "update" and "user" in e.stream_names,
                               what="the home update", timeout=WAIT_S)
        return [e for e in session.events if e.event == "update"]

    events = run_session(peer, body)
    by_stream = {e.stream_names[0]: json.loads(e.payload) for e in events}
    assert by_stream["public:local"]["filtered"] == []
    assert "filtered" not in by_stream["user"]


def test_delete_overtakes_update_on_filtered_streams_only(peer: MastodonPeer) -> None:
    status = status_entity(peer.account.entity, "race", viewer=False)
    peer.streaming.db_query_s = 0.3  # the database round trip, made visible

    async def body(session: StreamingSession) -> list[tuple[str, str]]:
        assert await subscribed(session, "public:local") is None
        assert await subscribed(session, "user") is None
        since = len(session.events)
        for channel in ("timeline:public:local", f"timeline:{peer.account.id}"):
            publish(peer, channel, "update", status)
            publish(peer, channel, "delete", status["id"])
        await session.wait_for(lambda e: e.event == "update" and "public:local" in e.stream_names,
                               what="the delayed public update", timeout=WAIT_S, since=since)
        return [(e.stream_names[0], str(e.event)) for e in session.events[since:]]

    try:
        order = run_session(peer, body)
    finally:
        peer.streaming.db_query_s = 0.02
    public = [event for stream, event in order if stream == "public:local"]
    home = [event for stream, event in order if stream == "user"]
    assert public == ["delete", "update"]
    assert home == ["update", "delete"]


# ------------------------------------------------------------------ keepalive


def test_keepalive_ping_default_and_interval(peer: MastodonPeer,
                                            fast_ping_peer: MastodonPeer) -> None:
    assert KEEPALIVE_S == 30.0 and peer.streaming.ping_interval_s == KEEPALIVE_S
    peer = fast_ping_peer
    key = base64.b64encode(secrets.token_bytes(16)).decode()
    request = "\r\n".join([
        "GET /api/v1/streaming HTTP/1.1", f"Host: {peer.domain}", "Upgrade: websocket",
        "Connection: Upgrade", f"Sec-WebSocket-Key: {key}", "Sec-WebSocket-Version: 13",
        f"Authorization: Bearer {peer.token}"]) + "\r\n\r\n"

    def has_frame(data: bytes) -> bool:
        _, _, rest = data.partition(b"\r\n\r\n")
        return len(rest) >= 2

    started = time.monotonic()
    received = raw_exchange(peer, request, read_s=FAST_PING_S * 10, until=has_frame)
    head, _, frames = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101")
    assert frames, "no frame arrived: the server sent no keepalive ping"
    assert frames[0] & 0x0F == 0x9  # opcode ping
    assert time.monotonic() - started >= FAST_PING_S * 0.8


# ------------------------------------------------------------------ the checks still pass


def test_checks_pass_against_the_faithful_peer(peer: MastodonPeer) -> None:
    for result in (check_health(peer.target()), check_auth(peer.target()),
                   check_delivery(peer.target(), event_timeout=10.0)):
        expect_ok(result)
        assert result.ok
