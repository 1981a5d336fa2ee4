"""Sidekiq: the pod's process is alive and serving Mastodon's queues, queues drain,
nothing fails during the run, and a job chain really completes.

Health comes from Sidekiq's own Redis data (see ``tootcheck.clients.sidekiq``
for the keys and their upstream sources); the round trip goes through
Mastodon's REST API: a status mentioning a second local account becomes a
notification only after Sidekiq has run DistributionWorker and then
LocalNotificationWorker (Mastodon ``app/services/post_status_service.rb``,
``app/services/fan_out_on_write_service.rb``).

Every threshold is a parameter; the defaults fit the deployment (Sidekiq 7/8
beats every 10 s and lets a silent process's hash expire after 60 s).
"""

from __future__ import annotations

import secrets
import time
from collections import Counter
from collections.abc import Iterable, Sequence

import redis
import requests
from mastodon import MastodonError

from tootcheck.checks.registry import live_check
from tootcheck.clients.mastodon import api_as
from tootcheck.clients.sidekiq import (
    MASTODON_QUEUES,
    Job,
    QueueState,
    Snapshot,
    read_failures_since,
    read_snapshot,
)
from tootcheck.model import CheckResult, CheckRun
from tootcheck.target import Target
from tootcheck.waiting import Poll, WaitTimeout, wait_until

MAX_BEAT_AGE_S = 60.0
MAX_LATENCY_S = 300.0
REDIS_TIMEOUT_S = 10.0

RedisLike = redis.Redis | str


def connect(conn: RedisLike) -> redis.Redis:
    """A client from a URL (``redis://:password@127.0.0.1:port/0``) or the client itself."""
    if isinstance(conn, str):
        return redis.Redis.from_url(conn, socket_timeout=REDIS_TIMEOUT_S,
                                    socket_connect_timeout=REDIS_TIMEOUT_S)
    return conn


def _label(hostname: str | None) -> str:
    return f"sidekiq://{hostname}" if hostname else "sidekiq://"


def _redis_failed(run: CheckRun, exc: Exception) -> CheckResult:
    run.observe()
    run.fail("redis-unreachable", f"cannot read Sidekiq's data from Redis: {type(exc).__name__}: "
                                  f"{str(exc).splitlines()[0] if str(exc) else 'no detail'}")
    return run.result()


def _describe_oldest(queue: QueueState, now: float) -> str:
    if queue.oldest is None:
        return "empty"
    return (f"{queue.size} job(s), oldest {queue.oldest.job_class} jid {queue.oldest.jid} "
            f"waiting {queue.latency(now):.0f}s")


def _class_summary(jobs: Iterable[Job]) -> str:
    counts = Counter(f"{j.job_class}" + (f" ({j.error_class})" if j.error_class else "")
                     for j in jobs)
    return ", ".join(f"{name} x{n}" for name, n in counts.most_common(5))


# ------------------------------------------------------------------ health


@live_check(
    "sidekiq.health",
    faults={
        "redis-unreachable": "Sidekiq's Redis cannot be read",
        "no-process": "no live Sidekiq process of this deployment's pod is in `processes`",
        "stale-heartbeat": "the pod's Sidekiq heartbeat (`beat`) is older than the bound, "
                           "or its heartbeat hash has expired",
        "process-quiet": "the pod's Sidekiq process is quiet (TSTP, or shutting down): "
                         "it fetches no new jobs",
        "queue-unserved": "a Mastodon queue is not in any live process's queue list",
        "queue-latency": "the oldest job of a queue has waited longer than the bound",
    },
)
def check_health(
    conn: RedisLike,
    hostname: str,
    *,
    max_beat_age_s: float = MAX_BEAT_AGE_S,
    max_latency_s: float = MAX_LATENCY_S,
    expected_queues: Sequence[str] = MASTODON_QUEUES,
    label: str | None = None,
) -> CheckResult:
    """The pod's Sidekiq beats, serves every Mastodon queue, and no queue lags."""
    run = CheckRun("sidekiq.health", label or _label(hostname))
    try:
        snapshot = read_snapshot(connect(conn), extra_queues=expected_queues)
    except (redis.RedisError, OSError) as exc:
        return _redis_failed(run, exc)
    _report(run, snapshot, hostname)
    mine = snapshot.processes_of(hostname)
    live = [p for p in mine if not p.info_missing]
    others = sorted({p.hostname for p in snapshot.processes} - {hostname})
    for proc in mine:
        if proc.info_missing:
            run.fail("stale-heartbeat", f"process {proc.identity} is in `processes` but its "
                                        "heartbeat hash has expired (no beat for over 60s)")
    if not run.expect(bool(live), "no-process",
                      f"no live Sidekiq process of pod {hostname} in `processes` "
                      f"({len(snapshot.processes)} registered"
                      + (f", other hosts: {', '.join(others[:5])}" if others else "") + ")"):
        return run.result()
    for proc in live:
        age = proc.beat_age(snapshot.now)
        run.expect(age is not None and age < max_beat_age_s, "stale-heartbeat",
                   f"process {proc.identity} last beat "
                   + (f"{age:.1f}s ago (bound {max_beat_age_s:g}s)" if age is not None
                      else "never (no `beat` field)"))
        run.expect(not proc.quiet, "process-quiet",
                   f"process {proc.identity} is quiet (TSTP, or shutting down): "
                   "it fetches no new jobs")
    served = snapshot.served_queues(hostname)
    missing = [q for q in expected_queues if q not in served]
    run.expect(not missing, "queue-unserved",
               f"queue(s) {', '.join(missing)} not served by any process of pod {hostname} "
               f"(served: {', '.join(sorted(served)) or 'none'})")
    for name, queue in sorted(snapshot.queues.items()):
        latency = queue.latency(snapshot.now)
        run.expect(latency <= max_latency_s, "queue-latency",
                   f"queue {name}: {_describe_oldest(queue, snapshot.now)} "
                   f"(bound {max_latency_s:g}s)")
    return run.result()


def _report(run: CheckRun, snapshot: Snapshot, hostname: str) -> None:
    mine = snapshot.processes_of(hostname)
    run.evidence["processes"] = [
        {"identity": p.identity, "hostname": p.hostname, "version": p.version,
         "queues": list(p.queues), "busy": p.busy, "quiet": p.quiet,
         "beat_age_s": None if p.beat is None else round(p.beat_age(snapshot.now) or 0.0, 3),
         "busy_layout": p.work_layout, "expired": p.info_missing,
         "running": [w.job.job_class for w in p.work if w.job is not None]}
        for p in snapshot.processes
    ]
    run.evidence["queues"] = {n: {"size": q.size, "latency_s": round(q.latency(snapshot.now), 3)}
                              for n, q in sorted(snapshot.queues.items())}
    run.metrics["processes_of_pod"] = float(len([p for p in mine if not p.info_missing]))
    ages = [a for p in mine if (a := p.beat_age(snapshot.now)) is not None]
    if ages:
        run.metrics["beat_age_s"] = round(max(ages), 3)
    for name, latency in snapshot.latencies().items():
        run.metrics[f"latency_s.{name}"] = latency
    run.metrics["retry_size"] = float(snapshot.retry_size)
    run.metrics["dead_size"] = float(snapshot.dead_size)
    run.metrics["schedule_size"] = float(snapshot.schedule_size)


# ------------------------------------------------------------ queues drain


@live_check(
    "sidekiq.queues_drain",
    faults={
        "redis-unreachable": "Sidekiq's Redis cannot be read",
        "queue-stuck": "a queue holding jobs made no progress within the bound",
        "retry-growing": "jobs failed into the `retry` set during the observation window",
        "dead-growing": "jobs died into the `dead` set during the observation window",
    },
)
def check_queues_drain(
    conn: RedisLike,
    *,
    queues: Sequence[str] = MASTODON_QUEUES,
    drain_timeout_s: float = 60.0,
    window_s: float = 15.0,
    interval_s: float = 0.5,
    ignore_failure_classes: Sequence[str] = (),
    failures_since: float | None = None,
    label: str | None = None,
) -> CheckResult:
    """Every Mastodon queue that holds jobs makes progress (its oldest job is taken)
    within ``drain_timeout_s``, and nothing lands in `retry` or `dead` during the
    observation window (at least ``window_s``). ``failures_since`` (epoch seconds on
    Redis's clock, e.g. taken when the suite started) widens that window back to the
    start of the run. ``ignore_failure_classes`` names job classes whose failures are
    expected (e.g. deliveries to unreachable remote servers on a federating instance)."""
    run = CheckRun("sidekiq.queues_drain", label or _label(None))
    client = connect(conn)
    started = time.monotonic()
    try:
        first = read_snapshot(client, extra_queues=queues)
    except (redis.RedisError, OSError) as exc:
        return _redis_failed(run, exc)
    since = first.now if failures_since is None else min(first.now, failures_since)
    waiting = {name: first.queue(name) for name in queues if first.queue(name).size > 0}
    run.evidence["backlog_at_start"] = {n: _describe_oldest(q, first.now) for n, q in waiting.items()}
    run.metrics["backlog_at_start"] = float(sum(q.size for q in waiting.values()))
    for name in queues:
        run.metrics[f"latency_s.{name}"] = round(first.queue(name).latency(first.now), 3)
    run.observe(len(queues))

    def stuck(snapshot: Snapshot) -> dict[str, QueueState]:
        """Queues whose oldest job at the start is still the oldest one."""
        left = {}
        for name, before in waiting.items():
            after = snapshot.queue(name)
            if after.size and after.oldest is not None and before.oldest is not None \
                    and after.oldest.jid == before.oldest.jid:
                left[name] = after
        return left

    def progressed() -> Poll[None]:
        snapshot = read_snapshot(client, extra_queues=list(waiting))
        left = stuck(snapshot)
        state = ", ".join(f"{n}: {_describe_oldest(q, snapshot.now)}" for n, q in left.items())
        return Poll(not left, None, state or "all progressed")

    try:
        if waiting:
            wait_until(progressed, what="Sidekiq queues to make progress",
                       timeout=drain_timeout_s, interval=interval_s)
        run.metrics["drain_s"] = round(time.monotonic() - started, 3)
        remaining = window_s - (time.monotonic() - started)
        if remaining > 0:
            wait_until(lambda: time.monotonic() - started >= window_s,
                       what="the observation window", timeout=remaining + interval_s + 1.0,
                       interval=min(interval_s, remaining))
    except WaitTimeout:
        try:
            snapshot = read_snapshot(client, extra_queues=list(waiting))
        except (redis.RedisError, OSError) as exc:
            return _redis_failed(run, exc)
        served = snapshot.served_queues()
        for name, queue in sorted(stuck(snapshot).items()):
            nobody = "" if name in served else "; no live process listens to it"
            run.fail("queue-stuck", f"queue {name} made no progress in {drain_timeout_s:g}s: "
                                    f"{_describe_oldest(queue, snapshot.now)}{nobody}")
    except (redis.RedisError, OSError) as exc:
        return _redis_failed(run, exc)
    try:
        failures = read_failures_since(client, since)
        last = read_snapshot(client)
    except (redis.RedisError, OSError) as exc:
        return _redis_failed(run, exc)
    ignored = set(ignore_failure_classes)
    retried = [j for j in failures.retried if j.job_class not in ignored]
    died = [j for j in failures.died if j.job_class not in ignored]
    window = last.now - since
    run.metrics.update({"window_s": round(window, 3), "retried": float(len(retried)),
                        "died": float(len(died)),
                        "retry_size_delta": float(last.retry_size - first.retry_size),
                        "dead_size_delta": float(last.dead_size - first.dead_size),
                        "processed_delta": float(last.processed - first.processed)})
    run.expect(not retried, "retry-growing",
               f"{len(retried)} job(s) failed into `retry` during the {window:.0f}s window: "
               f"{_class_summary(retried)}")
    run.expect(not died, "dead-growing",
               f"{len(died)} job(s) died into `dead` during the {window:.0f}s window: "
               f"{_class_summary(died)}")
    return run.result()


# --------------------------------------------------------------- round trip


@live_check(
    "sidekiq.roundtrip",
    faults={
        "no-account": "the target has no token for the author or the recipient role",
        "api-error": "the REST call to post the mention or read notifications failed",
        "roundtrip-timeout": "the mention's notification did not appear within the bound: "
                             "Sidekiq did not run the job chain",
    },
    mutating=True,
)
def check_roundtrip(
    target: Target,
    *,
    author: str = "test",
    recipient: str = "second",
    timeout_s: float = 60.0,
    interval_s: float = 0.5,
) -> CheckResult:
    """A status mentioning a second local account notifies it within the bound
    (PostStatusService -> DistributionWorker -> LocalNotificationWorker)."""
    run = CheckRun("sidekiq.roundtrip", target.name)
    nonce = secrets.token_hex(6)
    status_id = None
    try:
        target.account(author)
        target.account(recipient)
    except LookupError as exc:
        run.observe()
        run.fail("no-account", str(exc))
        return run.result()
    try:
        writer = api_as(target, author)
        reader = api_as(target, recipient)
        username = reader.account_verify_credentials()["username"]
        started = time.monotonic()
        # unlisted, not direct: Mastodon 4.3+ filters private mentions from strangers
        # (NotificationPolicy for_private_mentions defaults to "filter")
        status = writer.status_post(f"@{username} tootcheck sidekiq round trip {nonce}",
                                    visibility="unlisted")
        status_id = str(status["id"])
        run.evidence["status_id"] = status_id
        run.observe()

        def notified() -> Poll[float]:
            found = reader.notifications(types=["mention"], limit=40)
            hit = any(str((n.get("status") or {}).get("id")) == status_id for n in found)
            return Poll(hit, time.monotonic() - started,
                        f"{len(found)} mention notification(s), none for status {status_id}")

        try:
            elapsed = wait_until(notified, what="the mention notification", timeout=timeout_s,
                                 interval=interval_s)
            run.metrics["roundtrip_s"] = round(elapsed or 0.0, 3)
            run.observe()
        except WaitTimeout as exc:
            run.fail("roundtrip-timeout",
                     f"no mention notification for @{username} within {timeout_s:g}s "
                     f"(status {status_id}); last: {exc.last_state}")
    except (MastodonError, requests.RequestException) as exc:
        run.observe()
        run.fail("api-error", f"REST call failed: {type(exc).__name__}: "
                              f"{str(exc).splitlines()[0] if str(exc) else ''}")
    finally:
        if status_id is not None:
            try:
                api_as(target, author).status_delete(status_id)
                run.evidence["cleanup"] = "status deleted"
            except (MastodonError, requests.RequestException) as exc:
                run.evidence["cleanup"] = f"could not delete status {status_id}: {exc}"
    return run.result()
