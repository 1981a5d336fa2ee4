"""Gating a large file a few namespaces at a time, so that its objects are never all
held at once: each batch of whole namespaces (``streamplan``) is parsed, evaluated by
every rule with the cluster-scoped objects beside it, and its objects are then cut down
to what the reports show (kind, name, namespace, lines of the findings). On two cores a
forked worker takes the second half of the batches.

This gives what gating the whole file gives, because a rule's result for an object
depends only on the objects of its namespace and the cluster-scoped ones, except for two
lookups, which the bundle of a batch refuses to answer (``OutsideSlice``): a Mastodon
container of another namespace (``k8s.mastodon_containers``) and a Traefik Middleware
whose name another namespace could give (``rules._common``). Then, or when an object is
not what the plan guessed, or a document needs PyYAML's reading (and maybe its error),
the plan is abandoned and the caller gates the file whole: the same results, slower.
Results are put back in file order per rule, and each cluster-scoped object is a
subject once (in the first batch).
"""

from __future__ import annotations

import datetime as dt
import heapq
import itertools
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tootcheck.errors import BadInput
from tootcheck.policy import fastparse
from tootcheck.policy.bundle import (
    Bundle,
    K8sObject,
    NamespaceSlice,
    OutsideSlice,
    collector_paused,
    interned,
)
from tootcheck.policy.config import PolicyConfig
from tootcheck.policy.engine import PolicyRun, finished, prepared, rule_outcomes
from tootcheck.policy.registry import Rule
from tootcheck.policy.ruleeval import Batch, Finding, evaluate_rule, objects_for
from tootcheck.policy.splitparse import beside_a_worker, two_cores, weighted_cut
from tootcheck.policy.streamplan import SHARED, Doc, Plan, belongs, read_plan
from tootcheck.policy.types import Context
from tootcheck.policy.waivers import Waivers
from tootcheck.redaction import register_values
from tootcheck.versions import KUBERNETES

# From this size on the stream is as fast for a file whose namespaces are contiguous,
# at most a fifth slower where they alternate, and holds half the memory or less; below
# it, gating the file whole stays under about 150 MB (docs/performance.md).
MIN_STREAM_BYTES = 16 << 20


class Abandon(Exception):
    """The plan does not hold: gate the file whole."""


def stream_gate(path: Path, source: str, config: PolicyConfig, *,
                waivers: Waivers | None = None, kube_version: str = KUBERNETES,
                rules: Sequence[Rule] | None = None, today: dt.date | None = None,
                min_bytes: int | None = None, why: list[str] | None = None
                ) -> PolicyRun | None:
    """The run over the file ``path`` (shown as ``source``), batch by batch. None when
    it is smaller than ``min_bytes`` (default MIN_STREAM_BYTES), when
    ``TOOTCHECK_STREAM=0``, or when it cannot be gated that way: then gate it whole
    (``why`` gets the reason, for a file large enough to have been tried)."""
    started = time.perf_counter()
    if os.environ.get("TOOTCHECK_STREAM") == "0":  # gate every file whole
        return None
    try:
        if not path.is_file() or path.stat().st_size < (
                MIN_STREAM_BYTES if min_bytes is None else min_bytes):
            return None
    except OSError:
        return None
    notes = why if why is not None else []
    waivers, today = prepared(kube_version, waivers, today)
    plan = read_plan(path, config.namespace, workers=2 if two_cores() else 1)
    if isinstance(plan, str) or len(plan.batches) < 2:
        notes.append(plan if isinstance(plan, str) else
                     "its namespaces make one batch (one namespace holds nearly everything)")
        return None
    outcomes = rule_outcomes(rules, config, {"offline"})
    run = _Run(path, source, plan, config, kube_version,
               [o.rule for o in outcomes if not o.not_run], waivers, today)
    try:
        # A batch's objects and caches hold no reference cycles: reference counting
        # frees them, and collections would walk the results kept so far again and again
        # (2 to 4 CPU s at 100,000 objects, for no memory).
        with collector_paused():
            batches, objects = run.everything()
            for outcome, batch in zip((o for o in outcomes if not o.not_run), batches,
                                      strict=True):
                outcome.add(batch)
            return finished(outcomes, [Bundle(objects, sources=[source])], waivers,
                            kube_version, today, started)
    except Abandon as exc:
        for w in waivers.entries:
            w.matched = 0
        notes.append(str(exc))
        return None


class _Run:
    def __init__(self, path: Path, source: str, plan: Plan, config: PolicyConfig,
                 kube_version: str, rules: list[Rule], waivers: Waivers,
                 today: dt.date) -> None:
        self.path, self.source, self.plan = path, source, plan
        self.config, self.kube_version, self.rules = config, kube_version, rules
        self.waivers, self.today = waivers, today
        self.namespaces = frozenset(d.group for d in plan.docs if d.group != SHARED)
        self.secrets: list[str] = []

    def everything(self) -> tuple[list[Batch], list[K8sObject]]:
        """Each rule's results over the file, and its objects (cut down), in file order."""
        try:
            return self._everything()
        finally:
            fastparse.forget_lines()

    def _everything(self) -> tuple[list[Batch], list[K8sObject]]:
        shared = self.parse(self.plan.shared)
        batches = self.plan.batches
        cut = _half(batches) if two_cores() else len(batches)
        if cut == len(batches):
            mine = self.batches(batches, shared)
            register_values(self.secrets)
            return _merged(mine.parts, len(self.rules)), mine.objects(shared)
        mine, sent = beside_a_worker(lambda: self.batches(batches[:cut], shared),
                                     self.second_half, (batches[cut:], shared))
        if sent is None:  # the worker failed: its half here
            theirs = self.batches(batches[cut:], shared, first=False)
        elif isinstance(sent, str):  # the worker gave up
            raise Abandon(sent)
        else:
            theirs = self.received(sent)
        register_values(self.secrets)
        objects = sorted([*mine.objects(shared), *theirs.own], key=lambda o: o.doc)
        return _merged(mine.parts + theirs.parts, len(self.rules)), objects

    def parse(self, docs: list[Doc]) -> list[K8sObject]:
        """The objects of ``docs`` (in file order), each checked against the plan's
        guess. Documents next to each other in the file are read in one piece, and the
        pieces are parsed as one text (a batch whose namespaces alternate with others'
        is then not parsed document by document)."""
        runs = _runs(docs)
        fd = os.open(self.path, os.O_RDONLY)
        try:
            texts = [os.pread(fd, run[-1].end - run[0].start, run[0].start).decode()
                     for run in runs]
        except (OSError, UnicodeError) as exc:
            raise Abandon(f"cannot read it again: {exc}") from None
        finally:
            os.close(fd)
        found = self._joined(runs, texts)
        if found is None:  # a piece needs PyYAML's reading: which one, to say where
            found = [obj for run, text in zip(runs, texts, strict=True)
                     for obj in self._piece(run, text)]
        for obj, d in zip(found, docs, strict=True):
            obj.doc = d.position
            if not belongs(obj, d):
                raise Abandon(f"document at line {d.line0 + 1} is not the "
                              f"{d.kind} in {d.group or 'no namespace'} its text "
                              "suggested")
        return found

    def _piece(self, run: list[Doc], text: str) -> list[K8sObject]:
        found = fastparse.document_objects(text, run[0].line0, self.source,
                                           self.config.namespace, self.secrets)
        if found is None or len(found) != len(run):
            raise Abandon(f"a document near line {run[0].line0 + 1} needs PyYAML's reading")
        return found

    def _joined(self, runs: list[list[Doc]], texts: list[str]) -> list[K8sObject] | None:
        """The pieces' objects, parsed as one text, their lines moved back to the
        file's; None when that text does not give one object per document."""
        # The pieces are in file order: each but the first begins with a "---" line, and
        # each but the last ends with a line break, so they stay apart (were two to
        # merge, the count below would not match).
        firsts: list[int] = []  # the line where each piece begins in the joined text
        line = 0
        for text in texts:
            firsts.append(line)
            line += text.count("\n")
        secrets: list[str] = []
        found = fastparse.document_objects("".join(texts), 0, self.source,
                                           self.config.namespace, secrets)
        if found is None or len(found) != sum(len(run) for run in runs):
            return None
        self.secrets.extend(secrets)
        objects = iter(found)
        for run, first in zip(runs, firsts, strict=True):
            shift = run[0].line0 - first
            for obj in itertools.islice(objects, len(run)):
                obj.line += shift
                if obj.span is not None:
                    obj.span.line0 += shift
        return found

    def batches(self, batches: list[list[Doc]], shared: list[K8sObject],
                first: bool = True) -> _Half:
        """Every rule over each batch (the shared objects' subjects in the first)."""
        half = _Half()
        for k, docs in enumerate(batches):
            own, parts = self.batch(docs, shared, first and k == 0)
            half.parts.append(parts)
            half.own.extend(own)
        return half

    def batch(self, docs: list[Doc], shared: list[K8sObject],
              with_shared: bool) -> tuple[list[K8sObject], list[Batch]]:
        """Every rule over one batch: its objects (cut down) and each rule's results."""
        own = self.parse(docs)
        objects = list(heapq.merge(own, shared, key=lambda o: o.doc)) if shared else own
        bundle = Bundle(objects, sources=[self.source])
        bundle.slice = NamespaceSlice(frozenset(d.group for d in docs), self.namespaces)
        ctx = Context(bundle, self.config, self.kube_version)
        subjects = {id(o) for o in (objects if with_shared else own)}
        picked: dict[frozenset[str] | None, list[K8sObject]] = {}

        def only(kinds: frozenset[str] | None) -> list[K8sObject]:
            if kinds not in picked:
                picked[kinds] = [o for o in objects_for(kinds, bundle) if id(o) in subjects]
            return picked[kinds]

        try:
            parts = [evaluate_rule(r, ctx, self.waivers, self.today, only)
                     for r in self.rules]
        except OutsideSlice as exc:
            raise Abandon(f"a rule reads beyond a namespace ({exc})") from None
        except BadInput:
            raise Abandon("the input is bad (worded by gating it whole)") from None
        _cut_down(own, parts)
        return own, parts

    def second_half(self, batches: list[list[Doc]], shared: list[K8sObject]) -> Any:
        """The worker: its results as plain data, or why it gave up."""
        try:
            half = self.batches(batches, shared, first=False)
        except Abandon as exc:
            return str(exc)
        at_waiver = {id(w): i for i, w in enumerate(self.waivers.entries)}
        objects = [(o.doc, o.data, o.line, o.field_lines,
                    {k: o.__dict__[k] for k in _CACHED if k in o.__dict__}) for o in half.own]
        per_rule = []
        for j in range(len(self.rules)):
            items = []
            for parts in half.parts:
                batch = parts[j]
                items.append(([o.doc for o in batch.objs], batch.containers, {
                    at: [(f.subject_id, f.obj.doc, f.container, f.path, f.message,
                          at_waiver[id(f.waiver)] if f.waiver is not None else -1,
                          f.waiver_expired) for f in found]
                    for at, found in batch.findings.items()}))
            per_rule.append(items)
        return objects, per_rule, self.secrets, [w.matched for w in self.waivers.entries]

    def received(self, sent: Any) -> _Half:
        objects, per_rule, secrets, used = sent
        self.secrets.extend(secrets)
        for w, n in zip(self.waivers.entries, used, strict=True):
            w.matched += n
        half = _Half()
        by_doc: dict[int, K8sObject] = {}
        for doc, data, line, lines, cached in objects:
            obj = K8sObject(data=data, source=self.source, doc=doc, line=line,
                            default_namespace=self.config.namespace, field_lines=lines)
            obj.__dict__.update(cached)  # the cached properties, as the worker had them
            by_doc[doc] = obj
            half.own.append(obj)
        rows: list[list[Batch]] = [[] for _ in per_rule[0]] if per_rule else []
        for r, items in zip(self.rules, per_rule, strict=True):
            for k, (docs, containers, found) in enumerate(items):
                batch = Batch("", [by_doc[d] for d in docs], containers)
                for at, hits in found.items():
                    batch.findings[at] = [
                        Finding(r, sid, by_doc[d], container, fpath, message, "",
                                self.waivers.entries[w] if w >= 0 else None, expired)
                        for sid, d, container, fpath, message, w, expired in hits]
                rows[k].append(batch)
        half.parts = rows
        return half


class _Half:
    """What one process evaluated: per batch, each rule's results; its objects."""

    def __init__(self) -> None:
        self.parts: list[list[Batch]] = []
        self.own: list[K8sObject] = []

    def objects(self, shared: list[K8sObject]) -> list[K8sObject]:
        return list(heapq.merge(self.own, shared, key=lambda o: o.doc))


def _runs(docs: list[Doc]) -> list[list[Doc]]:
    """``docs`` cut where the next does not begin where the last ends."""
    runs: list[list[Doc]] = []
    for d in docs:
        if runs and runs[-1][-1].end == d.start:
            runs[-1].append(d)
        else:
            runs.append([d])
    return runs


_CACHED = ("id", "kind", "namespace", "name")  # K8sObject properties the worker sends back
# Of the batches' bytes: the worker also sends its results, and this process joins them
# (measured on the 100,000-object mix: the two halves then end together).
MAIN_SHARE = 0.50


def _half(batches: list[list[Doc]]) -> int:
    """Where the worker's batches start (by their bytes), at least one each."""
    cut = weighted_cut([sum(d.end - d.start for d in b) for b in batches], MAIN_SHARE)
    return max(1, min(cut, len(batches) - 1))


SLIM_META = ("name", "generateName", "namespace")


def _cut_down(own: list[K8sObject], parts: list[Batch]) -> None:
    """Keep of each object what the reports read: the lines of its findings first."""
    mine = {id(o) for o in own}
    for batch in parts:
        for found in batch.findings.values():
            for f in found:
                if id(f.obj) in mine:
                    lines = f.obj.field_lines
                    if lines is None:
                        lines = f.obj.field_lines = {}
                    if f.path not in lines:
                        lines[f.path] = f.obj.line_of(f.path)
    for o in own:  # what is kept is interned: the parse did not (kinds recur)
        meta = o.meta
        o.data = {"apiVersion": interned(o.data.get("apiVersion")),
                  "kind": interned(o.data.get("kind")),
                  "metadata": {k: interned(meta[k]) for k in SLIM_META if k in meta}}
        o.__dict__.pop("meta", None)
        o.node = o.span = None


def _merged(parts: list[list[Batch]], rules: int) -> list[Batch]:
    """Each rule's results over all batches, in file order (of the objects' positions;
    an object's subjects stay together, in their order)."""
    out = []
    for j in range(rules):
        batches = [p[j] for p in parts if p[j].objs]
        merged = Batch("")
        if all(a.objs[-1].doc < b.objs[0].doc for a, b in itertools.pairwise(batches)):
            for b in batches:  # each in file order, and one after the other
                shift = len(merged.objs)
                merged.objs.extend(b.objs)
                merged.containers.extend(b.containers)
                merged.findings.update((at + shift, found) for at, found in b.findings.items())
            out.append(merged)
            continue
        entries = sorted((obj.doc, k, i) for k, b in enumerate(batches)
                         for i, obj in enumerate(b.objs))
        for _, k, i in entries:
            b = batches[k]
            found = b.findings.get(i)
            if found:
                merged.findings[len(merged.objs)] = found
            merged.objs.append(b.objs[i])
            merged.containers.append(b.containers[i])
        out.append(merged)
    return out
