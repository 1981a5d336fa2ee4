"""Running the rules of a large run on two cores: this process evaluates every rule on
the first half of the objects while a forked worker evaluates them on the second half.

The worker sees the whole bundle (it is forked once the objects are parsed), so rules
that look across objects (references, namespaces, the env a ConfigMap provides) find
what they would in one process; each process only evaluates the subjects of its own
objects. A subject's results stay where they were: the halves are contiguous in
bundle order, so each rule's results are the first half's followed by the second's,
exactly the order of one process. The worker sends back positions, container names
and the few findings (not objects), and how often it used each waiver.

The run stays in one process when it is small, when one core is all there is
(``TOOTCHECK_PARSE_WORKERS=1`` says so too), when an object id occurs in both halves
(its subjects must be one result), or when the worker fails (then this process
evaluates the second half too, so errors read as they would have).
"""

from __future__ import annotations

import bisect
import datetime as dt
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from tootcheck.policy.envmerge import ENVS
from tootcheck.policy.ruleeval import (
    Batch,
    Finding,
    Only,
    distinct_ids,
    evaluate_rule,
    objects_for,
)
from tootcheck.policy.splitparse import beside_a_worker, two_cores, weighted_cut

if TYPE_CHECKING:
    from tootcheck.policy.bundle import Bundle, K8sObject
    from tootcheck.policy.registry import Rule
    from tootcheck.policy.types import Context
    from tootcheck.policy.waivers import Waivers

MIN_SPLIT_OBJECTS = 5000  # below this, starting a worker costs more than it saves
CHUNK_OBJECTS = 2000  # objects whose per-object derived data is kept at once
Job = tuple["Rule", "Context"]  # a rule over a bundle
# A finding as the worker sends it: subject id, object position, container, path,
# message, waiver position (-1: none), waiver expired.
_Sent = tuple[str, int, "str | None", tuple[Any, ...], str, int, bool]
_State: dict[str, Any] = {}  # what the forked worker inherits


def halves(bundle: Bundle) -> int | None:
    """Where the second half of ``bundle`` starts (split by the length of the objects'
    text, which is what their rules cost), or None when an object id occurs in both."""
    cut = weighted_cut([o.span.end - o.span.start if o.span is not None else 1000
                        for o in bundle.objects])
    first, second = bundle.objects[:cut], bundle.objects[cut:]
    if {o.id for o in first} & {o.id for o in second}:
        return None
    return cut


Range = tuple[int, int]  # positions lo..hi of a bundle's objects


class _Chunks:
    """A bundle's objects at positions ``lo``..``hi`` in chunks of CHUNK_OBJECTS (one
    chunk when an object id occurs twice: a subject then never spans two chunks), and
    the objects of a set of kinds in each (cut by bisection of ``objects_for``'s list)."""

    def __init__(self, bundle: Bundle, lo: int, hi: int) -> None:
        self.bundle = bundle
        step = CHUNK_OBJECTS if distinct_ids(bundle) else max(hi - lo, 1)
        self.bounds = [*range(lo, hi, step), hi] if hi > lo else [lo, hi]
        self._cuts: dict[frozenset[str] | None, list[int]] = {}
        self._pos: dict[int, int] | None = None

    def __len__(self) -> int:
        return len(self.bounds) - 1

    def only(self, k: int) -> Only | None:
        """The objects of chunk ``k`` (None: the chunk is the whole bundle)."""
        if (self.bounds[k], self.bounds[k + 1]) == (0, len(self.bundle)):
            return None

        def only(kinds: frozenset[str] | None) -> list[K8sObject]:
            found = objects_for(kinds, self.bundle)
            cuts = self._cuts.get(kinds)
            if cuts is None:
                if self._pos is None:
                    self._pos = {id(o): i for i, o in enumerate(self.bundle.objects)}
                pos = self._pos
                cuts = self._cuts[kinds] = [
                    bisect.bisect_left(found, b, key=lambda o: pos[id(o)]) for b in self.bounds]
            return found[cuts[k]:cuts[k + 1]]

        return only


def evaluate_jobs(jobs: Sequence[Job], waivers: Waivers, today: dt.date,
                  ranges: dict[int, Range] | None = None) -> list[Batch]:
    """Each job's batch over the objects of its bundle's range (``ranges`` by bundle id;
    None: all), a chunk of objects at a time: every rule over a chunk, then the next, so
    what the rules derive per object (each container's merged env, the largest) is
    dropped after its chunk instead of kept for the whole run. A rule's results are its
    chunks' in order: what one pass over all the objects gives."""
    bundles = list({id(ctx.bundle): ctx.bundle for _, ctx in jobs}.values())
    out: list[Batch | None] = [None] * len(jobs)
    for b in bundles:
        lo, hi = ranges[id(b)] if ranges is not None else (0, len(b))
        mine = [i for i, (_, ctx) in enumerate(jobs) if ctx.bundle is b]
        chunks = _Chunks(b, lo, hi)
        for k in range(len(chunks)):
            only = chunks.only(k)
            for i in mine:
                r, ctx = jobs[i]
                batch = evaluate_rule(r, ctx, waivers, today, only)
                before = out[i]
                out[i] = batch if before is None else _joined(before, batch)
            b.cache.pop(ENVS, None)
    return [b if b is not None else Batch(ctx.bundle.label) for b, (_, ctx)
            in zip(out, jobs, strict=True)]


def _joined(batch: Batch, more: Batch) -> Batch:
    """``more``'s results after ``batch``'s (positions of findings shifted)."""
    shift = len(batch.objs)
    batch.objs.extend(more.objs)
    batch.containers.extend(more.containers)
    batch.findings.update((at + shift, found) for at, found in more.findings.items())
    return batch


def run_jobs(jobs: Sequence[Job], waivers: Waivers, today: dt.date) -> list[Batch]:
    """Each job's batch (rule over bundle), on two cores when the run is large."""
    bundles = list({id(ctx.bundle): ctx.bundle for _, ctx in jobs}.values())
    cuts: dict[int, int] = {}  # by bundle id: where its second half starts
    if jobs and two_cores() and sum(len(b) for b in bundles) >= MIN_SPLIT_OBJECTS:
        for b in bundles:
            cut = halves(b)
            if cut is None:  # an object id in both halves: one process
                cuts = {}
                break
            cuts[id(b)] = cut
    if not cuts:
        return evaluate_jobs(jobs, waivers, today)
    firsts = {id(b): (0, cuts[id(b)]) for b in bundles}
    seconds = {id(b): (cuts[id(b)], len(b)) for b in bundles}
    _State.update(jobs=jobs, waivers=waivers, today=today, ranges=seconds)
    try:
        head, received = beside_a_worker(
            lambda: evaluate_jobs(jobs, waivers, today, firsts), _second_half, ())
    finally:
        _State.clear()
    sent, used = received or (None, [])  # the worker failed: this process does its half too
    if sent is None:
        tail = evaluate_jobs(jobs, waivers, today, seconds)
    else:
        for w, n in zip(waivers.entries, used, strict=True):
            w.matched += n
        tail = [_received(item, r, ctx, waivers) for item, (r, ctx) in zip(sent, jobs,
                                                                           strict=True)]
    return [_joined(batch, more) for batch, more in zip(head, tail, strict=True)]


def _second_half() -> tuple[list[Any], list[int]]:
    """The worker: every job over the second half, as plain data."""
    jobs: Sequence[Job] = _State["jobs"]
    waivers: Waivers = _State["waivers"]
    at_waiver = {id(w): i for i, w in enumerate(waivers.entries)}
    positions: dict[int, dict[int, int]] = {}
    out: list[Any] = []
    batches = evaluate_jobs(jobs, waivers, _State["today"], _State["ranges"])
    for (_, ctx), batch in zip(jobs, batches, strict=True):
        pos = positions.get(id(ctx.bundle))
        if pos is None:
            pos = positions[id(ctx.bundle)] = {id(x): i for i, x in
                                               enumerate(ctx.bundle.objects)}
        sent: dict[int, list[_Sent]] = {
            at: [(f.subject_id, pos[id(f.obj)], f.container, f.path, f.message,
                  at_waiver[id(f.waiver)] if f.waiver is not None else -1, f.waiver_expired)
                 for f in found]
            for at, found in batch.findings.items()}
        out.append(([pos[id(x)] for x in batch.objs], batch.containers, sent))
    return out, [w.matched for w in waivers.entries]


def _received(item: Any, rule: Rule, ctx: Context, waivers: Waivers) -> Batch:
    objects = ctx.bundle.objects
    positions, containers, sent = item
    batch = Batch(ctx.bundle.label, [objects[i] for i in positions], containers)
    for at, found in sent.items():
        batch.findings[at] = [
            Finding(rule, sid, objects[i], container, path, message,
                    ctx.bundle.label, waivers.entries[w] if w >= 0 else None, expired)
            for sid, i, container, path, message, w, expired in found]
    return batch
