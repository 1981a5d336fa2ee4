"""Judging an upgrade from what the API server says about the pods (pure functions).

Everything here reads pod objects as the API serves them (camelCase dicts):
- :func:`migration`: the migration init container's final run (``state.terminated``
  ``startedAt``/``finishedAt``/``exitCode``), its restarts and the previous exit;
- :func:`start_order_problems`: sidecars started before the migration, the
  migration finished before any container started;
- :func:`image_problems`: every Mastodon container runs TO;
- :func:`pod_state` and :func:`recreate_overlap`: from pod samples taken during the
  upgrade, whether an old pod still ran while a new one existed (Recreate forbids it).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from tootcheck import versions
from tootcheck.rehearsal.downtime import Sample
from tootcheck.rehearsal.plan import image_repo, image_tag

Obj = Mapping[str, Any]
MIGRATION_CONTAINER = "db-migrate"
MASTODON_REPOS = (versions.MASTODON_IMAGE, versions.MASTODON_STREAMING_IMAGE)


def parse_time(text: str | None) -> float | None:
    """RFC 3339 (``2026-11-27T10:00:00Z``) to epoch seconds."""
    if not text:
        return None
    return datetime.fromisoformat(str(text).replace("Z", "+00:00")).timestamp()


def _statuses(pod: Obj, key: str) -> dict[str, Obj]:
    return {cs.get("name", ""): cs for cs in (pod.get("status") or {}).get(key) or []}


def _started(cs: Obj) -> float | None:
    state = cs.get("state") or {}
    for phase in ("running", "terminated"):
        if phase in state:
            return parse_time(state[phase].get("startedAt"))
    return None


@dataclass(frozen=True)
class Migration:
    container: str
    started: float | None
    finished: float | None
    exit_code: int | None
    restarts: int
    previous_exit: int | None  # exit code of the run before the last one, if any

    @property
    def seconds(self) -> float | None:
        if self.started is None or self.finished is None:
            return None
        return self.finished - self.started

    @property
    def succeeded(self) -> bool:
        return self.exit_code == 0 and self.finished is not None


def migration(pod: Obj, container: str = MIGRATION_CONTAINER) -> Migration | None:
    cs = _statuses(pod, "initContainerStatuses").get(container)
    if cs is None:
        return None
    term = (cs.get("state") or {}).get("terminated") or {}
    last = (cs.get("lastState") or {}).get("terminated") or {}
    return Migration(container, parse_time(term.get("startedAt")),
                     parse_time(term.get("finishedAt")), term.get("exitCode"),
                     int(cs.get("restartCount") or 0), last.get("exitCode"))


def start_order_problems(pod: Obj, container: str = MIGRATION_CONTAINER) -> list[str]:
    """Sidecars (restartPolicy Always) before the migration, the migration done before
    any container started. Restarted containers are judged by restart-proof facts only
    (a later start never violates the order)."""
    spec = pod.get("spec") or {}
    init_specs = spec.get("initContainers") or []
    sidecars = [c["name"] for c in init_specs if c.get("restartPolicy") == "Always"]
    inits = _statuses(pod, "initContainerStatuses")
    run = migration(pod, container)
    if run is None or run.started is None:
        return [f"{container} has no terminated state: cannot judge the start order"]
    problems = []
    names = [c["name"] for c in init_specs]
    for name in sidecars:
        cs = inits.get(name)
        started = _started(cs) if cs else None
        if started is None:
            problems.append(f"sidecar {name} has no start time")
        elif names.index(name) > names.index(container):
            problems.append(f"sidecar {name} is declared after {container}")
        elif started > run.started and not cs.get("restartCount"):  # type: ignore[union-attr]
            problems.append(f"sidecar {name} started {started - run.started:.0f}s after "
                            f"{container} began")
    if run.finished is not None:
        for name, cs in _statuses(pod, "containerStatuses").items():
            started = _started(cs)
            if started is not None and started < run.finished:
                problems.append(f"container {name} started {run.finished - started:.0f}s before "
                                f"{container} finished")
    return problems


def image_problems(pod: Obj, to_tag: str) -> list[str]:
    """Every Mastodon container and init container of the pod runs ``to_tag``."""
    spec = pod.get("spec") or {}
    problems = []
    seen = 0
    for c in [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]:
        image = c.get("image", "")
        if image_repo(image) in MASTODON_REPOS:
            seen += 1
            if image_tag(image) != to_tag:
                problems.append(f"{c['name']} runs {image}, not {to_tag}")
    if not seen:
        problems.append("the pod runs no Mastodon image")
    return problems


def mastodon_tag(pod: Obj) -> str:
    """The tag of the pod's web (first Mastodon) container, or ''."""
    for c in (pod.get("spec") or {}).get("containers") or []:
        if image_repo(c.get("image", "")) == versions.MASTODON_IMAGE:
            return image_tag(c["image"])
    return ""


@dataclass(frozen=True)
class PodState:
    uid: str
    name: str
    tag: str
    phase: str
    terminating: bool
    running: tuple[str, ...]  # containers in state running


def pod_state(pod: Obj) -> PodState:
    meta = pod.get("metadata") or {}
    running = tuple(sorted(name for name, cs in _statuses(pod, "containerStatuses").items()
                           if "running" in (cs.get("state") or {})))
    return PodState(str(meta.get("uid") or meta.get("name")), str(meta.get("name", "")),
                    mastodon_tag(pod), str((pod.get("status") or {}).get("phase", "")),
                    bool(meta.get("deletionTimestamp")), running)


def recreate_overlap(samples: Iterable[Sample], from_tag: str, to_tag: str,
                     probe: str = "pods") -> list[str]:
    """Moments when a FROM pod still ran containers while a TO pod existed."""
    problems = []
    for sample in samples:
        if sample.probe != probe or not sample.ok or not sample.data:
            continue
        pods: Sequence[PodState] = sample.data
        old = [p for p in pods if p.tag == from_tag and p.running]
        new = [p for p in pods if p.tag == to_tag]
        if old and new:
            problems.append(f"old pod {old[0].name} ({from_tag}) still ran "
                            f"{', '.join(old[0].running)} while {new[0].name} ({to_tag}) "
                            "existed")
    return problems


@dataclass
class UpgradeRecord:
    """What the rehearsal observed while upgrading (input of ``rehearsal.upgrade``)."""

    source: str
    target: str
    target_name: str
    pod: dict[str, Any] | None = None  # the upgraded pod after the rollout
    samples: list[Sample] = field(default_factory=list)
    applied_at: float | None = None
    ready_at: float | None = None
    error: str = ""  # why the rollout did not complete, if it did not
    availability: tuple[str, ...] = ("health", "streaming")
    allow_migration_restart: bool = False  # a migration that passed after a restart is ok
    migration_failed: bool = False  # the migration container failed (the wait stopped early)
    migration_logs: dict[str, str] = field(default_factory=dict)  # current/previous log tails

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (the pod reduced to names, images and container states)."""
        pod = None
        if self.pod is not None:
            pod = {"name": (self.pod.get("metadata") or {}).get("name"),
                   "images": {c["name"]: c.get("image") for c in
                              [*((self.pod.get("spec") or {}).get("initContainers") or []),
                               *((self.pod.get("spec") or {}).get("containers") or [])]},
                   "initContainerStatuses": (self.pod.get("status") or {}).get(
                       "initContainerStatuses"),
                   "containerStatuses": (self.pod.get("status") or {}).get("containerStatuses")}
        samples = [{**asdict(s), "data": [asdict(p) for p in s.data] if s.data else None}
                   for s in self.samples]
        return {"source": self.source, "target": self.target, "target_name": self.target_name,
                "applied_at": self.applied_at, "ready_at": self.ready_at, "error": self.error,
                "migration_failed": self.migration_failed,
                "migration_logs": sorted(self.migration_logs),
                "pod": pod, "samples": samples}
