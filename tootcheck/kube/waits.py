"""The bring-up's one wait: poll a readiness verdict through ``wait_until``.

:func:`wait_for` polls any ``() -> Readiness`` condition; it stops early when the
verdict says ``failed`` and, on timeout or failure, raises with the last verdict
plus a context snapshot (conditions, recent events, container statuses and
restart counts) so a stuck bring-up says why. :func:`wait_ready` is the common
case: objects picked by name or label selector, judged by
:mod:`tootcheck.kube.readiness`. Event formatting is pure.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from tootcheck.errors import KindNotServed
from tootcheck.kube.readiness import Readiness, all_ready, describe_state, object_id
from tootcheck.waiting import Poll, WaitTimeout, wait_until

EVENT_LINES = 8


class KubeReader(Protocol):
    def get(self, api_version: str, kind: str, name: str,
            namespace: str | None = None) -> dict[str, Any] | None: ...
    def list(self, api_version: str, kind: str, namespace: str | None = None, *,
             label_selector: str | None = None,
             field_selector: str | None = None) -> list[dict[str, Any]]: ...


class NotReady(WaitTimeout):
    """A wait that timed out, or stopped early because the verdict was final."""

    def __init__(self, what: str, timeout: float, last_state: str, polls: int, *,
                 final: bool = False) -> None:
        super().__init__(what, timeout, last_state, polls)
        if final:  # not a timeout: say so, instead of "timed out after 0s"
            self.args = (f"stopped waiting for {what}: {last_state}",)


@dataclass(frozen=True)
class Watch:
    """Objects to judge: one by name, or all matching a label selector (or all).
    ``until_served``: the kind's CRD comes from a phase that may run at the same time,
    so a wait treats "kind not served yet" as "not found yet" (within its own bound)."""

    api_version: str
    kind: str
    namespace: str | None = None
    name: str | None = None
    selector: str | None = None
    until_served: bool = False

    def fetch(self, kube: KubeReader) -> list[dict[str, Any]]:
        if self.name:
            obj = kube.get(self.api_version, self.kind, self.name, self.namespace)
            return [obj] if obj else []
        return kube.list(self.api_version, self.kind, self.namespace, label_selector=self.selector)

    def describe(self) -> str:
        where = f" in {self.namespace}" if self.namespace else ""
        if self.name:
            return f"{self.kind}/{self.name}{where}"
        return f"{self.kind}s{where}" + (f" ({self.selector})" if self.selector else "")


def selector_string(match_labels: Mapping[str, str] | None) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted((match_labels or {}).items()))


def _event_time(event: Mapping[str, Any]) -> str:
    series = event.get("series") or {}
    return str(series.get("lastObservedTime") or event.get("lastTimestamp") or event.get("eventTime")
               or (event.get("metadata") or {}).get("creationTimestamp") or "")


def sorted_events(events: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Events oldest first (RFC 3339 timestamps sort as text)."""
    return sorted(events, key=_event_time)


def format_event(event: Mapping[str, Any]) -> str:
    involved = event.get("involvedObject") or event.get("regarding") or {}
    count = event.get("count") or (event.get("series") or {}).get("count") or 1
    text = " ".join(str(event.get("message") or event.get("note") or "").split())
    times = f" (x{count})" if count and int(count) > 1 else ""
    return (f"{_event_time(event)} {event.get('type', '')} {involved.get('kind', '')}/"
            f"{involved.get('name', '')} {event.get('reason', '')}{times}: {text}")


def recent_events(events: Iterable[Mapping[str, Any]], names: Iterable[str],
                  limit: int = EVENT_LINES) -> list[str]:
    wanted = set(names)
    mine = [e for e in events
            if ((e.get("involvedObject") or e.get("regarding") or {}).get("name")) in wanted]
    return [format_event(e) for e in sorted_events(mine)[-limit:]]


def pods_of(kube: KubeReader, obj: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The pods a workload selects (none for other kinds)."""
    if obj.get("kind") not in ("Deployment", "StatefulSet", "DaemonSet", "Job"):
        return []
    selector = selector_string(((obj.get("spec") or {}).get("selector") or {}).get("matchLabels"))
    if not selector:
        return []
    return kube.list("v1", "Pod", (obj.get("metadata") or {}).get("namespace"), label_selector=selector)


def snapshot(kube: KubeReader, objs: Sequence[Mapping[str, Any]]) -> str:
    """Conditions, container statuses and restarts, recent events: one paragraph."""
    lines: list[str] = []
    names: dict[str | None, set[str]] = {}
    for obj in objs:
        lines.append(describe_state(obj))
        meta = obj.get("metadata") or {}
        names.setdefault(meta.get("namespace"), set()).add(meta.get("name", ""))
        try:
            for pod in pods_of(kube, obj):
                lines.append(describe_state(pod))
                names.setdefault(meta.get("namespace"), set()).add(pod["metadata"]["name"])
        except Exception as exc:  # context is best effort; the verdict stands
            lines.append(f"(pods of {object_id(obj)} unavailable: {type(exc).__name__})")
    for namespace, wanted in names.items():
        try:
            events = kube.list("v1", "Event", namespace) if namespace else []
        except Exception as exc:
            lines.append(f"(events in {namespace} unavailable: {type(exc).__name__})")
            continue
        for line in recent_events(events, wanted):
            lines.append(f"event {line}")
    return " | ".join(lines)


def wait_for(condition: Callable[[], Readiness], *, what: str, timeout: float | str,
             interval: float = 2.0, context: Callable[[], str] | None = None,
             retry_on: tuple[type[BaseException], ...] = (), **clock: Any) -> Readiness:
    """Poll ``condition`` until ready; raise :class:`NotReady` with context otherwise."""
    final: list[Readiness] = []

    def poll() -> Poll[Readiness]:
        verdict = condition()
        if verdict.failed:
            final.append(verdict)
            return Poll(True, verdict, state=verdict.reason)
        return Poll(verdict.ready, verdict, state=verdict.reason)

    try:
        verdict = wait_until(poll, what=what, timeout=timeout, interval=interval, retry_on=retry_on,
                             **clock)
    except WaitTimeout as exc:
        raise NotReady(what, exc.timeout, _with_context(exc.last_state, context), exc.polls) from None
    assert verdict is not None
    if final:
        raise NotReady(what, 0, _with_context(f"failed for good: {verdict.reason}", context), 1,
                       final=True)
    return verdict


def _with_context(state: str, context: Callable[[], str] | None) -> str:
    if context is None:
        return state
    try:
        extra = context()
    except Exception as exc:  # never let context collection replace the real verdict
        extra = f"(context unavailable: {type(exc).__name__}: {exc})"
    return f"{state} || {extra}" if extra else state


def wait_ready(kube: KubeReader, watches: Sequence[Watch], *, what: str, timeout: float | str,
               interval: float = 2.0, extra: Callable[[], Readiness] | None = None,
               stop: Callable[[], str | None] | None = None,
               retry_on: tuple[type[BaseException], ...] = (), **clock: Any) -> Readiness:
    """Wait until every watched object is ready (and ``extra`` too, if given). ``stop``,
    asked before each poll, names why waiting longer cannot help (None: go on)."""
    seen: list[dict[str, Any]] = []

    def condition() -> Readiness:
        why = stop() if stop is not None else None
        if why:
            return Readiness(False, why, failed=True)
        objs: list[dict[str, Any]] = []
        for watch in watches:
            try:
                found = watch.fetch(kube)
            except KindNotServed:
                if not watch.until_served:
                    raise
                seen[:] = objs
                return Readiness(False, f"{watch.describe()}: {watch.kind} not served yet "
                                        f"({watch.api_version})")
            if not found:
                seen[:] = objs
                return Readiness(False, f"{watch.describe()}: not found yet")
            objs.extend(found)
        seen[:] = objs
        verdict = all_ready(objs, what="objects")
        if not verdict.ready or extra is None:
            return verdict
        more = extra()
        return more if not more.ready else Readiness(True, f"{verdict.reason}; {more.reason}")

    return wait_for(condition, what=what, timeout=timeout, interval=interval,
                    context=lambda: snapshot(kube, seen), retry_on=retry_on, **clock)
