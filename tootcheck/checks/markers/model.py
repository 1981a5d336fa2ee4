"""The markers as data: the set and its kinds, the pure verdicts, the marker image.

The set serialises to JSON without secrets (it names account roles, never tokens), so
the upgrade rehearsal can write markers with one release and check them with the next.
"""

from __future__ import annotations

import hashlib
import json
import struct
import zlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import PurePosixPath
from typing import Any, Literal
from urllib.parse import urlsplit

from tootcheck.model import CheckResult, CheckRun

CHECK = "persistence.markers_survive"
SCHEDULE_MINIMUM_OFFSET_S = 300.0  # ScheduledStatus::MINIMUM_OFFSET
SCHEDULER_INTERVAL_S = 300.0  # scheduled_statuses_scheduler: every 5m
DEFAULT_SCHEDULED_IN_S = SCHEDULE_MINIMUM_OFFSET_S + 60.0
DEFAULT_PUBLISH_GRACE_S = SCHEDULER_INTERVAL_S + 60.0
FAULT_FOR_STATE = {"lost": "marker-lost", "changed": "media-changed", "late": "scheduled-late"}


class MarkerWriteError(RuntimeError):
    """Writing the markers failed; ``partial`` holds what was written (for cleanup)."""

    def __init__(self, message: str, partial: MarkerSet) -> None:
        super().__init__(message)
        self.partial = partial


# ----------------------------------------------------------------- the set


@dataclass(frozen=True)
class AccountMarker:
    role: str
    id: str
    username: str

    @property
    def key(self) -> str:
        return f"account @{self.username}"


@dataclass(frozen=True)
class StatusMarker:
    id: str
    account_id: str
    author_role: str
    nonce: str
    url: str | None = None

    @property
    def key(self) -> str:
        return f"status {self.id}"


@dataclass(frozen=True)
class MediaMarker:
    id: str
    account_id: str
    author_role: str
    status_id: str
    url: str
    sha256: str
    size: int

    @property
    def key(self) -> str:
        return f"media {self.id}"

    @property
    def file_name(self) -> str:
        return PurePosixPath(urlsplit(self.url).path).name


@dataclass(frozen=True)
class ScheduledMarker:
    id: str
    account_id: str
    author_role: str
    nonce: str
    scheduled_at: float  # epoch seconds

    @property
    def key(self) -> str:
        return f"scheduled status {self.id}"


@dataclass(frozen=True)
class FollowMarker:
    follower_role: str
    account_id: str
    target_account_id: str
    preexisting: bool = False  # it existed before: cleanup leaves it in place

    @property
    def key(self) -> str:
        return f"follow {self.account_id}->{self.target_account_id}"


Marker = AccountMarker | StatusMarker | MediaMarker | ScheduledMarker | FollowMarker


@dataclass
class MarkerSet:
    """What was written, keyed by ids the server assigned; no secrets."""

    run_id: str
    target: str
    written_at: float
    accounts: list[AccountMarker] = field(default_factory=list)
    statuses: list[StatusMarker] = field(default_factory=list)
    media: list[MediaMarker] = field(default_factory=list)
    scheduled: list[ScheduledMarker] = field(default_factory=list)
    follows: list[FollowMarker] = field(default_factory=list)

    def items(self) -> Iterator[tuple[str, Marker]]:
        for kind, markers in (("account", self.accounts), ("status", self.statuses),
                              ("media", self.media), ("scheduled", self.scheduled),
                              ("follow", self.follows)):
            for marker in markers:
                yield kind, marker

    @property
    def count(self) -> int:
        return sum(1 for _ in self.items())

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MarkerSet:
        return cls(
            run_id=str(data["run_id"]),
            target=str(data["target"]),
            written_at=float(data["written_at"]),
            accounts=[AccountMarker(**m) for m in data.get("accounts", [])],
            statuses=[StatusMarker(**m) for m in data.get("statuses", [])],
            media=[MediaMarker(**m) for m in data.get("media", [])],
            scheduled=[ScheduledMarker(**m) for m in data.get("scheduled", [])],
            follows=[FollowMarker(**m) for m in data.get("follows", [])],
        )

    @classmethod
    def from_json(cls, text: str) -> MarkerSet:
        return cls.from_dict(json.loads(text))


# ------------------------------------------------------------ pure verdicts

State = Literal["found", "lost", "changed", "late"]


@dataclass(frozen=True)
class Outcome:
    kind: str
    key: str
    state: State
    detail: str

    @property
    def found(self) -> bool:
        return self.state == "found"


Outage = tuple[float, float]  # (down from, answering again at), epoch seconds


def service_time(since: float, until: float, outages: Sequence[Outage] = ()) -> float:
    """Seconds between ``since`` and ``until`` during which the service was up (the
    restart windows subtracted): how long a due job really had to run.

    >>> service_time(100.0, 150.0, [(90.0, 130.0)]), service_time(100.0, 150.0)
    (20.0, 50.0)
    """
    span = max(0.0, until - since)
    merged: list[list[float]] = []
    for start, end in sorted(outages):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    for start, end in merged:
        span -= max(0.0, min(end, until) - max(start, since))
    return max(0.0, span)


def judge_scheduled(
    marker: ScheduledMarker,
    *,
    now: float,
    still_scheduled: bool,
    published_at: float | None,
    grace_s: float,
    outages: Sequence[Outage] = (),
) -> Outcome:
    """Still scheduled (and not overdue beyond the grace), or published on time. Lateness
    counts service time only: restart windows (``outages``) are not held against it."""
    due = marker.scheduled_at
    excluded = ", restarts excluded" if outages else ""
    if still_scheduled:
        overdue = service_time(due, now, outages)
        if overdue > grace_s:
            return Outcome("scheduled", marker.key, "late",
                           f"{marker.key} still scheduled {overdue:.0f}s after its time"
                           f"{excluded} (grace {grace_s:g}s)")
        return Outcome("scheduled", marker.key, "found", "still scheduled")
    if published_at is not None:
        delay = service_time(due, published_at, outages)
        if delay > grace_s:
            return Outcome("scheduled", marker.key, "late",
                           f"{marker.key} published {delay:.0f}s after its time{excluded} "
                           f"(grace {grace_s:g}s)")
        return Outcome("scheduled", marker.key, "found",
                       f"published {published_at - due:+.1f}s from its time")
    return Outcome("scheduled", marker.key, "lost",
                   f"{marker.key} is neither scheduled nor published")


def tally(outcomes: list[Outcome], written: int) -> dict[str, float]:
    found = sum(1 for o in outcomes if o.found)
    return {"markers_written": float(written), "markers_found": float(found),
            "markers_lost": float(written - found)}


def record(run: CheckRun, outcomes: list[Outcome], *, when: str = "") -> None:
    """Add one fault per marker not found (one line, naming the marker and when)."""
    prefix = f"after {when}: " if when else ""
    for outcome in outcomes:
        run.observe()
        if not outcome.found:
            run.fail(FAULT_FOR_STATE[outcome.state], prefix + outcome.detail)


def outcomes_evidence(outcomes: list[Outcome]) -> list[dict[str, str]]:
    return [asdict(o) for o in outcomes]


def result_of(outcomes: list[Outcome], markers: MarkerSet, *, check: str = CHECK,
              target: str | None = None) -> CheckResult:
    run = CheckRun(check, target or markers.target)
    record(run, outcomes)
    run.metrics.update(tally(outcomes, markers.count))
    run.evidence["outcomes"] = outcomes_evidence(outcomes)
    run.evidence["run_id"] = markers.run_id
    return run.result()


# -------------------------------------------------------------- the image


def marker_png(seed: str, size: int = 16) -> bytes:
    """A small, valid, unique RGB PNG derived from ``seed`` (no imaging library)."""
    stream = b""
    block = hashlib.sha256(seed.encode()).digest()
    while len(stream) < size * size * 3:
        stream += block
        block = hashlib.sha256(block).digest()
    rows = b"".join(b"\x00" + stream[r * size * 3:(r + 1) * size * 3] for r in range(size))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    header = struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))

