"""One rule over one bundle: its subjects, the findings it yields and its results,
kept compact (a passing subject is its object and container name).

The engine (``tootcheck.policy.engine``) runs every rule this way, in one process or
split over two (``tootcheck.policy.splitrun``); both import from here.
"""

from __future__ import annotations

import datetime as dt
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tootcheck.errors import BadInput
from tootcheck.model import Severity
from tootcheck.policy.bundle import Bundle, FieldPath, K8sObject, OutsideSlice, fmt_path
from tootcheck.policy.k8s import WORKLOAD_KINDS, workloads
from tootcheck.policy.registry import Rule
from tootcheck.policy.types import Context, Hit, Subject, subject_id
from tootcheck.policy.waivers import Waiver, Waivers


@dataclass(slots=True)  # one per finding
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
        return status_of(self.rule, self.findings) if self.findings else "pass"

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
        return subject_id(self.objs[i].id, self.containers[i], self.label)


def status_of(rule: Rule, findings: list[Finding]) -> str:
    """A subject's status from its (non-empty) findings, as :attr:`SubjectResult.status`."""
    if any(not f.suppressed for f in findings):
        return _STATUS[rule.severity]
    return "suppressed"


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
    except (BadInput, OutsideSlice):
        raise  # a broken project schema (the input is wrong, not the object), or a
        # question a namespace slice cannot answer (streamrun then gates the file whole)
    except Exception as exc:  # a rule bug is a failing finding, never a traceback
        frame = traceback.extract_tb(exc.__traceback__)[-1]
        return [Hit(f"rule raised {type(exc).__name__}: {exc} "
                    f"({Path(frame.filename).name}:{frame.lineno})")]


def distinct_ids(bundle: Bundle) -> bool:
    """Whether no two objects share an id and no id holds ``:``: then two subjects have
    the same id exactly when they are the same object and container name."""
    found = bundle.cache.get("distinct-ids")
    if found is None:
        ids = {o.id for o in bundle.objects}
        found = bundle.cache["distinct-ids"] = (
            len(ids) == len(bundle.objects) and not any(":" in i for i in ids))
    return bool(found)


def evaluate_rule(r: Rule, ctx: Context, waivers: Waivers, today: dt.date,
                  only: Only | None = None) -> Batch:
    """One rule over one bundle (over the objects ``only`` gives, when it is given)."""
    batch = Batch(ctx.bundle.label)
    # subject (its id, or the same as a key when ids are distinct) -> its position: a
    # duplicate subject joins the first
    seen: dict[object, int] = {}
    by_id = not distinct_ids(ctx.bundle)
    for subject in subjects_for(r, ctx.bundle, ctx, only):
        cname = subject.container.name if subject.container else None
        key = subject.id if by_id else (id(subject.obj), cname)
        at = seen.get(key)
        if at is None:
            at = seen[key] = len(batch.objs)
            batch.objs.append(subject.obj)
            batch.containers.append(cname)
        hits = _run_rule(r, subject, ctx)
        sid = subject.id if hits else ""
        for hit in hits:
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
