"""The rehearsal, orchestrated: thin over ``tootcheck.kube`` and ``tootcheck.checks.markers``.

Rendering is in :mod:`~tootcheck.rehearsal.renderer`, reaching the pod in
:mod:`~tootcheck.rehearsal.access`, the data work (dump, scaled seed, snapshots,
rollback) in :mod:`~tootcheck.rehearsal.data_steps`; their names are re-exported here.

The bring-up deploys FROM by applying :func:`mastodon_render` instead of the plain
overlay when the run is a rehearsal (and preloads :func:`rehearsal_images`);
:func:`rehearse` refuses to go on when the cluster does not run FROM. The rehearsal
fixture (``fixtures/rehearsal.py``) calls :func:`preflight` (requirements, immutable
changes: before anything is deployed), :func:`rehearse` (FROM really runs, seed,
upgrade) and, in the final test, :func:`database` (a port-forward to the pod's
PostgreSQL) for the seed verification.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tootcheck.checks.markers import MarkerSet, MarkerWriteError, write_markers
from tootcheck.errors import BadInput
from tootcheck.kube.apply import apply_documents, images
from tootcheck.kube.bringup.context import BringUpHooks
from tootcheck.kube.images import missing_on_node, node_image_names
from tootcheck.kube.pods import MASTODON_SELECTOR, kube_for
from tootcheck.kube.readiness import Readiness, all_ready, pod_readiness
from tootcheck.kube.waits import NotReady, Watch, snapshot, wait_for
from tootcheck.rehearsal import dataset, failfast, way_back
from tootcheck.rehearsal import plan as plan_mod
from tootcheck.rehearsal.access import (  # noqa: F401  (re-exported)
    CONFIG_MAP,
    POSTGRES_PORT,
    REDIS_PORT,
    SECRET,
    database,
    deployment_name,
    redis_client,
    running_tag,
    upgraded_pod,
)
from tootcheck.rehearsal.data_steps import (  # noqa: F401  (re-exported)
    DATA_SECRETS,
    load_dump,
    scale_seed,
    secret_overrides,
    take_snapshot,
)
from tootcheck.rehearsal.downtime import Observation, Poller, Probe, availability_probes
from tootcheck.rehearsal.plan import RehearsalPlan
from tootcheck.rehearsal.renderer import (  # noqa: F401  (re-exported)
    APP_DIR,
    OVERLAY_DIR,
    Renders,
    mastodon_render,
    plan_of,
    preflight,
    rehearsal_images,
    render,
    render_docs,
    workspace,
)
from tootcheck.rehearsal.verify import UpgradeRecord, pod_state
from tootcheck.settings import Settings
from tootcheck.target import Target

UPGRADE_TIMEOUT_S = 1200.0  # apply -> new pod Ready (migrations included)
RECOVERY_S = 120.0  # after Ready: until /health and streaming answer
BASELINE_S = 60.0  # before applying: both available (else the outage is not the upgrade's)
POLL_INTERVAL_S = 1.0
# The seeded scheduled status is due a day later: it must still be scheduled after the
# upgrade and the suites (whether Sidekiq publishes on time is sidekiq's suite's job;
# here a publication delayed by the downtime would read as a loss).
SCHEDULED_IN_S = 24 * 3600.0
EVIDENCE_DIR = "rehearsal"



def bringup_hooks(settings: Settings) -> BringUpHooks:
    """What the rehearsal adds to the kind bring-up: the kind overlay at FROM instead of
    its render, and TO's images preloaded too (so the downtime excludes pulling them)."""
    if settings.mode != "rehearsal":
        return BringUpHooks()

    def render_override(path: str) -> str | None:
        return mastodon_render(settings) if path == OVERLAY_DIR else None

    return BringUpHooks(render_override=render_override,
                        extra_images=lambda: rehearsal_images(settings))


# ------------------------------------------------------------------- cluster


def pods_probe(kube: Any, namespace: str, selector: str = MASTODON_SELECTOR) -> Probe:
    def probe() -> Observation:
        pods = kube.list("v1", "Pod", namespace, label_selector=selector)
        return Observation(True, f"{len(pods)} pod(s)", [pod_state(p) for p in pods])
    return probe


def upgrade(kube: Any, target: Target, plan: RehearsalPlan, after: Sequence[dict[str, Any]], *,
            probes: Mapping[str, Probe] | None = None, interval: float = POLL_INTERVAL_S,
            timeout: float = UPGRADE_TIMEOUT_S, recovery: float = RECOVERY_S,
            baseline: float = BASELINE_S, ready_interval: float = POLL_INTERVAL_S,
            api_errors: tuple[type[BaseException], ...] = (),
            allow_restart: bool = False,
            at_ready: Callable[[], None] | None = None) -> UpgradeRecord:
    """Apply the TO render and wait for the new pod, polling availability throughout."""
    namespace = target.namespace
    name = deployment_name(after)
    record = UpgradeRecord(plan.source.tag, plan.target.tag, target.name,
                           allow_migration_restart=allow_restart)
    watch = probes if probes is not None else {**availability_probes(target),
                                               "pods": pods_probe(kube, namespace)}
    record.availability = tuple(name for name in watch if name != "pods")
    poller = Poller(watch, interval=interval,
                    max_duration=baseline + timeout + recovery + 60).start()
    try:
        if not poller.wait_up(record.availability, timeout=baseline):
            raise BadInput(f"{target.name} was not available before the upgrade began "
                           f"({', '.join(record.availability)}): nothing to measure against")
        record.applied_at = time.time()
        apply_documents(kube, list(after), api_errors=api_errors or _api_errors())

        what = f"Deployment {namespace}/{name} at {plan.target.tag}"
        wait_for(upgrade_condition(kube, namespace, name, plan.target.tag,
                                   allow_restart=allow_restart),
                 what=what, timeout=timeout, interval=ready_interval,
                 context=lambda: snapshot(kube, Watch("apps/v1", "Deployment", namespace,
                                                      name).fetch(kube)))
        record.ready_at = time.time()
        if at_ready is not None:
            at_ready()
        poller.wait_up(record.availability, timeout=recovery)
    except (NotReady, BadInput) as exc:
        record.error = str(exc)
    finally:
        record.samples = poller.stop()
    record.pod = upgraded_pod(kube, namespace, plan.target.tag)
    if record.pod is not None and record.error:
        verdict = failfast.migration_verdict(record.pod, allow_restart=allow_restart)
        if verdict.failed:
            record.migration_failed = True
            record.migration_logs = migration_logs(kube, namespace, record.pod)
            record.error = failfast.failure_message(f"{plan.source} -> {plan.target}", verdict,
                                                    record.migration_logs)
    return record


def upgrade_condition(kube: Any, namespace: str, name: str, tag: str, *,
                      allow_restart: bool = False) -> Callable[[], Readiness]:
    """Ready when the Deployment and the new pod at ``tag`` are; failed for good as soon
    as the new pod's migration container failed (checked first, at every poll)."""
    deployment = Watch("apps/v1", "Deployment", namespace, name)

    def condition() -> Readiness:
        pod = upgraded_pod(kube, namespace, tag)
        if pod is not None:
            verdict = failfast.migration_verdict(pod, allow_restart=allow_restart)
            if verdict.failed:
                return Readiness(False, verdict.reason, failed=True)
        found = deployment.fetch(kube)
        if not found:
            return Readiness(False, f"{deployment.describe()}: not found yet")
        rolled = all_ready(found, what="objects")
        if not rolled.ready:
            return rolled
        if pod is None:
            return Readiness(False, f"no pod at {tag} yet")
        return pod_readiness(pod)

    return condition


def migration_logs(kube: Any, namespace: str, pod: Mapping[str, Any],
                   container: str = failfast.MIGRATION_CONTAINER) -> dict[str, str]:
    """The migration container's current and previous logs (tails); a log that cannot
    be read says why instead."""
    name = (pod.get("metadata") or {}).get("name", "")
    logs: dict[str, str] = {}
    for which, previous in (("current", False), ("previous", True)):
        try:
            logs[which] = kube.pod_log(namespace, name, container, previous=previous,
                                       tail_lines=failfast.LOG_LINES)
        except Exception as exc:
            logs[which] = ""
            logs[f"{which}.error"] = f"{type(exc).__name__}: {' '.join(str(exc).split())[:200]}"
    return logs


def _api_errors() -> tuple[type[BaseException], ...]:
    from kubernetes.client.exceptions import ApiException
    from kubernetes.dynamic.exceptions import DynamicApiError

    return (ApiException, DynamicApiError)


@dataclass
class RehearsalResult:
    plan: RehearsalPlan
    markers: MarkerSet | None
    seed_error: str
    record: UpgradeRecord
    notes: tuple[str, ...] = ()
    timings: dict[str, float] = field(default_factory=dict)
    applied: list[dict[str, Any]] = field(default_factory=list)  # the TO objects applied
    backup: way_back.Backup | None = None  # --rehearse-rollback: taken before the upgrade
    data_before: dataset.Snapshot | None = None  # counts, actor keys, the held job
    data_error: str = ""  # why the data could not be read before the upgrade
    latency_at_ready: dict[str, float] | None = None  # Sidekiq queues when TO got Ready
    from_docs: list[dict[str, Any]] = field(default_factory=list)  # FROM, for the way back

    @property
    def label(self) -> str:
        return f"the upgrade {self.plan.source} -> {self.plan.target}"


def not_preloaded(kube: Any, docs: Sequence[Mapping[str, Any]]) -> tuple[str, ...]:
    """A note when TO's images are not on every node yet: the downtime then includes
    pulling them (the bring-up preloads run.rehearsal_images(settings) to avoid it)."""
    missing = missing_on_node(images(docs), node_image_names(kube.list("v1", "Node")))
    if not missing:
        return ()
    return (f"not preloaded, pulled during the upgrade (the downtime includes the pull): "
            f"{', '.join(missing)}",)


def seed(target: Target, *, scheduled_in_s: float = SCHEDULED_IN_S) -> tuple[MarkerSet | None, str]:
    """Write the markers through REST; a failure keeps what was written and says why."""
    try:
        return write_markers(target, scheduled_in_s=scheduled_in_s), ""
    except MarkerWriteError as exc:
        return exc.partial, str(exc)


def rehearse(target: Target, plan: RehearsalPlan, renders: Renders, *,
             reports_dir: Path | None = None, kube: Any = None,
             allow_migration_restart: bool = False,
             rehearse_rollback: bool = False, dump: Path | None = None,
             seed_scale: dataset.Scale | None = None) -> RehearsalResult:
    """FROM really runs -> seed -> upgrade to TO. Raises BadInput when FROM is not what
    the cluster runs (a reused cluster, or a bring-up that ignored the rehearsal)."""
    kube = kube if kube is not None else kube_for(target)
    name = deployment_name(renders.after)
    running = running_tag(kube, target.namespace, name)
    if running != plan.source.tag:
        raise BadInput(
            f"the deployment runs {running or 'no Mastodon image'}, not FROM {plan.source}: "
            "the bring-up must apply tootcheck.rehearsal.run.mastodon_render(settings) on a "
            "fresh cluster (not --reuse-cluster after an earlier upgrade)")
    config = kube.get("v1", "ConfigMap", CONFIG_MAP, target.namespace) or {}
    after, carried = plan_mod.carry_overrides(renders.before, renders.after,
                                              config.get("data") or {}, CONFIG_MAP)
    notes = renders.notes + tuple(f"{key} keeps the value set at bring-up" for key in carried)
    notes += not_preloaded(kube, after)
    timings: dict[str, float] = {}
    if dump is not None:
        started = time.monotonic()
        notes += (load_dump(kube, target, plan, dump),)
        timings["dump_restore_s"] = round(time.monotonic() - started, 1)
    started = time.monotonic()
    markers, seed_error = seed(target)
    timings["seed_s"] = round(time.monotonic() - started, 1)
    if seed_scale is not None:
        started = time.monotonic()
        notes += (scale_seed(kube, target, plan, seed_scale),)
        timings["seed_scale_s"] = round(time.monotonic() - started, 1)
    data_before, data_error = take_snapshot(target, kube, hold=True)
    backup = None
    from_docs: list[dict[str, Any]] = []
    if rehearse_rollback:
        pod = upgraded_pod(kube, target.namespace, plan.source.tag)
        from_docs, _ = plan_mod.carry_overrides(renders.before, renders.before,
                                                config.get("data") or {}, CONFIG_MAP)
        backup = way_back.take_backup(kube, target.namespace,
                                      (pod or {}).get("metadata", {}).get("name", ""),
                                      config.get("data") or {}, redis=redis_client(target, kube))
        timings.update({f"backup.{k}": v for k, v in backup.timings.seconds.items()})
    started = time.monotonic()
    at_ready: dict[str, float] = {}

    def latency_at_ready() -> None:
        # reported as missing, never fatal here
        with contextlib.suppress(Exception), redis_client(target, kube)() as client:
            at_ready.update(dataset.queue_latencies(client))

    record = upgrade(kube, target, plan, after, allow_restart=allow_migration_restart,
                     at_ready=latency_at_ready)
    timings["upgrade_s"] = round(time.monotonic() - started, 1)
    result = RehearsalResult(plan, markers, seed_error, record, notes, timings, after,
                             backup=backup, from_docs=from_docs, data_before=data_before,
                             data_error=data_error, latency_at_ready=at_ready or None)
    if reports_dir is not None:
        write_evidence(result, reports_dir)
    return result


def roll_back(target: Target, result: RehearsalResult, *, kube: Any = None,
              reports_dir: Path | None = None) -> way_back.RollbackRecord:
    """After TO was verified: restore FROM from the backup taken before the upgrade."""
    kube = kube if kube is not None else kube_for(target)
    plan = result.plan
    if result.backup is None:
        return way_back.RollbackRecord(plan.source.tag, plan.target.tag,
                                       error="no backup to restore: --rehearse-rollback was "
                                             "not given before the upgrade",
                                       target_name=target.name)
    pod = upgraded_pod(kube, target.namespace, plan.target.tag)
    config = (kube.get("v1", "ConfigMap", CONFIG_MAP, target.namespace) or {}).get("data") or {}
    name = deployment_name(result.from_docs or result.applied)
    record = way_back.restore_backup(
        kube, target.namespace, (pod or {}).get("metadata", {}).get("name", ""), result.backup,
        plan.source.tag, config, result.from_docs,
        condition=upgrade_condition(kube, target.namespace, name, plan.source.tag),
        redis=redis_client(target, kube), api_errors=_api_errors())
    record.target, record.target_name = plan.target.tag, target.name
    if reports_dir is not None:
        directory = reports_dir / EVIDENCE_DIR
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "rollback.json").write_text(json.dumps(record.to_dict(), indent=2))
    return record


def write_evidence(result: RehearsalResult, reports_dir: Path) -> Path:
    """rehearsal/plan.json, markers.json, upgrade.json: ids and timings, never secrets."""
    directory = reports_dir / EVIDENCE_DIR
    directory.mkdir(parents=True, exist_ok=True)
    plan = result.plan
    (directory / "plan.json").write_text(json.dumps({
        "from": plan.source.tag, "to": plan.target.tag, "chart_from": plan.chart_from.tag,
        "chart_to": plan.chart_to.tag, "lines_entered": [r.name for r in plan.lines],
        "notes": list(result.notes), "warnings": list(plan.warnings),
        "procedure": [{"name": s.name, "does": s.does, "source": s.cite}
                      for s in plan.procedure()],
        "steps": [{"name": s.name, "does": s.does} for s in plan.steps],
        "timings": result.timings, "seed_error": result.seed_error,
        "data_before": result.data_before.to_dict() if result.data_before else None,
        "data_error": result.data_error, "latency_at_ready": result.latency_at_ready,
        "backup": ({"dump": result.backup.dump_path, "error": result.backup.error,
                    "seconds": result.backup.timings.seconds} if result.backup else None)},
        indent=2))
    if result.markers is not None:
        (directory / "markers.json").write_text(result.markers.to_json())
    (directory / "upgrade.json").write_text(json.dumps(result.record.to_dict(), indent=2,
                                                       default=str))
    for which, text in result.record.migration_logs.items():
        (directory / f"{failfast.MIGRATION_CONTAINER}.{which}.log").write_text(text)
    return directory


