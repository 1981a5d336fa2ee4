"""Live checks of Mastodon's streaming API (issue 4 §2).

- ``streaming.health``: ``/api/v1/streaming/health`` answers 200 "OK" through the Ingress.
- ``streaming.auth``: the upgrade is refused with 401 and the documented
  ``X-Error-Message`` without a token and with an invalid one, and accepted with
  the test account's token in ``Authorization`` and in ``Sec-WebSocket-Protocol``
  (which the server must echo, or browsers drop the connection).
- ``streaming.delivery`` (mutating): a public status posted through REST arrives
  as ``update`` on ``user`` and ``public:local`` with its id in a JSON-string
  payload; after unsubscribing ``user``, deleting it yields a ``delete`` with the
  bare id on ``public:local`` and nothing on ``user``.
- ``streaming.latency`` (mutating): p50/p95 of post-to-event latency over a
  burst of N statuses, against a bound.

The mutating checks delete every status they post, also when they fail.

One module of about 600 lines on purpose: the four streaming checks share one
connection helper, the REST probes that trigger events and the event matching.
"""

from __future__ import annotations

import asyncio
import functools
import math
import secrets
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeGuard, TypeVar

from mastodon import MastodonError

from tootcheck.checks.registry import live_check
from tootcheck.clients.mastodon import api
from tootcheck.clients.streaming import (
    HEALTH_PATH,
    UNKNOWN_STREAM_ERROR,
    Rejection,
    StreamClosed,
    StreamEvent,
    StreamingSession,
    StreamingUnavailable,
    connect,
    health,
)
from tootcheck.model import CheckResult, CheckRun
from tootcheck.redaction import Secret, redact
from tootcheck.target import Target
from tootcheck.waiting import TIMEOUTS, WaitTimeout

MISSING_TOKEN_REASON = "Missing access token"
INVALID_TOKEN_REASON = "Invalid access token"
STREAMS = ("user", "public:local")
EVENT_TIMEOUT_S = TIMEOUTS["stream-event"]
SYNC_TIMEOUT_S = 5.0
OPEN_TIMEOUT_S = 10.0
LATENCY_COUNT = 10
LATENCY_P95_BOUND_S = 5.0

T = TypeVar("T")

_ACCOUNT_FAULT = {"no-test-account": "the target has no test account with a token"}
_REST_FAULT = {"rest-failed": "a REST call (verify_credentials, post, delete) failed"}
_CONNECT_FAULT = {"connect-failed": "the upgrade with the test account's token was refused "
                                    "or the endpoint was unreachable"}
_SUBSCRIBE_FAULT = {"subscribe-error": "subscribing to user or public:local got an error frame"}
_CLOSED_FAULT = {"stream-closed": "the server closed the streaming connection during the check"}


# --------------------------------------------------------------- pure helpers


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty sequence.

    >>> percentile([0.1, 0.2, 0.3, 0.4], 50)
    0.2
    >>> percentile([0.1, 0.2, 0.3, 0.4], 95)
    0.4
    """
    if not values:
        raise ValueError("percentile of an empty sequence")
    if not 0 <= q <= 100:
        raise ValueError("q must be within 0..100")
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def is_update_of(event: StreamEvent, status_id: str, stream: str | None = None) -> bool:
    """An ``update`` carrying ``status_id`` (on ``stream`` when given); payload form aside."""
    if event.event != "update" or event.payload_status_id() != status_id:
        return False
    return stream is None or stream in event.stream_names


def is_delete_of(event: StreamEvent, status_id: str, stream: str | None = None) -> bool:
    """A ``delete`` naming ``status_id`` in any form (bare string, number, JSON)."""
    if event.event != "delete":
        return False
    if stream is not None and stream not in event.stream_names:
        return False
    payload = event.payload
    if isinstance(payload, str | int) and str(payload) == status_id:
        return True
    decoded = event.parsed_payload()
    if isinstance(decoded, dict):
        decoded = decoded.get("id")
    return decoded is not None and str(decoded) == status_id


def stream_problem(event: StreamEvent, subscribed: Sequence[str]) -> str | None:
    """Why an event's ``stream`` field is wrong for these subscriptions, if it is."""
    if not isinstance(event.stream, list):
        return f"stream field is {event.stream!r}, not a list of stream names"
    names = event.stream_names
    if len(names) != 1 or names[0] not in subscribed:
        return f"stream {list(names) or event.stream!r} is not one of the subscribed {list(subscribed)}"
    return None


def payload_problem(event: StreamEvent) -> str | None:
    """Why an ``update`` payload is not a JSON string holding a status object, if it is not."""
    if not isinstance(event.payload, str):
        return f"payload is a JSON {type(event.payload).__name__}, not a string"
    decoded = event.parsed_payload()
    if not isinstance(decoded, dict) or "id" not in decoded:
        return f"payload string is not a JSON status object: {event.payload[:80]!r}"
    return None


# ------------------------------------------------------------ shared plumbing


def _token(run: CheckRun, target: Target, role: str) -> Secret | None:
    try:
        token = target.account(role).token
    except LookupError as exc:
        run.fail("no-test-account", str(exc))
        return None
    if token is None:
        run.fail("no-test-account", f"target {target.name}: account {role!r} has no token")
    return token


def _describe(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return redact(f"{type(exc).__name__}: {text}")[:300]


async def _rest(run: CheckRun, label: str, call: Callable[[], T]) -> T | None:
    """Run a blocking Mastodon.py call off the event loop; a failure is ``rest-failed``."""
    try:
        result = await asyncio.to_thread(call)
    except MastodonError as exc:
        run.fail("rest-failed", f"{label} failed: {_describe(exc)}")
        return None
    run.observe()
    return result


async def _open(run: CheckRun, target: Target, token: Secret) -> StreamingSession | None:
    try:
        outcome = await connect(target, token, open_timeout=OPEN_TIMEOUT_S)
    except StreamingUnavailable as exc:
        run.fail("connect-failed", f"cannot open the streaming WebSocket: {exc}")
        return None
    if isinstance(outcome, Rejection):
        run.fail("connect-failed",
                 f"the upgrade with the test account's token was refused: {outcome.describe()}")
        return None
    run.observe()
    return outcome


async def _subscribe_all(run: CheckRun, session: StreamingSession) -> bool:
    """Subscribe to STREAMS and sync; ``subscribe-error`` when the server refused one.

    With the unknown-stream probe of ``sync``, any error frame other than its
    "Unknown stream type" answers a real subscription: the probe's own scope
    check can only fail when the ``user`` subscription's failed too.
    """
    since = len(session.events)
    for stream in STREAMS:
        await session.subscribe(stream)
    answer = await session.sync(SYNC_TIMEOUT_S, since=since)
    run.evidence["subscribe_synced"] = answer is not None
    errors = [e for e in session.events[since:] if e.is_error and e.error != UNKNOWN_STREAM_ERROR]
    if errors:
        run.evidence["subscribe_errors"] = [e.evidence() for e in errors]
        run.fail("subscribe-error", f"subscribing to {' and '.join(STREAMS)} got "
                                    + "; ".join(e.describe() for e in errors))
        return False
    run.observe()
    return True


def _stream_closed(run: CheckRun, session: StreamingSession, detail: str = "") -> bool:
    """Report ``stream-closed`` once when the server has dropped the connection."""
    if session.closed is None and not detail:
        return False
    if "stream-closed" not in {f.code for f in run.faults}:
        run.fail("stream-closed", f"the server closed the streaming connection after "
                                  f"{len(session.events)} frame(s): {detail or session.closed}")
    return True


def _probe_text() -> str:
    return (f"tootcheck streaming probe {secrets.token_hex(4)}: an automated check "
            "posted this and deletes it within seconds")


async def _delete_quietly(run: CheckRun, client: Any, status_ids: Sequence[str]) -> None:
    """Clean-up deletes; failures are ``rest-failed`` (a probe left on the instance)."""
    for status_id in status_ids:
        await _rest(run, f"clean-up DELETE /api/v1/statuses/{status_id}",
                    functools.partial(client.status_delete, status_id))


# --------------------------------------------------------------------- health


@live_check(
    "streaming.health",
    faults={
        "health-unreachable": "GET /api/v1/streaming/health got no HTTP answer",
        "health-not-ok": "/api/v1/streaming/health did not answer 200 'OK'",
    },
)
def check_health(target: Target, *, timeout: float = 10.0) -> CheckResult:
    """The streaming server's health endpoint answers 200 OK through the Ingress."""
    run = CheckRun("streaming.health", target.name)
    try:
        answer = health(target, timeout=timeout)
    except StreamingUnavailable as exc:
        run.fail("health-unreachable", f"GET {HEALTH_PATH} failed: {exc}")
        return run.result()
    run.evidence["health"] = {"status": answer.status, "body": answer.body[:200],
                              "content_type": answer.content_type}
    run.expect(answer.status == 200 and answer.body.strip() == "OK", "health-not-ok",
               f"GET {HEALTH_PATH} answered {answer.status} {answer.body.strip()[:60]!r}, "
               "expected 200 'OK'")
    return run.result()


# ----------------------------------------------------------------------- auth


def _is_gateway_error(outcome: StreamingSession | Rejection) -> TypeGuard[Rejection]:
    """A 502/503/504: the ingress answered for a streaming server that is not there."""
    return isinstance(outcome, Rejection) and outcome.status in (502, 503, 504)


@live_check(
    "streaming.auth",
    faults={
        "streaming-unreachable": "an upgrade got no HTTP answer, or a gateway error (502/503/504)",
        "no-token-accepted": "an upgrade without a token was accepted",
        "bad-token-accepted": "an upgrade with an invalid token was accepted",
        "auth-status-wrong": "a refused upgrade was not answered 401",
        "error-header-missing": "a 401 carried no X-Error-Message header",
        "error-header-wrong": "X-Error-Message was not 'Missing access token'/'Invalid access token'",
        "valid-token-rejected": "the test account's token in Authorization was refused",
        "subprotocol-token-rejected": "the test account's token in Sec-WebSocket-Protocol was refused",
        "subprotocol-not-echoed": "the server did not echo the token subprotocol (browsers then fail)",
        **_ACCOUNT_FAULT,
    },
)
def check_auth(target: Target, *, role: str = "test",
               open_timeout: float = OPEN_TIMEOUT_S) -> CheckResult:
    """The streaming upgrade needs a valid token; refusals are 401 with the documented reason."""
    run = CheckRun("streaming.auth", target.name)
    token = _token(run, target, role)
    if token is not None:
        asyncio.run(_auth(run, target, token, open_timeout))
    return run.result()


async def _auth(run: CheckRun, target: Target, token: Secret, open_timeout: float) -> None:
    invalid = Secret("tootcheck-invalid-" + secrets.token_urlsafe(24), "invalid_token")
    refusals = (
        ("no token", None, MISSING_TOKEN_REASON, "no-token-accepted"),
        ("an invalid token", invalid, INVALID_TOKEN_REASON, "bad-token-accepted"),
    )
    for label, probe, reason, accepted_code in refusals:
        try:
            outcome = await connect(target, probe, open_timeout=open_timeout)
        except StreamingUnavailable as exc:
            run.fail("streaming-unreachable", f"the upgrade with {label} failed: {exc}")
            return
        run.observe()
        if _is_gateway_error(outcome):
            run.fail("streaming-unreachable", f"the upgrade with {label} got "
                     f"{outcome.describe()} from the ingress: no streaming backend behind it")
            return
        if isinstance(outcome, StreamingSession):
            await outcome.close()
            run.fail(accepted_code, f"the upgrade with {label} was accepted (101); "
                                    f"expected 401 with X-Error-Message {reason!r}")
            continue
        run.evidence[f"refusal ({label})"] = {"status": outcome.status,
                                              "x_error_message": outcome.error_message}
        if outcome.status != 401:
            run.fail("auth-status-wrong",
                     f"the upgrade with {label} was refused with {outcome.describe()}; expected 401")
        if outcome.error_message is None:
            run.fail("error-header-missing",
                     f"the refusal of {label} (HTTP {outcome.status}) has no X-Error-Message; "
                     f"expected {reason!r}")
        elif outcome.error_message != reason:
            run.fail("error-header-wrong",
                     f"the refusal of {label} says X-Error-Message {outcome.error_message!r}; "
                     f"expected {reason!r}")

    for via, where, code in (("header", "the Authorization header", "valid-token-rejected"),
                             ("subprotocol", "Sec-WebSocket-Protocol",
                              "subprotocol-token-rejected")):
        try:
            outcome = await connect(target, token, via=via, open_timeout=open_timeout)  # type: ignore[arg-type]
        except StreamingUnavailable as exc:
            run.fail("streaming-unreachable", f"the upgrade with the token in {where} failed: {exc}")
            return
        run.observe()
        if _is_gateway_error(outcome):
            run.fail("streaming-unreachable", f"the upgrade with the token in {where} got "
                     f"{outcome.describe()} from the ingress: no streaming backend behind it")
            return
        if isinstance(outcome, Rejection):
            run.fail(code, f"the test account's token in {where} was refused: {outcome.describe()}")
            continue
        if via == "subprotocol":
            echoed = outcome.subprotocol is not None and outcome.subprotocol == token.reveal()
            run.evidence["subprotocol_echoed"] = echoed
            run.expect(echoed, "subprotocol-not-echoed",
                       "the server accepted the token in Sec-WebSocket-Protocol but did not "
                       "echo it back; browsers (the web UI) then close the connection")
        await outcome.close()


# ------------------------------------------------------------------- delivery


@live_check(
    "streaming.delivery",
    faults={
        **_ACCOUNT_FAULT,
        **_REST_FAULT,
        **_CONNECT_FAULT,
        **_SUBSCRIBE_FAULT,
        **_CLOSED_FAULT,
        "update-missing": "the posted status's update never arrived on a subscribed stream",
        "wrong-stream": "an event for the status was labelled with a stream not subscribed",
        "payload-not-string": "an update payload was not a JSON string",
        "payload-unparseable": "an update payload string was not a JSON status object",
        "delete-missing": "deleting the status produced no delete event",
        "delete-payload-wrong": "a delete payload was not the bare status id string",
        "unsubscribe-ignored": "events still arrived on a stream after unsubscribing",
    },
    mutating=True,
)
def check_delivery(target: Target, *, role: str = "test",
                   event_timeout: float = EVENT_TIMEOUT_S) -> CheckResult:
    """A posted status streams as update on user and public:local; deleting it streams delete."""
    run = CheckRun("streaming.delivery", target.name)
    token = _token(run, target, role)
    if token is not None:
        asyncio.run(_delivery(run, target, token, event_timeout))
    return run.result()


async def _delivery(run: CheckRun, target: Target, token: Secret, event_timeout: float) -> None:
    client = api(target, token)
    # verify_credentials also refreshes the user's sign-in time, without which
    # Mastodon does not push to the user's home stream (signed_in_recently?).
    me = await _rest(run, "GET /api/v1/accounts/verify_credentials",
                     client.account_verify_credentials)
    if me is None:
        return
    run.evidence["account"] = {"id": str(me["id"]), "acct": str(me["acct"])}
    session = await _open(run, target, token)
    if session is None:
        return
    async with session:
        try:
            await _deliver_and_delete(run, client, session, event_timeout)
        except StreamClosed as exc:
            _stream_closed(run, session, str(exc))


async def _deliver_and_delete(run: CheckRun, client: Any, session: StreamingSession,
                              event_timeout: float) -> None:
    if not await _subscribe_all(run, session):
        return  # nothing is posted when the events could not arrive
    mark = len(session.events)
    posted_at = time.monotonic()
    status = await _rest(run, "POST /api/v1/statuses", lambda: client.status_post(
        _probe_text(), visibility="public", language="en"))
    if status is None:
        return
    status_id = str(status["id"])
    run.evidence["status_id"] = status_id
    deleted = False
    try:
        await _expect_updates(run, session, status_id, mark, posted_at, event_timeout)
        if not _stream_closed(run, session):
            deleted = await _expect_delete(run, client, session, status_id, event_timeout)
            _stream_closed(run, session)
    finally:
        if not deleted:
            await _delete_quietly(run, client, [status_id])
        run.evidence["frames"] = [e.evidence() for e in session.events[mark:]
                                  if is_update_of(e, status_id) or is_delete_of(e, status_id)]


async def _expect_updates(run: CheckRun, session: StreamingSession, status_id: str, mark: int,
                          posted_at: float, event_timeout: float) -> None:
    arrived: dict[str, StreamEvent] = {}

    def note(event: StreamEvent) -> bool:
        for stream in STREAMS:
            if stream not in arrived and is_update_of(event, status_id, stream):
                arrived[stream] = event
        return len(arrived) == len(STREAMS)

    try:
        await session.wait_for(note, what=f"the update of status {status_id} on "
                                          f"{' and '.join(STREAMS)}",
                               timeout=event_timeout, since=mark)
    except WaitTimeout as exc:
        for stream in STREAMS:
            if stream not in arrived:
                run.fail("update-missing",
                         f"the update of status {status_id} never arrived on {stream} within "
                         f"{event_timeout:g}s; {exc.last_state}")
    for stream, event in arrived.items():
        run.observe()
        run.metrics[f"update_{stream.replace(':', '_')}_s"] = round(event.received_at - posted_at, 4)
    for event in session.events[mark:]:
        if event.event != "update":
            continue
        if is_update_of(event, status_id):
            problem = stream_problem(event, STREAMS)
            if problem:
                run.fail("wrong-stream", f"the update of status {status_id}: {problem}")
            if not isinstance(event.payload, str):
                run.fail("payload-not-string",
                         f"the update of status {status_id} on {event.stream}: "
                         f"payload is a JSON {type(event.payload).__name__}, not a string")
        elif isinstance(event.payload, str) and payload_problem(event):
            run.fail("payload-unparseable", f"an update on {event.stream}: {payload_problem(event)}")


async def _expect_delete(run: CheckRun, client: Any, session: StreamingSession, status_id: str,
                         event_timeout: float) -> bool:
    """Unsubscribe ``user``, delete the status, expect ``delete`` on public:local only."""
    await session.unsubscribe("user")
    run.evidence["unsubscribe_synced"] = await session.sync(SYNC_TIMEOUT_S) is not None
    mark = len(session.events)
    if await _rest(run, f"DELETE /api/v1/statuses/{status_id}",
                   lambda: client.status_delete(status_id)) is None:
        return True  # the delete failed and is reported; a clean-up retry would fail alike
    try:
        event = await session.wait_for(
            lambda e: is_delete_of(e, status_id, "public:local"),
            what=f"the delete of status {status_id} on public:local", timeout=event_timeout,
            since=mark)
    except WaitTimeout as exc:
        run.fail("delete-missing", str(exc))
        return True
    run.observe()
    if not (isinstance(event.payload, str) and event.payload == status_id):
        run.fail("delete-payload-wrong",
                 f"the delete of status {status_id} carries payload {event.payload!r} "
                 f"({type(event.payload).__name__}); expected the bare id string {status_id!r}")
    # Mastodon's RemoveStatusService publishes to the author's home channel before
    # the public ones, so a user-stream event would have arrived by now.
    upto = session.events.index(event, mark) + 1
    leaked = [e for e in session.events[mark:upto]
              if "user" in e.stream_names and (is_delete_of(e, status_id)
                                               or is_update_of(e, status_id))]
    run.expect(not leaked, "unsubscribe-ignored",
               f"after unsubscribing from user, {leaked[0].describe() if leaked else ''} "
               "still arrived on it")
    return True


# -------------------------------------------------------------------- latency


@live_check(
    "streaming.latency",
    faults={
        **_ACCOUNT_FAULT,
        **_REST_FAULT,
        **_CONNECT_FAULT,
        **_SUBSCRIBE_FAULT,
        **_CLOSED_FAULT,
        "events-missing": "some updates of the burst never arrived",
        "latency-exceeded": "p95 post-to-event latency exceeded the bound",
    },
    mutating=True,
)
def check_latency(target: Target, *, role: str = "test", count: int = LATENCY_COUNT,
                  p95_bound_s: float = LATENCY_P95_BOUND_S,
                  event_timeout: float = EVENT_TIMEOUT_S) -> CheckResult:
    """p50/p95 latency from POST to update on user and public:local over a burst of N."""
    run = CheckRun("streaming.latency", target.name)
    if count < 1:
        raise ValueError("count must be at least 1")
    token = _token(run, target, role)
    if token is not None:
        asyncio.run(_latency(run, target, token, count, p95_bound_s, event_timeout))
    return run.result()


async def _latency(run: CheckRun, target: Target, token: Secret, count: int, bound: float,
                   event_timeout: float) -> None:
    client = api(target, token)
    if await _rest(run, "GET /api/v1/accounts/verify_credentials",
                   client.account_verify_credentials) is None:
        return
    session = await _open(run, target, token)
    if session is None:
        return
    started: dict[str, float] = {}
    post_times: list[float] = []
    arrivals: dict[tuple[str, str], float] = {}
    async with session:
        try:
            if not await _subscribe_all(run, session):
                return  # nothing is posted when the events could not arrive
            mark = len(session.events)
            for _ in range(count):
                t0 = time.monotonic()
                status = await _rest(run, "POST /api/v1/statuses", lambda: client.status_post(
                    _probe_text(), visibility="public", language="en"))
                if status is None:
                    return
                started[str(status["id"])] = t0
                post_times.append(time.monotonic() - t0)
            arrivals = await _collect(run, session, started, mark, event_timeout)
            _stream_closed(run, session)
        except StreamClosed as exc:
            _stream_closed(run, session, str(exc))
        finally:
            await _delete_quietly(run, client, list(started))
    _report_latency(run, started, post_times, arrivals, bound)


async def _collect(run: CheckRun, session: StreamingSession, started: dict[str, float],
                   mark: int, event_timeout: float) -> dict[tuple[str, str], float]:
    wanted = {(sid, stream) for sid in started for stream in STREAMS}
    arrivals: dict[tuple[str, str], float] = {}

    def note(event: StreamEvent) -> bool:
        if event.event == "update":
            sid = event.payload_status_id()
            for stream in event.stream_names:
                if (sid, stream) in wanted:
                    arrivals.setdefault((sid, stream), event.received_at)  # type: ignore[arg-type]
        return len(arrivals) == len(wanted)

    try:
        await session.wait_for(note, what=f"{len(wanted)} update events "
                                          f"({len(started)} statuses on {' and '.join(STREAMS)})",
                               timeout=event_timeout, since=mark)
    except WaitTimeout as exc:
        missing = sorted(wanted - arrivals.keys())
        sid, stream = missing[0]
        run.fail("events-missing",
                 f"{len(missing)} of {len(wanted)} update events never arrived within "
                 f"{event_timeout:g}s (first: status {sid} on {stream}); {exc.last_state}")
    return arrivals


def _report_latency(run: CheckRun, started: dict[str, float], post_times: list[float],
                    arrivals: dict[tuple[str, str], float], bound: float) -> None:
    latencies = {(sid, stream): at - started[sid] for (sid, stream), at in arrivals.items()}
    run.metrics["statuses"] = len(started)
    run.metrics["events_expected"] = len(started) * len(STREAMS)
    run.metrics["events_received"] = len(latencies)
    if post_times:
        run.metrics["post_p50_s"] = round(percentile(post_times, 50), 4)
    if not latencies:
        return
    run.observe(len(latencies))
    values = list(latencies.values())
    p50, p95 = percentile(values, 50), percentile(values, 95)
    run.metrics["latency_p50_s"] = round(p50, 4)
    run.metrics["latency_p95_s"] = round(p95, 4)
    per_stream = []
    for stream in STREAMS:
        own = [v for (_, s), v in latencies.items() if s == stream]
        if own:
            key = stream.replace(":", "_")
            run.metrics[f"{key}_p50_s"] = round(percentile(own, 50), 4)
            run.metrics[f"{key}_p95_s"] = round(percentile(own, 95), 4)
            per_stream.append(f"{stream} {percentile(own, 95):.3f}s")
    if p95 > bound:
        run.fail("latency-exceeded",
                 f"p95 post-to-event latency {p95:.3f}s exceeds {bound:g}s over "
                 f"{len(values)} events (p50 {p50:.3f}s; p95 by stream: {', '.join(per_stream)})")
