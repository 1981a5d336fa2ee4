"""Sidekiq 7.x and 8.x as they write to Redis, for the checks to read next to the real 6.4.

Debian ships Sidekiq 6.4 (``tests/peers/sidekiq.py`` runs it for real). Mastodon 4.4 pins
Sidekiq 7.3.9 (``Gemfile.lock`` at Lastorder-DC/mastodon 68090cd8 "Bump version to
v4.4.0-rc.1", since 37c82a30 "Update sidekiq to version 7"; still 7.3.9 at 1ebb87a6,
4.5.0-alpha, the newest upstream commit in the fork) and Mastodon 4.5+ runs Sidekiq 8
(issue 11; no later Gemfile.lock is available to confirm the exact 8.x). A
:class:`SidekiqWriter` performs, key for key and command for command, what these upstream
methods do (sidekiq/sidekiq at v7.3.9 = bf9afa4c, v8.1.7 = 1bb4aa06):

- ``Launcher#❤`` (``lib/sidekiq/launcher.rb``): MULTI { UNLINK ``<id>:work``; HSET it with
  ``{tid: JSON {queue, payload, run_at}}`` and EXPIRE 60 when busy }, then MULTI { SADD
  ``processes``; HSET ``<id>`` ``info`` (``to_json``), [8.x: ``concurrency``], ``busy``,
  ``beat`` (``Time.now.to_f``), ``rtt_us``, ``quiet``, ``rss``; EXPIRE 60 }; ``flush_stats``
  INCRBYs ``stat:processed``/``stat:failed`` and their ``:<date>`` twins.
- ``Launcher#to_data``: ``hostname``, ``started_at``, ``pid``, ``tag``, 7.x: ``concurrency``,
  8.x: ``capsules`` ``{name: {concurrency, mode, weights}}``; both: ``queues`` (unique names),
  ``weights`` (one hash per capsule), ``labels``, ``identity``, ``version``, ``embedded``.
- ``Component#identity``: ``<DYNO or hostname>:<pid>:<SecureRandom.hex(6)>``.
- ``Capsule#queues=``: weight ``to_i`` (0 when absent); mode strict/random/weighted.
- ``Processor#stats``: ``run_at`` is ``Time.now.to_i`` (seconds) in both.
- ``Client#atomic_push`` / ``JobUtil#normalize_item``: SADD ``queues``, LPUSH
  ``queue:<name>``; ``created_at``/``enqueued_at`` are ``Time.now.to_f`` in 7.x and integer
  milliseconds (``CLOCK_REALTIME, :millisecond``) in 8.x; scheduled jobs go to ZADD
  ``schedule`` without ``enqueued_at``.
- ``JobRetry#attempt_retry``: ``queue``, ``error_message``, ``error_class``, ``failed_at``
  (first failure, ``retry_count`` 0) or ``retried_at`` (``retry_count`` + 1), in seconds
  (7.x) or milliseconds (8.x); ZADD ``retry`` at ``Time.now.to_f + delay + jitter``.
  ``send_to_morgue``: ZADD ``dead`` at ``Time.now.to_f``.
"""

from __future__ import annotations

import json
import os
import secrets
import time
from dataclasses import dataclass, field
from typing import Any, Literal

import redis

from tootcheck.clients.sidekiq import MASTODON_QUEUES

Version = Literal["7.3.9", "8.1.7"]
VERSIONS: tuple[Version, ...] = ("7.3.9", "8.1.7")
# Mastodon's config/sidekiq.yml (Lastorder-DC/mastodon 1ebb87a6): [default, 8], [push, 6],
# [ingress, 4], [mailers, 2], [pull], [scheduler], [fasp]
MASTODON_WEIGHTS: dict[str, int] = {"default": 8, "push": 6, "ingress": 4, "mailers": 2,
                                    "pull": 0, "scheduler": 0, "fasp": 0}
WORK_TTL_S = 60
STATS_TTL_S = 5 * 365 * 24 * 60 * 60  # Launcher::STATS_TTL


def capsule_mode(weights: dict[str, int]) -> str:
    if all(w == 0 for w in weights.values()):
        return "strict"
    if all(w == 1 for w in weights.values()):
        return "random"
    return "weighted"


@dataclass
class SidekiqWriter:
    """One Sidekiq 7.x/8.x process of a pod, writing what that version writes."""

    conn: redis.Redis
    version: Version
    hostname: str
    concurrency: int = 5
    weights: dict[str, int] = field(default_factory=lambda: dict(MASTODON_WEIGHTS))
    pid: int = field(default_factory=os.getpid)
    nonce: str = field(default_factory=lambda: secrets.token_hex(6))
    started_at: float = field(default_factory=time.time)
    work_state: dict[str, dict[str, Any]] = field(default_factory=dict)
    quiet: bool = False

    @property
    def identity(self) -> str:
        return f"{self.hostname}:{self.pid}:{self.nonce}"

    @property
    def millis(self) -> bool:
        return self.version.startswith("8.")

    def stamp(self, seconds: float) -> float | int:
        """A job timestamp as this version writes it."""
        return int(seconds * 1000) if self.millis else seconds

    def info(self) -> dict[str, Any]:
        queues = list(self.weights)
        data: dict[str, Any] = {"hostname": self.hostname, "started_at": self.started_at,
                                "pid": self.pid, "tag": ""}
        if self.millis:
            data["capsules"] = {"default": {"concurrency": self.concurrency,
                                            "mode": capsule_mode(self.weights),
                                            "weights": dict(self.weights)}}
        else:
            data["concurrency"] = self.concurrency
        data.update({"queues": queues, "weights": [dict(self.weights)], "labels": [],
                     "identity": self.identity, "version": self.version, "embedded": False})
        return data

    # ------------------------------------------------------------ the heartbeat

    def beat(self, at: float | None = None, *, processed: int = 0, failed: int = 0) -> None:
        """``Launcher#❤`` once (``at``: the beat time, default now)."""
        now = time.time() if at is None else at
        self.flush_stats(processed, failed)
        work_key = f"{self.identity}:work"
        state: dict[str | bytes, bytes | float | int | str] = {
            tid: json.dumps(value) for tid, value in self.work_state.items()}
        pipe = self.conn.pipeline(transaction=True)
        pipe.unlink(work_key)
        if state:
            pipe.hset(work_key, mapping=state)
            pipe.expire(work_key, WORK_TTL_S)
        pipe.execute()
        fields: dict[str | bytes, bytes | float | int | str] = {"info": json.dumps(self.info())}
        if self.millis:
            fields["concurrency"] = self.concurrency
        fields.update({"busy": len(state), "beat": repr(float(now)), "rtt_us": 150,
                       "quiet": str(self.quiet).lower(), "rss": 204800})
        pipe = self.conn.pipeline(transaction=True)
        pipe.sadd("processes", self.identity)
        pipe.exists(self.identity)
        pipe.hset(self.identity, mapping=fields)
        pipe.expire(self.identity, WORK_TTL_S)
        pipe.rpop(f"{self.identity}-signals")
        pipe.execute()

    def flush_stats(self, processed: int, failed: int) -> None:
        if processed + failed == 0:
            return
        date = time.strftime("%Y-%m-%d", time.gmtime())
        pipe = self.conn.pipeline(transaction=False)
        for name, count in (("processed", processed), ("failed", failed)):
            pipe.incrby(f"stat:{name}", count)
            pipe.incrby(f"stat:{name}:{date}", count)
            pipe.expire(f"stat:{name}:{date}", STATS_TTL_S)
        pipe.execute()

    def expire_hash(self) -> None:
        """What 60 s without a beat leaves: the identity in ``processes``, its hash gone."""
        self.conn.delete(self.identity, f"{self.identity}:work")

    # ------------------------------------------------------------ jobs

    def job(self, job_class: str, args: list[Any], *, queue: str = "default",
            created_at: float | None = None, retry: bool | int = True) -> dict[str, Any]:
        """``normalize_item``: the job hash before it is pushed."""
        return {"retry": retry, "queue": queue, "args": args, "class": job_class,
                "jid": secrets.token_hex(12),
                "created_at": self.stamp(time.time() if created_at is None else created_at)}

    def push(self, job: dict[str, Any], *, enqueued_at: float | None = None,
             at: float | None = None) -> dict[str, Any]:
        """``Client#atomic_push`` of one job; returns the payload as stored."""
        if at is not None:
            stored = {k: v for k, v in job.items() if k not in ("enqueued_at", "at")}
            self.conn.zadd("schedule", {json.dumps(stored): at})
            return stored
        stored = {**job, "enqueued_at": self.stamp(time.time() if enqueued_at is None
                                                   else enqueued_at)}
        self.conn.sadd("queues", job["queue"])
        self.conn.lpush(f"queue:{job['queue']}", json.dumps(stored))
        return stored

    def fetch(self, queue: str) -> dict[str, Any] | None:
        """BRPOP's non-blocking twin: take the oldest job and start working on it."""
        raw = self.conn.rpop(f"queue:{queue}")
        if raw is None:
            return None
        self.work_state[secrets.token_hex(4)] = {"queue": queue, "payload": raw.decode(),
                                                 "run_at": int(time.time())}
        result: dict[str, Any] = json.loads(raw)
        return result

    def finish(self, jid: str) -> None:
        for tid, value in list(self.work_state.items()):
            if json.loads(value["payload"])["jid"] == jid:
                del self.work_state[tid]

    def fail(self, job: dict[str, Any], error: str = "RuntimeError", *,
             at: float | None = None, delay_s: float = 30.0) -> dict[str, Any]:
        """``JobRetry#attempt_retry`` for a job that raised; returns the retry payload."""
        now = time.time() if at is None else at
        msg = {**job, "queue": job.get("retry_queue") or job["queue"],
               "error_message": "boom", "error_class": error}
        if "retry_count" in msg:
            msg["retried_at"] = self.stamp(now)
            msg["retry_count"] += 1
        else:
            msg["failed_at"] = self.stamp(now)
            msg["retry_count"] = 0
        self.conn.zadd("retry", {json.dumps(msg): now + delay_s + 1})
        return msg

    def die(self, job: dict[str, Any], error: str = "RuntimeError", *,
            at: float | None = None) -> None:
        """Retries exhausted: ``send_to_morgue``."""
        now = time.time() if at is None else at
        msg = {**job, "error_message": "boom", "error_class": error}
        msg.setdefault("failed_at", self.stamp(now))
        msg.setdefault("retry_count", 0)
        self.conn.zadd("dead", {json.dumps(msg): now})


def mastodon_queues_match() -> bool:
    """The client's queue list is the one config/sidekiq.yml names."""
    return tuple(MASTODON_WEIGHTS) == MASTODON_QUEUES
