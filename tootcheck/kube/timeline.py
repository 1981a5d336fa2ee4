"""The e2e time on paper: the bring-up plan scheduled on a simulated clock (pure).

``tootcheck preflight e2e --plan`` prints it: each phase with what it needs, its
expected seconds (``Phase.expected``: 2 cores, warm image cache), its wait budget
(the timeout, the worst case before it fails), and when it would start and end
with :data:`~tootcheck.kube.plan.WORKERS` phases at once, as the engine runs them;
then the critical path and the expected time to a deployed cluster. The live
suites' own time is added from :data:`SUITES_EXPECTED_S` to give zero to verdict.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from tootcheck.kube import plan
from tootcheck.waiting import TIMEOUTS

# The live suites after the bring-up (gate mode: HTTPS, streaming, Sidekiq, persistence,
# OIDC, mail, federation, Web Push, in-container, drift, live policy): an estimate,
# dominated by the bounded waits for delivered jobs, mails and pushes.
SUITES_EXPECTED_S = 120.0


@dataclass(frozen=True)
class Row:
    phase: plan.Phase
    start: float
    end: float
    budget: float
    critical: bool


@dataclass(frozen=True)
class Timeline:
    rows: list[Row]
    critical_path: list[str]
    bringup_s: float  # makespan of the bring-up with the engine's workers
    critical_s: float  # the critical path's expected seconds (the floor with enough workers)
    worst_case_s: float  # the critical path's budgets: the longest a run can wait before it fails
    suites_s: float
    workers: int

    @property
    def verdict_s(self) -> float:
        return self.bringup_s + self.suites_s


def timeline(phases: Sequence[plan.Phase] = plan.KIND_PLAN, *, workers: int = plan.WORKERS,
             timeouts: Mapping[str, float] = TIMEOUTS,
             suites_s: float = SUITES_EXPECTED_S) -> Timeline:
    expected = {p.name: p.expected for p in phases}
    times = plan.simulate(phases, expected, workers=workers)
    path, critical_s = plan.critical_path(phases, expected)
    budgets = {p.name: plan.budget(p, timeouts) for p in phases}
    rows = [Row(p, *times[p.name], budgets[p.name], p.name in path)
            for p in sorted(plan.order(phases), key=lambda p: (times[p.name][0], p.name))]
    return Timeline(rows, path, max((e for _, e in times.values()), default=0.0), critical_s,
                    sum(budgets[n] for n in path), suites_s, workers)


def _clock(seconds: float) -> str:
    return f"{int(seconds) // 60}:{int(seconds) % 60:02d}"


def lines(t: Timeline) -> list[str]:
    out = [f"bring-up plan: {len(t.rows)} phases, {t.workers} at once where their needs allow "
           "(expected = 2-core runner, warm image cache; budget = the wait's timeout)",
           f"  {'phase':18} {'start':>6} {'end':>6} {'expected':>9} {'budget':>8}  needs"]
    for row in t.rows:
        mark = "*" if row.critical else " "
        out.append(f"{mark} {row.phase.name:18} {_clock(row.start):>6} {_clock(row.end):>6} "
                   f"{row.phase.expected:8.0f}s {row.budget:7.0f}s  {', '.join(row.phase.needs) or '-'}")
    out += [
        f"critical path (*): {' -> '.join(t.critical_path)}: {t.critical_s:.0f}s expected, "
        f"{t.worst_case_s:.0f}s of budgets",
        f"bring-up: {_clock(t.bringup_s)} expected; live suites: {_clock(t.suites_s)} expected; "
        f"zero to verdict: {_clock(t.verdict_s)} expected",
    ]
    return out
