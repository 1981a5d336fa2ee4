"""The engine: run the plan's phases, several at once where their needs allow.

Phases start in plan order as soon as every phase they need is through
(:func:`tootcheck.kube.plan.ready`), on a pool of ``ctx.workers`` threads; with one
worker this is the plan's topological order. Whether a phase runs or is skipped
(``--reuse-cluster``) is decided when it becomes ready. After the first failure no
phase starts; those already running end within their own bounded waits, and the
failure is raised naming its phase.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from pathlib import Path

from tootcheck.errors import BadInput
from tootcheck.kube import images as img
from tootcheck.kube import plan, safety
from tootcheck.kube import timings as timing_file
from tootcheck.kube.bringup.context import BringUpFailed, Context, Impl
from tootcheck.kube.bringup.phases import IMPLS
from tootcheck.redaction import redact


def execute(ctx: Context, phases: Sequence[plan.Phase], *, offset: int = 0,
            total: int | None = None, impls: Mapping[str, Impl] | None = None) -> None:
    """Run ``phases`` with one progress line each. Raises :class:`BringUpFailed`
    naming the phase on the first failure."""
    table = IMPLS if impls is None else impls
    position = {p.name: i for i, p in enumerate(plan.order(plan.KIND_PLAN))}
    ordered = sorted(phases, key=lambda p: position.get(p.name, len(position)))
    total = total or len(ordered)
    number = {p.name: offset + i for i, p in enumerate(ordered, start=1)}
    cascading = {p.name for p in ordered if p.cascade}

    by_name = {p.name: p for p in ordered}

    def is_done(name: str) -> bool:
        return ctx.kube is not None and _safe_done(ctx, by_name[name], table[name])

    ran: set[str] = set()
    finished: set[str] = set()
    started: set[str] = set()
    failure: BringUpFailed | None = None
    with ThreadPoolExecutor(max_workers=max(1, ctx.workers), thread_name_prefix="bringup") as pool:
        running: dict[Future[None], plan.Phase] = {}
        while True:
            for phase in plan.ready(ordered, finished, started) if failure is None else []:
                if len(running) >= max(1, ctx.workers):
                    break
                started.add(phase.name)
                step = plan.decide(phase, ran, cascading, is_done, reuse=ctx.settings.reuse_cluster)
                if step.action == "run":
                    ran.add(phase.name)
                running[pool.submit(_run_step, ctx, step, table[phase.name], number[phase.name],
                                    total)] = phase
            if not running:
                break
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in sorted(done, key=lambda f: number[running[f].name]):
                phase = running.pop(future)
                try:
                    future.result()
                except BringUpFailed as exc:
                    ctx.failed.add(phase.name)  # running waits may stop on it (Mastodon's)
                    failure = failure or exc
                else:
                    finished.add(phase.name)
    if failure is not None:
        raise failure
    stuck = [p.name for p in ordered if p.name not in finished]
    if stuck:  # needs that can never be met: a run that did not do them must not look done
        raise BringUpFailed(f"bring-up phases never became ready to start: {', '.join(stuck)}")


def _run_step(ctx: Context, step: plan.Step, impl: Impl, index: int, total: int) -> None:
    phase = step.phase
    started = time.monotonic()
    if step.action == "skip":
        if impl.after_skip is not None:
            impl.after_skip(ctx, phase)
        seconds = time.monotonic() - started
        ctx.timings.record(phase.name, seconds, "skipped", step.reason, started)
        ctx.progress.line(index, total, phase.name, seconds, "skipped", step.reason)
        return
    try:
        note = impl.run(ctx, phase)
    except Exception as exc:
        seconds = time.monotonic() - started
        message = redact(" ".join(str(exc).split()) or type(exc).__name__)
        ctx.timings.record(phase.name, seconds, "failed", message[:300], started)
        ctx.progress.line(index, total, phase.name, seconds, "FAILED", message[:300])
        raise BringUpFailed(f"bring-up phase {phase.name} failed: {message}") from exc
    seconds = time.monotonic() - started
    ctx.timings.record(phase.name, seconds, "ran", note, started)
    ctx.progress.line(index, total, phase.name, seconds, "ran", note)


def _safe_done(ctx: Context, phase: plan.Phase, impl: Impl) -> bool:
    try:
        return bool(impl.done and impl.done(ctx, phase))
    except Exception:
        return False


def write_timings(ctx: Context, outcome: str) -> Path:
    reports = list(ctx.image_reports.values())
    images = img.PreloadReport.combined(reports).to_json() if reports else None
    data = timing_file.document(ctx.timings, cluster=ctx.name, reused=ctx.reused, outcome=outcome,
                                images=images)
    return timing_file.write(ctx.settings.reports_dir / "timings.json", data)


def created_verdict(ctx: Context) -> safety.Verdict:
    try:
        clusters: list[str] | None = ctx.cluster.clusters()
    except BadInput:
        clusters = None
    marker = ctx.kube.get("v1", "ConfigMap", safety.MARKER_NAME, safety.MARKER_NAMESPACE)
    return safety.verdict(cluster=ctx.name, context=ctx.kube.context, server=ctx.kube.server,
                          marker_configmap=marker, kind_clusters=clusters)
