"""Read-only views of Sidekiq's data in Redis (Sidekiq 6.x, 7.x and 8.x layouts).

Sidekiq keeps its whole runtime state in Redis; these are the keys the checks
read (sidekiq/sidekiq ``lib/sidekiq/launcher.rb`` and ``lib/sidekiq/api.rb``,
tags v6.4.1, v7.3.9 and 8.1.7):

- set ``processes``: identities ``<hostname>:<pid>:<nonce>``; in Kubernetes the
  hostname is the pod name (``Socket.gethostname``, overridden by ``DYNO``);
- hash ``<identity>``: ``info`` (JSON: hostname, pid, queues, concurrency, ...),
  ``busy``, ``beat`` (epoch seconds as a float), ``quiet``, ``rss``, ``rtt_us``;
  it expires 60 s after the last heartbeat (every 5 s in 6.x, 10 s in 7+);
- hash of running jobs: ``<identity>:workers`` in 6.x, ``<identity>:work`` in
  7.0 and later; values are JSON ``{queue, payload, run_at}``;
- set ``queues`` and lists ``queue:<name>`` (LPUSH in, BRPOP out: the oldest job
  is the last element);
- sorted sets ``schedule``, ``retry`` (score: next retry time) and ``dead``
  (score: time of death), all in epoch seconds;
- counters ``stat:processed`` and ``stat:failed``.

Job timestamps (``enqueued_at``, ``created_at``, ``failed_at``, ``retried_at``)
are epoch-second floats up to 7.x and epoch milliseconds as integers since 8.0
(sidekiq ``Changes.md`` 8.0.0; ``Sidekiq::ApiUtils#calculate_latency``).

Parsing is pure (functions over literal strings and dicts, unit-tested for every
layout); :func:`read_snapshot` and :func:`read_failures_since` do the Redis calls.
This module never asserts and never writes to Redis.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, cast

import redis

# Queues of Mastodon's config/sidekiq.yml: default 8, push 6, ingress 4, mailers 2, pull,
# scheduler, fasp (fasp since mastodon a5a2c6dc "Add support for FASP data sharing", 4.4;
# read at Lastorder-DC/mastodon 1ebb87a6, 4.5.0-alpha, the newest upstream commit in that fork).
MASTODON_QUEUES: tuple[str, ...] = (
    "default", "push", "ingress", "mailers", "pull", "scheduler", "fasp",
)
WORK_SUFFIXES = (":work", ":workers")  # Sidekiq 7+ first, then 6.x
_MILLIS_THRESHOLD = 100_000_000_000  # an epoch above 1e11 is in milliseconds (year 5138 in s)
FAILURE_SCAN_LIMIT = 2000  # at most this many retry/dead entries are read per observation
# 8.x stamps are whole milliseconds (truncated): a failure in the same millisecond as the
# window start may carry a stamp up to 1 ms before it
STAMP_RESOLUTION_S = 0.001


Raw = str | bytes | None


def text(value: Raw) -> str | None:
    if value is None:
        return None
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def epoch_seconds(value: object) -> float | None:
    """A Sidekiq timestamp in epoch seconds: floats are seconds (6.x/7.x), integers
    milliseconds (8.x), mirroring ``calculate_latency``; numeric strings are accepted.

    >>> epoch_seconds(1700000000.5), epoch_seconds(1700000000500)
    (1700000000.5, 1700000000.5)
    """
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (bytes, str)):
        raw = text(value) or ""
        try:
            value = int(raw) if raw.strip().lstrip("-").isdigit() else float(raw)
        except ValueError:
            return None
    if isinstance(value, int):
        return value / 1000.0 if abs(value) >= _MILLIS_THRESHOLD else float(value)
    if isinstance(value, float):
        return value / 1000.0 if abs(value) >= _MILLIS_THRESHOLD else value
    return None


@dataclass(frozen=True)
class Identity:
    hostname: str
    pid: int | None
    nonce: str

    @classmethod
    def parse(cls, identity: str) -> Identity:
        """``host:pid:nonce``; the host name itself may contain colons.

        >>> Identity.parse("mastodon-5d4f-x2:7:0a1b2c3d4e5f")
        Identity(hostname='mastodon-5d4f-x2', pid=7, nonce='0a1b2c3d4e5f')
        """
        parts = identity.rsplit(":", 2)
        if len(parts) != 3:
            return cls(identity, None, "")
        host, pid, nonce = parts
        return cls(host, int(pid) if pid.isdigit() else None, nonce)


@dataclass(frozen=True)
class Job:
    jid: str
    job_class: str
    queue: str
    args: tuple[Any, ...] = ()
    enqueued_at: float | None = None
    created_at: float | None = None
    failed_at: float | None = None
    retried_at: float | None = None
    retry_count: int | None = None
    error_class: str | None = None

    @property
    def last_failure_at(self) -> float | None:
        times = [t for t in (self.failed_at, self.retried_at) if t is not None]
        return max(times) if times else None

    def latency(self, now: float) -> float:
        """Seconds since the job was enqueued (``created_at`` when not enqueued yet)."""
        stamp = self.enqueued_at if self.enqueued_at is not None else self.created_at
        return max(0.0, now - stamp) if stamp is not None else 0.0


def parse_job(raw: Raw | Mapping[str, Any]) -> Job | None:
    """A job payload (JSON text or an already decoded dict); None when unreadable."""
    if isinstance(raw, Mapping):
        data: Any = raw
    else:
        try:
            data = json.loads(text(raw) or "")
        except ValueError:
            return None
    if not isinstance(data, Mapping):
        return None
    # ActiveJob-wrapped jobs name the real class in "wrapped"
    job_class = data.get("wrapped") or data.get("class") or "?"
    args = data.get("args")
    retry_count = data.get("retry_count")
    return Job(
        jid=str(data.get("jid", "")),
        job_class=str(job_class),
        queue=str(data.get("queue", "")),
        args=tuple(args) if isinstance(args, list) else (),
        enqueued_at=epoch_seconds(data.get("enqueued_at")),
        created_at=epoch_seconds(data.get("created_at")),
        failed_at=epoch_seconds(data.get("failed_at")),
        retried_at=epoch_seconds(data.get("retried_at")),
        retry_count=retry_count if isinstance(retry_count, int) else None,
        error_class=data.get("error_class"),
    )


@dataclass(frozen=True)
class Work:
    """One job a process is running right now."""

    thread: str
    queue: str
    run_at: float | None
    job: Job | None


def parse_work(work: Mapping[Raw, Raw]) -> tuple[Work, ...]:
    """The ``<identity>:work`` (7+) or ``:workers`` (6.x) hash; ``payload`` is a JSON
    string in every version, tolerated as a dict too."""
    items: list[Work] = []
    for thread, value in work.items():
        try:
            data = json.loads(text(value) or "")
        except ValueError:
            continue
        if not isinstance(data, Mapping):
            continue
        payload = data.get("payload")
        items.append(Work(
            thread=text(thread) or "",
            queue=str(data.get("queue", "")),
            run_at=epoch_seconds(data.get("run_at")),
            job=parse_job(payload) if payload is not None else None,
        ))
    return tuple(items)


@dataclass(frozen=True)
class Process:
    """One entry of ``processes`` with its heartbeat hash."""

    identity: str
    hostname: str
    pid: int | None
    beat: float | None
    busy: int
    quiet: bool
    concurrency: int | None
    queues: tuple[str, ...]
    version: str | None
    started_at: float | None
    rss_kb: int | None
    work: tuple[Work, ...] = ()
    work_layout: str | None = None  # "work" (7+), "workers" (6.x) or None when idle
    info_missing: bool = False  # in `processes` but its hash expired: the process died

    def beat_age(self, now: float) -> float | None:
        return None if self.beat is None else max(0.0, now - self.beat)

    def is_of_host(self, hostname: str) -> bool:
        return self.hostname == hostname


def _int(value: Raw) -> int | None:
    raw = text(value)
    try:
        return int(float(raw)) if raw not in (None, "") else None
    except ValueError:
        return None


def parse_process(
    identity: str,
    fields: Mapping[Raw, Raw],
    work: Mapping[Raw, Raw] | None = None,
    workers: Mapping[Raw, Raw] | None = None,
) -> Process:
    """Build a :class:`Process` from HGETALL of ``<identity>`` and of its busy hash
    (``work`` for Sidekiq 7+, ``workers`` for 6.x; either may be empty)."""
    decoded = {text(k): v for k, v in fields.items()}
    parsed_identity = Identity.parse(identity)
    info: Mapping[str, Any] = {}
    info_raw = text(decoded.get("info"))
    if info_raw:
        try:
            loaded = json.loads(info_raw)
            info = loaded if isinstance(loaded, Mapping) else {}
        except ValueError:
            info = {}
    queues = info.get("queues")
    if not isinstance(queues, list):
        # Sidekiq 8 also describes each capsule as {concurrency, mode, weights: {queue: w}};
        # the top-level "queues" is deprecated there (to go in 9.0)
        capsules = info.get("capsules") or {}
        queues = [q for cap in capsules.values() if isinstance(cap, Mapping)
                  for q in (cap.get("weights") or {})] if isinstance(capsules, Mapping) else []
    layout = None
    running: tuple[Work, ...] = ()
    if work:
        layout, running = "work", parse_work(work)
    elif workers:
        layout, running = "workers", parse_work(workers)
    concurrency = _int(decoded.get("concurrency"))
    if concurrency is None and isinstance(info.get("concurrency"), int):
        concurrency = info["concurrency"]
    return Process(
        identity=identity,
        hostname=str(info.get("hostname") or parsed_identity.hostname),
        pid=info.get("pid") if isinstance(info.get("pid"), int) else parsed_identity.pid,
        beat=epoch_seconds(text(decoded.get("beat"))),
        busy=_int(decoded.get("busy")) or 0,
        quiet=(text(decoded.get("quiet")) or "false").lower() == "true",
        concurrency=concurrency,
        queues=tuple(dict.fromkeys(str(q) for q in queues)),
        version=str(info["version"]) if info.get("version") else None,
        started_at=epoch_seconds(info.get("started_at")),
        rss_kb=_int(decoded.get("rss")),
        work=running,
        work_layout=layout,
        info_missing=not info_raw,
    )


@dataclass(frozen=True)
class QueueState:
    name: str
    size: int
    oldest: Job | None

    def latency(self, now: float) -> float:
        return self.oldest.latency(now) if self.oldest is not None else 0.0


def parse_queue(name: str, size: int, oldest_raw: Raw) -> QueueState:
    return QueueState(name, int(size), parse_job(oldest_raw) if oldest_raw is not None else None)


@dataclass(frozen=True)
class Snapshot:
    """Sidekiq's state at one instant, ``now`` taken from Redis's own clock."""

    now: float
    processes: tuple[Process, ...]
    queues: Mapping[str, QueueState]
    retry_size: int
    dead_size: int
    schedule_size: int
    processed: int
    failed: int

    def processes_of(self, hostname: str) -> tuple[Process, ...]:
        return tuple(p for p in self.processes if p.is_of_host(hostname))

    def served_queues(self, hostname: str | None = None) -> set[str]:
        """Queues some live process (of ``hostname``, when given) listens to."""
        procs = self.processes_of(hostname) if hostname else self.processes
        return {q for p in procs if not p.info_missing for q in p.queues}

    def queue(self, name: str) -> QueueState:
        return self.queues.get(name) or QueueState(name, 0, None)

    def latencies(self) -> dict[str, float]:
        return {name: round(q.latency(self.now), 3) for name, q in sorted(self.queues.items())}


def redis_now(conn: redis.Redis) -> float:
    """Redis's clock (TIME): the same clock the pod's Sidekiq stamps with."""
    seconds, micros = conn.time()
    return float(seconds) + float(micros) / 1_000_000


def read_snapshot(conn: redis.Redis, extra_queues: Iterable[str] = ()) -> Snapshot:
    """Read processes, queues, set sizes and counters (a few pipelined round trips)."""
    now = redis_now(conn)
    identities = sorted(text(i) or "" for i in conn.smembers("processes"))
    pipe = conn.pipeline(transaction=False)
    for identity in identities:
        pipe.hgetall(identity)
        for suffix in WORK_SUFFIXES:
            pipe.hgetall(identity + suffix)
    raw = pipe.execute()
    processes = tuple(
        parse_process(identity, raw[3 * i] or {}, raw[3 * i + 1] or {}, raw[3 * i + 2] or {})
        for i, identity in enumerate(identities)
    )
    names = sorted({text(q) or "" for q in conn.smembers("queues")} | set(extra_queues))
    pipe = conn.pipeline(transaction=False)
    for name in names:
        pipe.llen(f"queue:{name}")
        pipe.lindex(f"queue:{name}", -1)
    for zset in ("retry", "dead", "schedule"):
        pipe.zcard(zset)
    pipe.get("stat:processed")
    pipe.get("stat:failed")
    raw = pipe.execute()
    queues = {name: parse_queue(name, raw[2 * i] or 0, raw[2 * i + 1])
              for i, name in enumerate(names)}
    tail = raw[2 * len(names):]
    return Snapshot(
        now=now,
        processes=processes,
        queues=queues,
        retry_size=int(tail[0]),
        dead_size=int(tail[1]),
        schedule_size=int(tail[2]),
        processed=_int(tail[3]) or 0,
        failed=_int(tail[4]) or 0,
    )


@dataclass(frozen=True)
class Failures:
    """Jobs that failed (retry) or died (dead) since a point in time."""

    since: float
    retried: tuple[Job, ...] = field(default=())
    died: tuple[Job, ...] = field(default=())


def failures_since(
    since: float,
    retry_entries: Iterable[Raw],
    dead_entries: Iterable[Raw],
) -> Failures:
    """Pure: retry entries whose last failure (``failed_at``/``retried_at``) is at or
    after ``since``; dead entries are already selected by score (time of death)."""
    retried = []
    for raw in retry_entries:
        job = parse_job(raw)
        if job is not None and (job.last_failure_at or 0.0) >= since - STAMP_RESOLUTION_S:
            retried.append(job)
    died = [job for raw in dead_entries if (job := parse_job(raw)) is not None]
    return Failures(since, tuple(retried), tuple(died))


def read_failures_since(conn: redis.Redis, since: float,
                        limit: int = FAILURE_SCAN_LIMIT) -> Failures:
    """Retry entries scheduled after ``since`` (a new failure is always rescheduled
    into the future) and dead entries that died after ``since``, at most ``limit`` each."""
    # Without withscores redis-py returns the members: a list of bytes or str.
    retry = cast("list[Raw]", conn.zrangebyscore("retry", since, "+inf", start=0, num=limit))
    dead = cast("list[Raw]", conn.zrangebyscore("dead", since, "+inf", start=0, num=limit))
    return failures_since(since, retry, dead)
