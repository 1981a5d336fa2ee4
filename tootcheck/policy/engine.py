"""The policy engine: runs the registered rules over one or more bundles, attaches
rule metadata, object, line and waiver status to each finding, and says which
rules matched nothing."""

from __future__ import annotations

import datetime as dt
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tootcheck.model import Severity
from tootcheck.policy.bundle import Bundle, collector_paused
from tootcheck.policy.config import PolicyConfig
from tootcheck.policy.registry import Rule, all_rules
from tootcheck.policy.ruleeval import (
    Batch,
    Finding,
    SubjectResult,
    status_of,
    subjects_for,
)
from tootcheck.policy.schema import SCHEMA_DIR, load_definitions
from tootcheck.policy.splitrun import run_jobs
from tootcheck.policy.types import Context, Subject
from tootcheck.policy.waivers import WaiverProblem, Waivers
from tootcheck.versions import KUBERNETES

__all__ = ["Context", "Finding", "PolicyRun", "RuleOutcome", "Subject", "SubjectResult",
           "evaluate", "subjects_for"]

NO_MATCH = "no matching objects"


@dataclass(eq=False)
class RuleOutcome:
    """A rule's results; :attr:`results` builds them on demand, the counts are kept."""

    rule: Rule
    not_run: str | None = None  # why the rule did not run (mode)
    _batches: list[Batch] = field(default_factory=list, repr=False)
    _counts: Counter[str] = field(default_factory=Counter, repr=False)

    def add(self, batch: Batch) -> None:
        self._batches.append(batch)
        statuses = [status_of(self.rule, found) for found in batch.findings.values()]
        self._counts.update(statuses)
        self._counts["pass"] += len(batch.objs) - len(statuses)

    @property
    def matched(self) -> int:
        return sum(len(b.objs) for b in self._batches)

    def count(self, status: str) -> int:
        return self._counts[status]

    @property
    def results(self) -> list[SubjectResult]:
        return [SubjectResult(self.rule, b.subject_id(i), obj, b.containers[i],
                              b.findings.get(i, []))
                for b in self._batches for i, obj in enumerate(b.objs)]

    @property
    def findings(self) -> list[Finding]:
        # in result order (a repeated subject may add to an earlier position later)
        return [f for b in self._batches for i in sorted(b.findings) for f in b.findings[i]]


@dataclass
class PolicyRun:
    outcomes: list[RuleOutcome]
    bundles: list[Bundle]
    waivers: Waivers
    waiver_problems: list[WaiverProblem]
    kube_version: str
    duration_s: float = 0.0

    @property
    def findings(self) -> list[Finding]:
        return [f for o in self.outcomes for f in o.findings]

    @property
    def results(self) -> list[SubjectResult]:
        return [r for o in self.outcomes for r in o.results]

    @property
    def objects(self) -> int:
        return sum(len(b) for b in self.bundles)

    def failed(self, strict: bool) -> bool:
        if any(o.count("fail") or (strict and o.count("warn")) for o in self.outcomes):
            return True
        return any(p.severity is Severity.ERROR or (strict and p.severity is Severity.WARN)
                   for p in self.waiver_problems)

    def exit_code(self, strict: bool) -> int:
        return 1 if self.failed(strict) else 0


def evaluate(bundles: Sequence[Bundle], config: PolicyConfig, *,
             waivers: Waivers | None = None, kube_version: str = KUBERNETES,
             rules: Iterable[Rule] | None = None, today: dt.date | None = None,
             schema_dir: Path = SCHEMA_DIR) -> PolicyRun:
    started = time.perf_counter()
    waivers, today = prepared(kube_version, waivers, today)
    outcomes = rule_outcomes(rules, config, {b.mode for b in bundles})
    contexts = [Context(b, config, kube_version, schema_dir) for b in bundles]
    jobs: list[tuple[RuleOutcome, Context]] = [  # each rule over each bundle it runs on
        (o, ctx) for o in outcomes if not o.not_run for ctx in contexts if ctx.mode in o.rule.modes]
    # The rules make few reference cycles, while the collector would walk every result
    # and cached value again and again: it is off while they run.
    with collector_paused():
        batches = run_jobs([(o.rule, ctx) for o, ctx in jobs], waivers, today)
    for (outcome, _), batch in zip(jobs, batches, strict=True):
        outcome.add(batch)
    return finished(outcomes, bundles, waivers, kube_version, today, started)


def prepared(kube_version: str, waivers: Waivers | None,
             today: dt.date | None) -> tuple[Waivers, dt.date]:
    """The run's waivers (their use counts reset) and date; an unsupported Kubernetes
    version is bad input, before any rule runs (its schemas are loaded then)."""
    load_definitions(kube_version)
    waivers = waivers if waivers is not None else Waivers()
    for w in waivers.entries:
        w.matched = 0
    return waivers, today or dt.date.today()


def rule_outcomes(rules: Iterable[Rule] | None, config: PolicyConfig,
                  modes: set[str]) -> list[RuleOutcome]:
    """An outcome per rule; those that do not run here say why (``not_run``)."""
    outcomes: list[RuleOutcome] = []
    for r in list(rules) if rules is not None else all_rules():
        outcome = RuleOutcome(r)
        outcomes.append(outcome)
        if not r.in_profile(config.profile):
            outcome.not_run = f"profile {r.profile} (this run: {config.profile})"
        elif not modes & r.modes:
            outcome.not_run = f"runs only {'/'.join(sorted(r.modes))}"
    return outcomes


def finished(outcomes: list[RuleOutcome], bundles: Sequence[Bundle], waivers: Waivers,
             kube_version: str, today: dt.date, started: float) -> PolicyRun:
    """The run, with the problems of its waivers (unused, expired, ...)."""
    present = {obj.id for bundle in bundles for obj in bundle}
    not_run = {o.rule.id for o in outcomes if o.not_run}
    return PolicyRun(outcomes, list(bundles), waivers, waivers.problems(today, present, not_run),
                     kube_version, time.perf_counter() - started)
