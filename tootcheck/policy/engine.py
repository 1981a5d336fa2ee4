"""The policy engine: runs the registered rules over one or more bundles, attaches
rule metadata, object, line and waiver status to each finding, and says which
rules matched nothing."""

from __future__ import annotations

import datetime as dt
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tootcheck.errors import BadInput
from tootcheck.model import Severity
from tootcheck.policy.bundle import Bundle, FieldPath, K8sObject, fmt_path
from tootcheck.policy.config import PolicyConfig
from tootcheck.policy.k8s import WORKLOAD_KINDS, workloads
from tootcheck.policy.registry import Rule, all_rules
from tootcheck.policy.schema import SCHEMA_DIR, schema_version
from tootcheck.policy.types import Context, Hit, Subject
from tootcheck.policy.waivers import Waiver, WaiverProblem, Waivers
from tootcheck.versions import KUBERNETES

__all__ = ["Context", "Finding", "PolicyRun", "RuleOutcome", "Subject", "SubjectResult",
           "evaluate", "subjects_for"]

NO_MATCH = "no matching objects"


@dataclass(slots=True)  # one per finding and one per rule x subject: many, kept to the end
class Finding:
    rule: Rule
    subject_id: str
    obj: K8sObject
    container: str | None
    path: FieldPath
    message: str
    label: str = ""
    waiver: Waiver | None = None
    waiver_expired: bool = False

    @property
    def severity(self) -> Severity:
        return self.rule.severity

    @property
    def suppressed(self) -> bool:
        return self.waiver is not None and not self.waiver_expired

    @property
    def object_id(self) -> str:
        return self.obj.id

    @property
    def path_text(self) -> str:
        return fmt_path(self.path)

    @property
    def line(self) -> int:
        return self.obj.line_of(self.path) if self.obj.line else 0

    def text(self) -> str:
        """One line in kube-linter's shape: object, message, rule, severity, path, remediation."""
        where = f"(object: {self.obj.id} {self.obj.api_version})"
        if self.container:
            where += f" container {self.container!r}"
        return (f"{where} {self.message} (rule: {self.rule.id}, severity: "
                f"{self.severity.value}, path: {self.path_text or '-'}, remediation: "
                f"{self.rule.remediation})")


@dataclass(slots=True)
class SubjectResult:
    rule: Rule
    subject_id: str
    obj: K8sObject
    container: str | None
    findings: list[Finding] = field(default_factory=list)

    @property
    def active(self) -> list[Finding]:
        return [f for f in self.findings if not f.suppressed]

    @property
    def suppressed(self) -> list[Finding]:
        return [f for f in self.findings if f.suppressed]

    @property
    def status(self) -> str:
        if not self.findings:  # the common case, without building the lists
            return "pass"
        if self.active:
            return {Severity.ERROR: "fail", Severity.WARN: "warn",
                    Severity.INFO: "info"}[self.rule.severity]
        return "suppressed"

    def failed(self, strict: bool) -> bool:
        return self.status == "fail" or (strict and self.status == "warn")

    @property
    def test_id(self) -> str:
        return f"{self.rule.id}[{self.subject_id}]"


_STATUS = {Severity.ERROR: "fail", Severity.WARN: "warn", Severity.INFO: "info"}


@dataclass(slots=True, eq=False)
class Batch:
    """One rule's results over one bundle, compact: a passing subject is its object and
    container name (two list slots), not an object of its own."""

    label: str
    objs: list[K8sObject] = field(default_factory=list)
    containers: list[str | None] = field(default_factory=list)
    findings: dict[int, list[Finding]] = field(default_factory=dict)  # by position

    def subject_id(self, i: int) -> str:
        found = self.findings.get(i)
        if found:
            return found[0].subject_id
        text = self.objs[i].id
        if self.containers[i] is not None:
            text += f":{self.containers[i]}"
        return f"{text}@{self.label}" if self.label else text


@dataclass(eq=False)
class RuleOutcome:
    """A rule's results; :attr:`results` builds them on demand, the counts are kept."""

    rule: Rule
    not_run: str | None = None  # why the rule did not run (mode)
    _batches: list[Batch] = field(default_factory=list, repr=False)
    _counts: Counter[str] = field(default_factory=Counter, repr=False)

    def add(self, batch: Batch) -> None:
        self._batches.append(batch)
        statuses = [_status(self.rule, found) for found in batch.findings.values()]
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
        return [f for b in self._batches for found in b.findings.values() for f in found]


def _status(rule: Rule, findings: list[Finding]) -> str:
    """A subject's status from its (non-empty) findings, as :attr:`SubjectResult.status`."""
    if any(not f.suppressed for f in findings):
        return _STATUS[rule.severity]
    return "suppressed"


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


Only = Callable[[frozenset[str] | None], list[K8sObject]]


def subjects_for(r: Rule, bundle: Bundle, ctx: Context, only: Only | None = None
                 ) -> list[Subject]:
    """The rule's subjects in bundle order; ``only`` (the objects of a set of kinds that
    this process evaluates, when the run is split over two) narrows them."""
    out: list[Subject] = []
    for obj in only(r.kinds) if only is not None else objects_for(r.kinds, bundle):
        if r.scope == "container":
            out.extend(Subject(obj, c, bundle) for c in ctx.containers(obj))
        else:
            out.append(Subject(obj, None, bundle))
    if r.applies is not None:
        out = [s for s in out if r.applies(s, ctx)]
    return out


def objects_for(kinds: frozenset[str] | None, bundle: Bundle) -> list[K8sObject]:
    """The objects of ``kinds`` (None: all) in bundle order, workloads only where they
    run pods (``workloads``); selected once per set of kinds, for all the rules."""
    key = ("objects-for", kinds)
    found: list[K8sObject] | None = bundle.cache.get(key)
    if found is None:
        found = bundle.objects if kinds is None else [o for o in bundle.objects
                                                       if o.kind in kinds]
        if kinds is None or kinds & WORKLOAD_KINDS:
            keep = {id(w) for w in workloads(bundle)}
            found = [o for o in found if o.kind not in WORKLOAD_KINDS or id(o) in keep]
        bundle.cache[key] = found
    return found


def _run_rule(r: Rule, subject: Subject, ctx: Context) -> list[Hit]:
    try:
        return list(r.fn(subject, ctx))
    except BadInput:
        raise  # e.g. a broken project schema: the input is wrong, not the object
    except Exception as exc:  # a rule bug is a failing finding, never a traceback
        frame = traceback.extract_tb(exc.__traceback__)[-1]
        return [Hit(f"rule raised {type(exc).__name__}: {exc} "
                    f"({Path(frame.filename).name}:{frame.lineno})")]


def evaluate_rule(r: Rule, ctx: Context, waivers: Waivers, today: dt.date,
                  only: Only | None = None) -> Batch:
    """One rule over one bundle (over the objects ``only`` gives, when it is given)."""
    batch = Batch(ctx.bundle.label)
    seen: dict[str, int] = {}  # subject id -> position (a duplicate joins the first)
    for subject in subjects_for(r, ctx.bundle, ctx, only):
        sid = subject.id
        at = seen.get(sid)
        cname = subject.container.name if subject.container else None
        if at is None:
            at = seen[sid] = len(batch.objs)
            batch.objs.append(subject.obj)
            batch.containers.append(cname)
        for hit in _run_rule(r, subject, ctx):
            container = hit.container or cname
            finding = Finding(r, sid, subject.obj, container, hit.path,
                              " ".join(hit.message.split()), ctx.bundle.label)
            waiver = waivers.find(r.id, subject.obj.id, container, ctx.bundle.label)
            if waiver is not None:
                waiver.matched += 1
                finding.waiver = waiver
                finding.waiver_expired = waiver.is_expired(today)
            batch.findings.setdefault(at, []).append(finding)
    return batch


def evaluate(bundles: Sequence[Bundle], config: PolicyConfig, *,
             waivers: Waivers | None = None, kube_version: str = KUBERNETES,
             rules: Iterable[Rule] | None = None, today: dt.date | None = None,
             schema_dir: Path = SCHEMA_DIR) -> PolicyRun:
    started = time.perf_counter()
    schema_version(kube_version)  # an unsupported version is bad input, before any rule runs
    waivers = waivers if waivers is not None else Waivers()
    today = today or dt.date.today()
    for w in waivers.entries:
        w.matched = 0
    rule_list = list(rules) if rules is not None else all_rules()
    outcomes: list[RuleOutcome] = []
    contexts = [Context(b, config, kube_version, schema_dir) for b in bundles]
    jobs: list[tuple[RuleOutcome, Context]] = []
    for r in rule_list:
        outcome = RuleOutcome(r)
        outcomes.append(outcome)
        if not r.in_profile(config.profile):
            outcome.not_run = f"profile {r.profile} (this run: {config.profile})"
            continue
        modes = {b.mode for b in bundles}
        if not modes & r.modes:
            outcome.not_run = f"runs only {'/'.join(sorted(r.modes))}"
            continue
        for ctx in contexts:
            if ctx.mode in r.modes:
                jobs.append((outcome, ctx))
    from tootcheck.policy.splitrun import run_jobs  # a large run: on two cores

    for (outcome, _), batch in zip(jobs, run_jobs(jobs, waivers, today), strict=True):
        outcome.add(batch)
    present = {obj.id for bundle in bundles for obj in bundle}
    not_run = {o.rule.id for o in outcomes if o.not_run}
    return PolicyRun(outcomes, list(bundles), waivers, waivers.problems(today, present, not_run),
                     kube_version, time.perf_counter() - started)
