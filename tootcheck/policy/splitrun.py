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

import datetime as dt
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from tootcheck.policy.ruleeval import Batch, Finding, Only, evaluate_rule, objects_for
from tootcheck.policy.splitparse import beside_a_worker

if TYPE_CHECKING:
    from tootcheck.policy.bundle import Bundle, K8sObject
    from tootcheck.policy.registry import Rule
    from tootcheck.policy.types import Context
    from tootcheck.policy.waivers import Waivers

MIN_SPLIT_OBJECTS = 5000  # below this, starting a worker costs more than it saves
Job = tuple["Rule", "Context"]  # a rule over a bundle
# A finding as the worker sends it: subject id, object position, container, path,
# message, waiver position (-1: none), waiver expired.
_Sent = tuple[str, int, "str | None", tuple[Any, ...], str, int, bool]
_State: dict[str, Any] = {}  # what the forked worker inherits


def two_cores() -> bool:
    return (os.cpu_count() or 1) >= 2 and os.environ.get("TOOTCHECK_PARSE_WORKERS") != "1"


def halves(bundle: Bundle) -> tuple[set[int], set[int]] | None:
    """The ids of the objects in the first and the second half of ``bundle`` (split by
    the length of their text, which is what their rules cost), or None when an object
    id occurs in both."""
    weights = [o.span.end - o.span.start if o.span is not None else 1000
               for o in bundle.objects]
    total, run, cut = sum(weights), 0, len(weights)
    for i, w in enumerate(weights):
        run += w
        if run * 2 >= total:
            cut = i + 1
            break
    first, second = bundle.objects[:cut], bundle.objects[cut:]
    if {o.id for o in first} & {o.id for o in second}:
        return None
    return {id(o) for o in first}, {id(o) for o in second}


def _restricted(bundle: Bundle, mine: set[int]) -> Only:
    memo: dict[frozenset[str] | None, list[K8sObject]] = {}

    def only(kinds: frozenset[str] | None) -> list[K8sObject]:
        found = memo.get(kinds)
        if found is None:
            found = memo[kinds] = [o for o in objects_for(kinds, bundle) if id(o) in mine]
        return found

    return only


def run_jobs(jobs: Sequence[Job], waivers: Waivers, today: dt.date) -> list[Batch]:
    """Each job's batch (rule over bundle), on two cores when the run is large."""
    bundles = list({id(ctx.bundle): ctx.bundle for _, ctx in jobs}.values())
    split = None
    if jobs and two_cores() and sum(len(b) for b in bundles) >= MIN_SPLIT_OBJECTS:
        split = {id(b): halves(b) for b in bundles}
        if any(h is None for h in split.values()):
            split = None
    if split is None:
        return [evaluate_rule(r, ctx, waivers, today) for r, ctx in jobs]
    firsts: dict[int, Only] = {}
    seconds: dict[int, Only] = {}
    for b in bundles:
        first, second = split[id(b)] or (set(), set())
        firsts[id(b)], seconds[id(b)] = _restricted(b, first), _restricted(b, second)
    _State.update(jobs=jobs, waivers=waivers, today=today, only=seconds)
    try:
        head, received = beside_a_worker(
            lambda: [evaluate_rule(r, ctx, waivers, today, firsts[id(ctx.bundle)])
                     for r, ctx in jobs],
            _second_half, ())
    finally:
        _State.clear()
    sent, used = received or (None, [])  # the worker failed: this process does its half too
    if sent is None:
        tail = [evaluate_rule(r, ctx, waivers, today, seconds[id(ctx.bundle)])
                for r, ctx in jobs]
    else:
        for w, n in zip(waivers.entries, used, strict=True):
            w.matched += n
        tail = [_received(item, r, ctx, waivers) for item, (r, ctx) in zip(sent, jobs,
                                                                           strict=True)]
    for batch, more in zip(head, tail, strict=True):
        shift = len(batch.objs)
        batch.objs.extend(more.objs)
        batch.containers.extend(more.containers)
        batch.findings.update((at + shift, found) for at, found in more.findings.items())
    return head


def _second_half() -> tuple[list[Any], list[int]]:
    """The worker: every job over the second half, as plain data."""
    jobs: Sequence[Job] = _State["jobs"]
    waivers: Waivers = _State["waivers"]
    only: dict[int, Only] = _State["only"]
    at_waiver = {id(w): i for i, w in enumerate(waivers.entries)}
    positions: dict[int, dict[int, int]] = {}
    out: list[Any] = []
    for r, ctx in jobs:
        batch = evaluate_rule(r, ctx, waivers, _State["today"], only[id(ctx.bundle)])
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
