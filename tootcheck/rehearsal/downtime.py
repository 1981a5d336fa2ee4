"""Downtime during an upgrade: a bounded background poller, and the unavailability
windows computed from its timestamped samples by a pure function.

A :class:`Poller` runs each probe in its own thread through
:func:`~tootcheck.waiting.wait_until` (so it is bounded by ``max_duration`` and
paced by ``interval``) and records a :class:`Sample` per call. :func:`windows`
turns the samples of one probe into :class:`Window` records: a window opens at
the first failing sample and closes at the next succeeding one (or stays open
when the probe never recovered). ``end - start`` is the reported duration; the
true outage is at least the span of the failing samples (``lower_bound``) and at
most the gap between the successes around it (``upper_bound``); all three are
reported, and the poll interval is the resolution.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import requests

from tootcheck.target import Target
from tootcheck.waiting import Poll, WaitTimeout, wait_until

HEALTH_PATH = "/health"
STREAMING_HEALTH_PATH = "/api/v1/streaming/health"
PROBE_TIMEOUT_S = 2.0


@dataclass(frozen=True)
class Observation:
    ok: bool
    detail: str = ""
    data: Any = None


@dataclass(frozen=True)
class Sample:
    t: float  # epoch seconds, when the probe started
    probe: str
    ok: bool
    detail: str = ""
    data: Any = None


@dataclass(frozen=True)
class Window:
    """One stretch of unavailability of one probe."""

    probe: str
    start: float  # first failing sample
    end: float | None  # first succeeding sample after it; None: never recovered
    failures: int
    detail: str  # what the first failure said
    last_ok_before: float | None = None
    last_failure: float | None = field(default=None, compare=False)  # last failing sample

    @property
    def recovered(self) -> bool:
        return self.end is not None

    def duration(self, until: float | None = None) -> float:
        """Seconds from the first failure to recovery (or to ``until`` when open)."""
        end = self.end if self.end is not None else until
        return max(0.0, (end if end is not None else self.start) - self.start)

    @property
    def lower_bound(self) -> float:
        """Seconds between the first and the last failing sample: certainly down."""
        return max(0.0, (self.last_failure if self.last_failure is not None else self.start)
                   - self.start)

    @property
    def upper_bound(self) -> float | None:
        """Seconds between the successes around the window (None if either is missing)."""
        if self.end is None or self.last_ok_before is None:
            return None
        return self.end - self.last_ok_before


def windows(samples: Iterable[Sample], probe: str) -> list[Window]:
    """The unavailability windows of ``probe``, oldest first."""
    mine = sorted((s for s in samples if s.probe == probe), key=lambda s: s.t)
    found: list[Window] = []
    start: Sample | None = None
    failures = 0
    last_failure = 0.0
    last_ok: float | None = None
    for sample in mine:
        if not sample.ok:
            if start is None:
                start, failures = sample, 0
            failures += 1
            last_failure = sample.t
            continue
        if start is not None:
            found.append(Window(probe, start.t, sample.t, failures, start.detail, last_ok,
                                last_failure))
            start = None
        last_ok = sample.t
    if start is not None:
        found.append(Window(probe, start.t, None, failures, start.detail, last_ok, last_failure))
    return found


def downtime(samples: Sequence[Sample], probe: str) -> dict[str, Any]:
    """Totals for one probe: windows, seconds down (open windows count to the last
    sample) with the bounds around it, the longest window, whether it ended available."""
    mine = [s for s in samples if s.probe == probe]
    found = windows(mine, probe)
    last = max((s.t for s in mine), default=None)
    durations = [w.duration(last) for w in found]
    return {
        "samples": len(mine),
        "windows": len(found),
        "down_s": round(sum(durations), 3),
        "longest_s": round(max(durations, default=0.0), 3),
        "lower_bound_s": round(sum(w.lower_bound for w in found), 3),
        "upper_bound_s": round(sum(w.upper_bound or w.duration(last) for w in found), 3),
        "recovered": all(w.recovered for w in found),
        "ended_ok": bool(mine) and sorted(mine, key=lambda s: s.t)[-1].ok,
    }


Probe = Callable[[], Observation]


class HttpProbe:
    """GET a path of the target (pinned, its CA only); ok on HTTP 200. One fresh
    connection per sample, so keep-alive state never hides an outage."""

    def __init__(self, target: Target, path: str, *, timeout: float = PROBE_TIMEOUT_S) -> None:
        self.url = target.base_url + path
        self.timeout = timeout
        self._session = target.http()
        self._session.headers["Connection"] = "close"

    def _get(self) -> requests.Response | Observation:
        """The answer, or the failed observation when there was none."""
        try:
            return self._session.get(self.url, timeout=self.timeout, allow_redirects=False)
        except requests.RequestException as exc:
            text = " ".join(str(exc).split())[:160]
            return Observation(False, f"{type(exc).__name__}: {text}")

    def __call__(self) -> Observation:
        response = self._get()
        if isinstance(response, Observation):
            return response
        return Observation(response.status_code == 200, f"HTTP {response.status_code}")

    def close(self) -> None:
        self._session.close()


INSTANCE_PATH = "/api/v2/instance"
HOME_TIMELINE_PATH = "/api/v1/timelines/home?limit=1"


class ServiceProbe(HttpProbe):
    """Service, not just a process: with the test account's token, a home timeline read
    (PostgreSQL and the Redis feed); without, /api/v2/instance (PostgreSQL settings,
    the Redis cache). Ok on HTTP 200 with the JSON the endpoint returns."""

    def __init__(self, target: Target, *, timeout: float = PROBE_TIMEOUT_S) -> None:
        account = target.accounts.get("test")
        token = account.token if account is not None else None
        super().__init__(target, HOME_TIMELINE_PATH if token else INSTANCE_PATH,
                         timeout=timeout)
        self.expect = list if token else dict
        if token is not None:
            self._session.headers["Authorization"] = f"Bearer {token.reveal()}"

    def __call__(self) -> Observation:
        response = self._get()
        if isinstance(response, Observation):
            return response
        if response.status_code != 200:
            return Observation(False, f"HTTP {response.status_code}")
        try:
            body = response.json()
        except ValueError:
            return Observation(False, "HTTP 200 but not JSON")
        if not isinstance(body, self.expect):
            return Observation(False, f"HTTP 200 but a JSON {type(body).__name__}")
        return Observation(True, "HTTP 200 JSON")


def availability_probes(target: Target) -> dict[str, Probe]:
    return {"health": HttpProbe(target, HEALTH_PATH),
            "streaming": HttpProbe(target, STREAMING_HEALTH_PATH),
            "service": ServiceProbe(target)}


class Poller:
    """Samples every probe each ``interval`` seconds in the background, for at most
    ``max_duration`` seconds; ``stop()`` ends it and returns the samples."""

    def __init__(self, probes: Mapping[str, Probe], *, interval: float = 1.0,
                 max_duration: float = 1800.0, clock: Callable[[], float] = time.time) -> None:
        self.probes = dict(probes)
        self.interval = interval
        self.max_duration = max_duration
        self.clock = clock
        self.hit_bound: list[str] = []  # probes that ran out of max_duration
        self._samples: list[Sample] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> Poller:
        for name, probe in self.probes.items():
            thread = threading.Thread(target=self._run, args=(name, probe),
                                      name=f"downtime-{name}", daemon=True)
            self._threads.append(thread)
            thread.start()
        return self

    def _pause(self, seconds: float) -> None:
        self._stop.wait(seconds)  # stop() ends the pause at once

    def _run(self, name: str, probe: Probe) -> None:
        def tick() -> Poll[None]:
            started = self.clock()
            try:
                seen = probe()
            except Exception as exc:  # a probe error is an observation, never a crash
                seen = Observation(False, f"{type(exc).__name__}: {exc}"[:200])
            with self._lock:
                self._samples.append(Sample(started, name, seen.ok, seen.detail, seen.data))
            return Poll(self._stop.is_set(), state=f"{name}: {seen.detail}")

        try:
            wait_until(tick, what=f"downtime probe {name}", timeout=self.max_duration,
                       interval=self.interval, sleep=self._pause)
        except WaitTimeout:
            self.hit_bound.append(name)

    @property
    def samples(self) -> list[Sample]:
        with self._lock:
            return sorted(self._samples, key=lambda s: s.t)

    def is_up(self, names: Iterable[str]) -> bool:
        """The latest sample of every named probe succeeded."""
        latest: dict[str, Sample] = {}
        for sample in self.samples:
            latest[sample.probe] = sample
        return all(n in latest and latest[n].ok for n in names)

    def wait_up(self, names: Sequence[str], *, timeout: float) -> bool:
        """Wait (bounded) until the latest sample of every named probe succeeded."""
        def up() -> Poll[bool]:
            latest = {s.probe: s for s in self.samples}
            state = ", ".join(f"{n}: {latest[n].detail if n in latest else 'no sample'}"
                              for n in names)
            return Poll(self.is_up(names), True, state)

        try:
            wait_until(up, what=f"{', '.join(names)} available again", timeout=timeout,
                       interval=self.interval / 2 or 0.1)
        except WaitTimeout:
            return False
        return True

    def stop(self) -> list[Sample]:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=PROBE_TIMEOUT_S * 3 + self.interval)
        for probe in self.probes.values():
            close = getattr(probe, "close", None)
            if callable(close):
                close()
        return self.samples

    def __enter__(self) -> Poller:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
