"""A failed migration stops the rehearsal at once and explains itself (pure functions).

:func:`migration_verdict` reads the upgraded pod's ``db-migrate`` init container
status as the API serves it and says whether waiting longer can help:

- a run that exited non-zero (``state.terminated`` or, after the kubelet restarted
  it, ``lastState.terminated``) is a failure at the first poll that sees it, not 20
  minutes of "waiting" while it crash-loops;
- ``CrashLoopBackOff`` and the container-creation errors are failures too;
- a run that succeeded after an earlier failed run "passed after a restart": a
  failure unless the operator opts out (``--rehearse-allow-migration-restart``),
  because production would have needed the same luck.

:func:`log_tail` and :func:`failure_message` put the migration's last log lines into
the one-line failure; :func:`suite_skip_reason` is why the suites do not run against
a broken pod.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

MIGRATION_CONTAINER = "db-migrate"
# waiting reasons after which the container will not succeed by itself
HOPELESS = frozenset({"CrashLoopBackOff", "CreateContainerConfigError", "CreateContainerError",
                      "InvalidImageName", "RunContainerError"})
LOG_LINES = 200  # kept in the evidence, per run (current and previous)
MESSAGE_LINES = 8  # shown at the end of the failure message
SKIP_PREFIX = "not run: upgrade failed"


@dataclass(frozen=True)
class MigrationVerdict:
    state: str  # pending | running | succeeded | failed | passed-after-restart
    reason: str
    restarts: int = 0

    @property
    def failed(self) -> bool:
        return self.state == "failed"


def _status(pod: Mapping[str, Any], container: str) -> Mapping[str, Any] | None:
    for cs in (pod.get("status") or {}).get("initContainerStatuses") or []:
        if cs.get("name") == container:
            return cs  # type: ignore[no-any-return]
    return None


def _exit(term: Mapping[str, Any]) -> str:
    code = term.get("exitCode")
    reason = term.get("reason") or ""
    return f"exited {code}" + (f" ({reason})" if reason and reason not in ("Error", "Completed")
                               else "")


def migration_verdict(pod: Mapping[str, Any], *, allow_restart: bool = False,
                      container: str = MIGRATION_CONTAINER) -> MigrationVerdict:
    """Whether the pod's migration container succeeded, failed for good, or may still
    succeed. ``allow_restart``: a failed run that the kubelet restarts is waited for
    (until CrashLoopBackOff) and a later success passes."""
    cs = _status(pod, container)
    if cs is None:
        return MigrationVerdict("pending", f"{container} has no status yet")
    restarts = int(cs.get("restartCount") or 0)
    state = cs.get("state") or {}
    term = state.get("terminated") or {}
    last = (cs.get("lastState") or {}).get("terminated") or {}
    waiting = (state.get("waiting") or {}).get("reason") or ""
    if term and term.get("exitCode") not in (0, None):
        return MigrationVerdict("failed", f"{container} {_exit(term)}", restarts)
    if waiting in HOPELESS:
        detail = f"; last run {_exit(last)}" if last else ""
        return MigrationVerdict("failed", f"{container} is in {waiting} after {restarts} "
                                          f"restart(s){detail}", restarts)
    earlier_failure = bool(last) and last.get("exitCode") not in (0, None)
    if term and term.get("exitCode") == 0:
        if earlier_failure or restarts:
            why = f"an earlier run {_exit(last)}" if last else f"{restarts} restart(s)"
            return MigrationVerdict("passed-after-restart",
                                    f"{container} succeeded only after {why}", restarts)
        return MigrationVerdict("succeeded", f"{container} exited 0", restarts)
    if earlier_failure and not allow_restart:
        return MigrationVerdict("failed", f"{container} {_exit(last)} and was restarted "
                                          f"({restarts} restart(s))", restarts)
    phase = "running" if "running" in state else "pending"
    return MigrationVerdict(phase, f"{container} {phase}" + (f" ({waiting})" if waiting else ""),
                            restarts)


def restart_failure(verdict: MigrationVerdict, *, allow_restart: bool) -> str | None:
    """Why a migration that passed only after a restart fails the upgrade (None: it
    does not, or the operator accepted restarts)."""
    if verdict.state != "passed-after-restart" or allow_restart:
        return None
    return (f"{verdict.reason}: production would have needed the same restart "
            "(--rehearse-allow-migration-restart accepts it)")


def log_tail(text: str, lines: int = MESSAGE_LINES) -> list[str]:
    """The last non-empty lines of a container log, kubelet timestamps stripped."""
    kept = []
    for line in (text or "").splitlines():
        line = line.rstrip()
        head, _, rest = line.partition(" ")
        if rest and head[:4].isdigit() and "T" in head:  # 2026-12-04T11:00:00.1Z message
            line = rest
        if line.strip():
            kept.append(line)
    return kept[-lines:]


def failure_message(step: str, verdict: MigrationVerdict, logs: Mapping[str, str]) -> str:
    """One failure: what happened, then the last lines of the current (else previous) log."""
    text = f"{step}: the migration failed: {verdict.reason}"
    for which in ("current", "previous"):
        tail = log_tail(logs.get(which, ""))
        if tail:
            return f"{text}; last lines of the {which} {MIGRATION_CONTAINER} log: " + \
                " | ".join(tail)
    return f"{text}; no {MIGRATION_CONTAINER} log could be read"


def suite_skip_reason(upgrade_error: str, *, is_upgrade_check: bool) -> str | None:
    """Why a test must not run after the upgrade (None: it runs). Only the upgrade's own
    check runs after a failed upgrade: it fails and says why."""
    if not upgrade_error or is_upgrade_check:
        return None
    first = " ".join(upgrade_error.split())
    return f"{SKIP_PREFIX}: {first[:240]}"
