"""A real Sidekiq (Debian's ruby-sidekiq 6.4) processing real jobs, on a local Redis.

``SidekiqPeer`` starts ``sidekiq -r tests/peers/sidekiq_jobs/jobs.rb`` with the
host name a pod would have (Sidekiq takes ``DYNO`` over ``Socket.gethostname``),
waits until its heartbeat is in Redis, and stops it by its own PID. Faults are
made for real: SIGSTOP freezes the heartbeat, SIGTSTP quiets the process, a
queue left out of ``-q`` is never fetched, FailingJob/DyingJob fill ``retry``
and ``dead``.

``push_job`` enqueues the way Sidekiq's client does (``SADD queues``, ``LPUSH
queue:<name>`` with the job JSON; ``ZADD schedule`` for a future job).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import redis

from tootcheck.clients.sidekiq import MASTODON_QUEUES, read_snapshot
from tootcheck.waiting import Poll, wait_until

JOBS_FILE = Path(__file__).resolve().parent / "sidekiq_jobs" / "jobs.rb"
POD_NAME = "mastodon-7c9d8f6b54-x2k9p"  # what a pod of Deployment mastodon is called
QUEUE_WEIGHTS = {"default": 8, "push": 6, "ingress": 4, "mailers": 2}  # config/sidekiq.yml


def sidekiq_binary() -> str | None:
    return shutil.which("sidekiq")


def has_ruby_pg() -> bool:
    ruby = shutil.which("ruby")
    if ruby is None:
        return False
    done = subprocess.run([ruby, "-e", "require 'pg'"], capture_output=True, timeout=30)
    return done.returncode == 0


def push_job(
    conn: redis.Redis,
    job_class: str,
    args: list[object],
    *,
    queue: str = "default",
    at: float | None = None,
    enqueued_at: float | None = None,
    millis: bool = False,
    retry: bool | int = True,
) -> str:
    """Enqueue like ``Sidekiq::Client#push``; ``millis`` writes 8.x-style timestamps."""
    now = time.time()
    stamp = (lambda t: int(t * 1000)) if millis else (lambda t: t)
    jid = secrets.token_hex(12)
    job: dict[str, object] = {"class": job_class, "args": args, "queue": queue, "jid": jid,
                              "retry": retry, "created_at": stamp(enqueued_at or now)}
    if at is not None:
        job["at"] = at
        conn.zadd("schedule", {json.dumps(job): at})
        return jid
    job["enqueued_at"] = stamp(enqueued_at or now)
    pipe = conn.pipeline(transaction=True)
    pipe.sadd("queues", queue)
    pipe.lpush(f"queue:{queue}", json.dumps(job))
    pipe.execute()
    return jid


@dataclass
class SidekiqPeer:
    redis_url: str
    root: Path
    database_url: str = ""
    hostname: str = POD_NAME
    queues: tuple[str, ...] = MASTODON_QUEUES
    concurrency: int = 2
    beat_pause_s: float = 0.5
    poll_interval_s: float = 0.5
    process: subprocess.Popen[bytes] | None = None
    _log: object = field(default=None, repr=False)

    @property
    def pid(self) -> int:
        assert self.process is not None, "sidekiq is not running"
        return self.process.pid

    @property
    def log_path(self) -> Path:
        return self.root / "sidekiq.log"

    def redis(self) -> redis.Redis:
        return redis.Redis.from_url(self.redis_url, socket_timeout=5)

    def command(self) -> list[str]:
        binary = sidekiq_binary()
        assert binary is not None
        cmd = [binary, "-r", str(JOBS_FILE), "-c", str(self.concurrency), "-t", "1"]
        for queue in self.queues:
            weight = QUEUE_WEIGHTS.get(queue)
            cmd += ["-q", f"{queue},{weight}" if weight else queue]
        return cmd

    def start(self) -> None:
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(self.root),
            "REDIS_URL": self.redis_url,
            "DATABASE_URL": self.database_url,
            "DYNO": self.hostname,
            "TOOTCHECK_BEAT_PAUSE": str(self.beat_pause_s),
            "TOOTCHECK_POLL_INTERVAL": str(self.poll_interval_s),
            "TOOTCHECK_PAUSE_TIME": "0.05",
            "TOOTCHECK_SHUTDOWN_TIMEOUT": "0.2",
            "RUBYOPT": "-W0",
        }
        self._log = self.log_path.open("ab")
        self.process = subprocess.Popen(self.command(), cwd=self.root, env=env,
                                        stdout=self._log, stderr=subprocess.STDOUT)
        wait_until(self._registered, what=f"sidekiq pid {self.process.pid} in `processes`",
                   timeout="peer-start", interval=0.02)

    def _registered(self) -> Poll[bool]:
        assert self.process is not None
        if self.process.poll() is not None:
            tail = self.log_path.read_text(errors="replace")[-800:]
            raise RuntimeError(f"sidekiq exited with {self.process.returncode}: {tail}")
        with self.redis() as conn:
            snapshot = read_snapshot(conn)
        mine = [p for p in snapshot.processes if p.pid == self.process.pid and not p.info_missing]
        return Poll(bool(mine), True, f"{len(snapshot.processes)} process(es) registered")

    def stop(self) -> None:
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.process.pid, signal.SIGCONT)  # a paused process cannot shut down
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self.process = None
        if self._log is not None:
            self._log.close()  # type: ignore[attr-defined]
            self._log = None

    def pause(self) -> None:
        """SIGSTOP: the process stays in `processes` but its heartbeat stops."""
        os.kill(self.pid, signal.SIGSTOP)

    def resume(self) -> None:
        os.kill(self.pid, signal.SIGCONT)

    def quiet(self) -> None:
        """SIGTSTP: Sidekiq stops fetching new jobs and reports quiet=true."""
        os.kill(self.pid, signal.SIGTSTP)

    def push(self, job_class: str, args: list[object], **kwargs: object) -> str:
        with self.redis() as conn:
            return push_job(conn, job_class, args, **kwargs)  # type: ignore[arg-type]
