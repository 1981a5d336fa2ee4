"""The streaming checks against a local Mastodon: healthy, then every declared fault.

The peer (tests/peers/streaming.py) serves REST and streaming behind one TLS
ingress for kirchner.social; the Target pins the name to it, so the checks run
the production client path (wss:// and https:// on one host, the test CA only).
"""

from __future__ import annotations

import asyncio
import json
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme

from tests.peers.databases import free_port
from tests.peers.entities import status_entity
from tests.peers.streaming import MastodonPeer, running_peer
from tootcheck.checks.streaming import (
    check_auth,
    check_delivery,
    check_health,
    check_latency,
    is_delete_of,
    payload_problem,
    percentile,
    stream_problem,
)
from tootcheck.clients.streaming import (
    Rejection,
    StreamEvent,
    StreamingSession,
    connect,
    parse_frame,
)
from tootcheck.model import CheckResult
from tootcheck.redaction import Secret
from tootcheck.target import Target
from tootcheck.testing import expect_fault, expect_ok
from tootcheck.waiting import WaitTimeout

pytestmark = pytest.mark.timeout(60)

# for events that must never arrive; the ones that do, in the same run, come in 10-60 ms
SHORT_WAIT_S = 0.5
HEALTHY_WAIT_S = 10.0  # for events that must arrive (returns as soon as they do)


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> tuple[ssl.SSLContext, Path]:
    ca = trustme.CA()
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("kirchner.social").configure_cert(server)
    ca_file = tmp_path_factory.mktemp("streaming-ca") / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    return server, ca_file


@pytest.fixture
def peer(tls: tuple[ssl.SSLContext, Path]) -> Iterator[MastodonPeer]:
    with running_peer(*tls) as running:
        yield running


def closed_port_target(peer: MastodonPeer) -> Target:
    return peer.target(https_port=free_port())


# ------------------------------------------------------------------- health


def test_health_ok(peer: MastodonPeer) -> None:
    result = expect_ok(check_health(peer.target()))
    assert result.evidence["health"]["status"] == 200


@pytest.mark.parametrize(("status", "body"), [(503, "Service Unavailable"), (200, "DOWN")])
def test_health_not_ok(peer: MastodonPeer, status: int, body: str) -> None:
    peer.streaming.faults.health_status = status
    peer.streaming.faults.health_body = body
    expect_fault(check_health(peer.target()), "health-not-ok", mentions=f"{status}")


def test_health_unreachable(peer: MastodonPeer) -> None:
    expect_fault(check_health(closed_port_target(peer), timeout=2), "health-unreachable",
                 mentions="/api/v1/streaming/health")


# --------------------------------------------------------------------- auth


def test_auth_ok(peer: MastodonPeer) -> None:
    result = expect_ok(check_auth(peer.target()))
    assert result.evidence["refusal (no token)"]["x_error_message"] == "Missing access token"
    assert result.evidence["refusal (an invalid token)"]["x_error_message"] == "Invalid access token"
    assert result.evidence["subprotocol_echoed"] is True
    assert peer.token not in repr(result)  # the token never reaches the result


@pytest.mark.parametrize(("fault", "value", "code", "mentions"), [
    ("accept_no_token", True, "no-token-accepted", "no token"),
    ("accept_any_token", True, "bad-token-accepted", "invalid token"),
    ("reject_status", 403, "auth-status-wrong", "403"),
    ("error_header", "missing", "error-header-missing", "Missing access token"),
    ("error_header", "generic", "error-header-wrong", "Unauthorized"),
    ("reject_valid_tokens", True, "valid-token-rejected", "Invalid access token"),
    ("ignore_subprotocol_token", True, "subprotocol-token-rejected", "Sec-WebSocket-Protocol"),
    ("echo_subprotocol", False, "subprotocol-not-echoed", "echo"),
])
def test_auth_faults(peer: MastodonPeer, fault: str, value: object, code: str,
                     mentions: str) -> None:
    setattr(peer.streaming.faults, fault, value)
    expect_fault(check_auth(peer.target()), code, mentions=mentions)


def test_auth_unreachable(peer: MastodonPeer) -> None:
    expect_fault(check_auth(closed_port_target(peer), open_timeout=2), "streaming-unreachable",
                 mentions="kirchner.social")


def test_auth_backend_down(peer: MastodonPeer) -> None:
    peer.stop_streaming()
    result = expect_fault(check_auth(peer.target()), "streaming-unreachable",
                          mentions="502 Bad Gateway")
    assert result.fault_codes == ("streaming-unreachable",), result.summary


def test_auth_without_account(peer: MastodonPeer) -> None:
    expect_fault(check_auth(peer.target(token=None)), "no-test-account", mentions="test")


# ----------------------------------------------------------------- delivery


def delivery(peer: MastodonPeer, token: str | None = "default", *,
             event_timeout: float = SHORT_WAIT_S) -> CheckResult:
    result = check_delivery(peer.target(token), event_timeout=event_timeout)
    assert not peer.rest.statuses, f"the check left statuses behind: {list(peer.rest.statuses)}"
    return result


def test_delivery_ok(peer: MastodonPeer) -> None:
    result = expect_ok(delivery(peer, event_timeout=HEALTHY_WAIT_S))
    assert peer.token not in repr(result)
    status_id = result.evidence["status_id"]
    assert peer.rest.deleted == [status_id]
    frames = [parse_frame(f["raw"], 0) for f in result.evidence["frames"]]
    assert [(f.event, f.stream) for f in frames] == [
        ("update", ["user"]), ("update", ["public:local"]), ("delete", ["public:local"])]
    assert set(result.metrics) == {"update_user_s", "update_public_local_s"}


@pytest.mark.parametrize(("fault", "value", "code", "mentions"), [
    ("drop_events", {"update"}, "update-missing", "never arrived on user"),
    ("rename_streams", {"public:local": "public"}, "wrong-stream", "['public']"),
    ("update_payload", "object", "payload-not-string", "not a string"),
    ("update_payload", "garbage", "payload-unparseable", "<html>"),
    ("drop_events", {"delete"}, "delete-missing", "waiting for the delete of status"),
    ("delete_payload", "json-object", "delete-payload-wrong", "bare id"),
    ("delete_payload", "number", "delete-payload-wrong", "int"),
    ("ignore_unsubscribe", True, "unsubscribe-ignored", "delete on ['user']"),
])
def test_delivery_streaming_faults(peer: MastodonPeer, fault: str, value: object, code: str,
                                   mentions: str) -> None:
    setattr(peer.streaming.faults, fault, value)
    expect_fault(delivery(peer), code, mentions=mentions)


def test_delivery_stream_closed(peer: MastodonPeer) -> None:
    peer.streaming.faults.crash_on_update = True
    result = expect_fault(delivery(peer), "stream-closed", mentions="no close frame")
    assert result.fault_codes.count("stream-closed") == 1, result.summary


def test_delivery_missing_update_names_last_frame(peer: MastodonPeer) -> None:
    peer.streaming.faults.rename_streams = {"public:local": "public"}
    result = expect_fault(delivery(peer), "update-missing", mentions="never arrived on public:local")
    assert "last frame: update on ['public']" in result.summary
    assert "never arrived on user" not in result.summary


@pytest.mark.parametrize(("fault", "mentions"), [
    ("fail_verify", "verify_credentials"),
    ("fail_post", "POST /api/v1/statuses"),
    ("fail_delete", "DELETE /api/v1/statuses/"),
])
def test_delivery_rest_failed(peer: MastodonPeer, fault: str, mentions: str) -> None:
    setattr(peer.rest.faults, fault, 500)
    result = check_delivery(peer.target(), event_timeout=SHORT_WAIT_S)
    expect_fault(result, "rest-failed", mentions=mentions)


def test_delivery_connect_failed(peer: MastodonPeer) -> None:
    peer.streaming.faults.reject_valid_tokens = True
    expect_fault(delivery(peer), "connect-failed", mentions="Invalid access token")
    assert not peer.rest.deleted, "nothing may be posted when the stream cannot be opened"


def test_delivery_subscribe_error(peer: MastodonPeer) -> None:
    write_only = peer.directory.add_token(peer.account, "write read:accounts")
    expect_fault(delivery(peer, write_only), "subscribe-error", mentions="required scopes")
    assert not peer.rest.deleted, "nothing may be posted when a subscription failed"


def test_delivery_without_account(peer: MastodonPeer) -> None:
    expect_fault(delivery(peer, None), "no-test-account")


# ------------------------------------------------------------------ latency


def latency(peer: MastodonPeer, token: str | None = "default", *, count: int = 3,
            p95_bound_s: float = 5.0, event_timeout: float = SHORT_WAIT_S) -> CheckResult:
    result = check_latency(peer.target(token), count=count, p95_bound_s=p95_bound_s,
                           event_timeout=event_timeout)
    assert not peer.rest.statuses, f"the check left statuses behind: {list(peer.rest.statuses)}"
    return result


def test_latency_ok(peer: MastodonPeer) -> None:
    result = expect_ok(latency(peer, count=5, event_timeout=HEALTHY_WAIT_S))
    assert result.metrics["events_received"] == result.metrics["events_expected"] == 10
    assert 0 < result.metrics["latency_p50_s"] <= result.metrics["latency_p95_s"] < 5
    assert len(peer.rest.deleted) == 5


def test_latency_exceeded(peer: MastodonPeer) -> None:
    peer.streaming.faults.update_delay_s = 0.3  # late, but arriving: a healthy wait for it
    result = expect_fault(latency(peer, count=3, p95_bound_s=0.2, event_timeout=HEALTHY_WAIT_S),
                          "latency-exceeded", mentions="exceeds 0.2s")
    assert result.metrics["latency_p95_s"] >= 0.3


def test_latency_events_missing(peer: MastodonPeer) -> None:
    peer.streaming.faults.drop_every_nth_update = 3
    result = expect_fault(latency(peer, count=3), "events-missing", mentions="2 of 6")
    assert result.metrics["events_received"] == 4


def test_latency_rest_failed(peer: MastodonPeer) -> None:
    peer.rest.faults.fail_post = 422
    expect_fault(latency(peer, count=2), "rest-failed", mentions="422")


def test_latency_connect_failed(peer: MastodonPeer) -> None:
    peer.streaming.faults.reject_valid_tokens = True
    expect_fault(latency(peer, count=2), "connect-failed", mentions="401")


def test_latency_stream_closed(peer: MastodonPeer) -> None:
    peer.streaming.faults.crash_on_update = True
    expect_fault(latency(peer), "stream-closed", mentions="closed the streaming connection")
    assert len(peer.rest.deleted) == 3


def test_latency_subscribe_error(peer: MastodonPeer) -> None:
    write_only = peer.directory.add_token(peer.account, "write read:accounts")
    expect_fault(latency(peer, write_only), "subscribe-error", mentions="required scopes")
    assert not peer.rest.deleted, "nothing may be posted when a subscription failed"


def test_latency_without_account(peer: MastodonPeer) -> None:
    expect_fault(latency(peer, None), "no-test-account")


# ------------------------------------------------------------------- client


def test_client_query_token_stream_param_and_iterator(peer: MastodonPeer) -> None:
    """The client's other paths: ?access_token=, ?stream=, sync and iter_events.

    On a filtered stream (public:*) a signed-in account's update waits for the streaming
    server's database queries and a delete does not, so the two may arrive in either order
    (streaming/index.js#streamFrom); the test waits for both, in any order."""
    status = status_entity(peer.account.entity, "hello", viewer=False)

    async def scenario() -> list[StreamEvent]:
        session = await connect(peer.target(), Secret(peer.token, "t"), via="query",
                                stream="public:local")
        assert isinstance(session, StreamingSession), session
        async with session:
            answer = await session.sync(5)
            assert answer is not None and answer.error == "Unknown stream type"
            since = len(session.events)
            peer.broker.publish("timeline:public:local",
                                json.dumps({"event": "update", "payload": status}))
            peer.broker.publish("timeline:public:local",
                                json.dumps({"event": "delete", "payload": status["id"]}))
            seen: list[StreamEvent] = []
            async for event in session.iter_events(idle_timeout=5, since=since):
                seen.append(event)
                if {e.event for e in seen} >= {"update", "delete"}:
                    break
            with pytest.raises(WaitTimeout, match=f"last frame: {seen[-1].event} on"):
                await session.wait_for(lambda e: False, what="nothing", timeout=0.1)
            return seen

    seen = asyncio.run(scenario())
    assert sorted(e.event for e in seen) == ["delete", "update"]
    (update,) = [e for e in seen if e.event == "update"]
    (delete,) = [e for e in seen if e.event == "delete"]
    assert update.stream_names == ("public:local",) and update.payload_status_id() == status["id"]
    assert json.loads(update.payload)["media_attachments"] == []
    assert delete.payload == status["id"]


# --------------------------------------------------------------- pure logic


def test_percentile_nearest_rank() -> None:
    values = [0.5, 0.1, 0.4, 0.2, 0.3]
    assert percentile(values, 50) == 0.3
    assert percentile(values, 95) == 0.5
    assert percentile([0.7], 95) == 0.7
    assert percentile(list(range(1, 101)), 95) == 95
    with pytest.raises(ValueError):
        percentile([], 50)


def test_parse_frame_never_raises() -> None:
    error = parse_frame('{"error":"Unknown stream type","status":400}', 1.0)
    assert error.is_error and error.status == 400
    assert parse_frame("not json", 1.0).problem.startswith("not JSON")
    assert parse_frame("[1, 2]", 1.0).problem == "not a JSON object but list"
    assert parse_frame(b"\x00", 1.0).problem == "binary frame"
    update = parse_frame('{"stream":["user"],"event":"update","payload":"{\\"id\\":\\"7\\"}"}', 2.0)
    assert update.payload_status_id() == "7" and update.stream_names == ("user",)
    assert payload_problem(update) is None and stream_problem(update, ["user"]) is None


def test_delete_matching_and_stream_shape() -> None:
    bare = parse_frame('{"stream":["public:local"],"event":"delete","payload":"9"}', 0)
    wrapped = parse_frame('{"stream":"public:local","event":"delete","payload":"{\\"id\\":\\"9\\"}"}', 0)
    assert is_delete_of(bare, "9", "public:local") and not is_delete_of(bare, "8")
    assert is_delete_of(wrapped, "9") and not is_delete_of(wrapped, "9", "public:local")
    assert "not a list" in (stream_problem(wrapped, ["public:local"]) or "")


def test_rejection_reads_error_header_case_insensitively() -> None:
    rejection = Rejection(401, "Unauthorized", {"x-error-message": "Invalid access token"})
    assert rejection.error_message == "Invalid access token"
    assert "Invalid access token" in rejection.describe()
    assert Rejection(401, "Unauthorized", {}).error_message is None
