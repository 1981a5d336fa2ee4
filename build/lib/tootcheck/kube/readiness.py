"""What counts as ready, judged from an object's status alone (pure functions).

Every function takes the object as the API serves it (a dict in camelCase, as
``kubectl get -o json`` prints it) and returns a :class:`Readiness`: whether the
object is ready, whether it has failed for good (so a wait can stop early), and a
one-line reason naming what was seen. The rules follow ``kubectl rollout status``
(observedGeneration first, then updated/ready/available counts) and the
condition types each controller publishes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

Obj = Mapping[str, Any]

# Container waiting reasons worth naming in the verdict. They still count as
# "waiting" (a crash loop while a dependency starts, or a pull that retries, clears
# up by itself; the wait's budget bounds it) except the ones in FATAL_REASONS.
STUCK_WAITING_REASONS = frozenset({
    "CrashLoopBackOff", "ImagePullBackOff", "ErrImagePull", "InvalidImageName",
    "CreateContainerConfigError", "CreateContainerError", "RunContainerError",
})
FATAL_REASONS = frozenset({"InvalidImageName"})


@dataclass(frozen=True)
class Readiness:
    """The verdict on one object. ``failed`` means waiting longer will not help."""

    ready: bool
    reason: str
    failed: bool = False


def ok(reason: str) -> Readiness:
    return Readiness(True, reason)


def waiting(reason: str) -> Readiness:
    return Readiness(False, reason)


def failed(reason: str) -> Readiness:
    return Readiness(False, reason, failed=True)


# ----------------------------------------------------------------- helpers


def object_id(obj: Obj) -> str:
    """``Kind/namespace/name`` (or ``Kind/name`` for cluster-scoped objects)."""
    meta = obj.get("metadata") or {}
    parts = [obj.get("kind") or "?", meta.get("namespace"), meta.get("name") or "?"]
    return "/".join(p for p in parts if p)


def conditions(obj: Obj) -> dict[str, Mapping[str, Any]]:
    """The object's status conditions by type."""
    return {c.get("type", ""): c for c in (obj.get("status") or {}).get("conditions") or []}


def is_condition_true(obj: Obj, kind: str) -> bool:
    return (conditions(obj).get(kind) or {}).get("status") == "True"


def describe_conditions(obj: Obj) -> str:
    """``Ready=False (Pending: waiting for issuer)`` for every condition, in order."""
    out = []
    for c in (obj.get("status") or {}).get("conditions") or []:
        text = f"{c.get('type')}={c.get('status')}"
        detail = ": ".join(x for x in (c.get("reason"), _short(c.get("message"))) if x)
        out.append(f"{text} ({detail})" if detail else text)
    return ", ".join(out)


def _short(text: object, limit: int = 160) -> str:
    one = " ".join(str(text or "").split())
    return one if len(one) <= limit else one[: limit - 1] + "…"


def _generation_observed(obj: Obj) -> Readiness | None:
    generation = (obj.get("metadata") or {}).get("generation")
    observed = (obj.get("status") or {}).get("observedGeneration")
    if generation is not None and (observed is None or observed < generation):
        return waiting(f"generation {generation} not yet observed (observedGeneration {observed})")
    return None


# ---------------------------------------------------------------- workloads


def deployment_readiness(obj: Obj) -> Readiness:
    """Rollout complete as ``kubectl rollout status`` judges a Deployment."""
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    pending = _generation_observed(obj)
    if pending is not None:
        return pending
    progressing = conditions(obj).get("Progressing") or {}
    if progressing.get("reason") == "ProgressDeadlineExceeded":
        return failed(f"progress deadline exceeded: {_short(progressing.get('message'))}")
    want = spec.get("replicas", 1)
    updated = status.get("updatedReplicas", 0)
    total = status.get("replicas", 0)
    available = status.get("availableReplicas", 0)
    if updated < want:
        return waiting(f"{updated} of {want} replicas updated")
    if total > updated:
        return waiting(f"{total - updated} old replica(s) pending termination")
    if available < updated:
        return waiting(f"{available} of {updated} updated replicas available")
    return ok(f"{available}/{want} replicas available")


def statefulset_readiness(obj: Obj) -> Readiness:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    pending = _generation_observed(obj)
    if pending is not None:
        return pending
    want = spec.get("replicas", 1)
    ready = status.get("readyReplicas", 0)
    if ready < want:
        return waiting(f"{ready} of {want} replicas ready")
    strategy = spec.get("updateStrategy") or {}
    if strategy.get("type", "RollingUpdate") != "RollingUpdate":
        return ok(f"{ready}/{want} replicas ready (update strategy {strategy.get('type')})")
    partition = (strategy.get("rollingUpdate") or {}).get("partition") or 0
    if partition:
        updated = status.get("updatedReplicas", 0)
        if updated < want - partition:
            return waiting(f"{updated} of {want - partition} replicas above partition updated")
        return ok(f"{ready}/{want} ready, partitioned rollout done")
    if status.get("updateRevision") and status.get("currentRevision") != status.get("updateRevision"):
        return waiting(f"revision {status.get('updateRevision')} rolling out "
                       f"({status.get('updatedReplicas', 0)} of {want} updated)")
    return ok(f"{ready}/{want} replicas ready")


def daemonset_readiness(obj: Obj) -> Readiness:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    pending = _generation_observed(obj)
    if pending is not None:
        return pending
    if (spec.get("updateStrategy") or {}).get("type", "RollingUpdate") != "RollingUpdate":
        return ok("update strategy OnDelete: nothing to roll out")
    desired = status.get("desiredNumberScheduled", 0)
    updated = status.get("updatedNumberScheduled", 0)
    available = status.get("numberAvailable", 0)
    if desired == 0:
        return waiting("no node scheduled yet (desiredNumberScheduled 0)")
    if updated < desired:
        return waiting(f"{updated} of {desired} pods updated")
    if available < desired:
        return waiting(f"{available} of {desired} updated pods available")
    return ok(f"{available}/{desired} pods available")


def _container_problem(status: Obj, prefix: str = "") -> Readiness | None:
    """A verdict for a container stuck in a named waiting reason, else None."""
    waiting_state = (status.get("state") or {}).get("waiting") or {}
    reason = waiting_state.get("reason")
    if reason not in STUCK_WAITING_REASONS:
        return None
    msg = _short(waiting_state.get("message"), 120)
    text = (f"{prefix}{status.get('name')}: {reason}" + (f" ({msg})" if msg else "")
            + f", restarts={status.get('restartCount', 0)}")
    return failed(text) if reason in FATAL_REASONS else waiting(text)


def describe_containers(pod: Obj) -> str:
    """``web ready restarts=0; postgres(init) running restarts=2 last=OOMKilled`` ..."""
    status = pod.get("status") or {}
    out = []
    for key, tag in (("initContainerStatuses", "(init)"), ("containerStatuses", "")):
        for cs in status.get(key) or []:
            state = cs.get("state") or {}
            if "running" in state:
                now = "ready" if cs.get("ready") else "running"
            elif "terminated" in state:
                term = state["terminated"]
                now = f"terminated {term.get('reason', '')} exit={term.get('exitCode')}".replace("  ", " ")
            elif "waiting" in state:
                now = f"waiting {(state['waiting'] or {}).get('reason', '')}".strip()
            else:
                now = "unknown"
            text = f"{cs.get('name')}{tag} {now} restarts={cs.get('restartCount', 0)}"
            last = ((cs.get("lastState") or {}).get("terminated") or {}).get("reason")
            if last:
                text += f" last={last}"
            out.append(text)
    return "; ".join(out)


def _sidecar_names(pod: Obj) -> set[str]:
    return {c.get("name") for c in (pod.get("spec") or {}).get("initContainers") or []
            if c.get("restartPolicy") == "Always"}


def pod_readiness(pod: Obj) -> Readiness:
    """Ready condition, every regular container ready, every native sidecar started
    and ready, every other init container completed with exit code 0."""
    status = pod.get("status") or {}
    phase = status.get("phase")
    if phase in ("Failed", "Succeeded"):
        return failed(f"pod phase {phase}: {_short(status.get('reason') or status.get('message'))}")
    spec = pod.get("spec") or {}
    sidecars = _sidecar_names(pod)
    init_statuses = {cs.get("name"): cs for cs in status.get("initContainerStatuses") or []}
    for ic in spec.get("initContainers") or []:
        name = ic.get("name")
        cs = init_statuses.get(name)
        if cs is None:
            return waiting(f"init container {name} not started")
        problem = _container_problem(cs, "init container ")
        if problem is not None:
            return problem
        if name in sidecars:
            if not cs.get("started") or not cs.get("ready"):
                return waiting(f"sidecar {name} not ready (restarts={cs.get('restartCount', 0)})")
        else:
            done = init_container_readiness(pod, name)
            if not done.ready:
                return done
    statuses = {cs.get("name"): cs for cs in status.get("containerStatuses") or []}
    for c in spec.get("containers") or []:
        cs = statuses.get(c.get("name"))
        if cs is None:
            return waiting(f"container {c.get('name')} not created")
        problem = _container_problem(cs, "container ")
        if problem is not None:
            return problem
        if not cs.get("ready"):
            return waiting(f"container {c.get('name')} not ready (restarts={cs.get('restartCount', 0)})")
    if not is_condition_true(pod, "Ready"):
        return waiting(f"condition Ready not True ({describe_conditions(pod) or 'no conditions'})")
    return ok(f"ready ({len(spec.get('containers') or [])} containers, {len(sidecars)} sidecars)")


def init_container_readiness(pod: Obj, name: str) -> Readiness:
    """The (non-sidecar) init container ``name`` terminated with exit code 0."""
    status = pod.get("status") or {}
    for cs in status.get("initContainerStatuses") or []:
        if cs.get("name") != name:
            continue
        state = cs.get("state") or {}
        term = state.get("terminated")
        if term is not None:
            if term.get("exitCode") == 0:
                return ok(f"init container {name} completed")
            reason = f"init container {name} exited {term.get('exitCode')} ({term.get('reason', '')})"
            return waiting(reason + f", restarts={cs.get('restartCount', 0)}")
        problem = _container_problem(cs, "init container ")
        if problem is not None:
            return problem
        last = (cs.get("lastState") or {}).get("terminated") or {}
        if last and last.get("exitCode") not in (None, 0):
            return waiting(f"init container {name} running again after exit {last.get('exitCode')} "
                           f"(restarts={cs.get('restartCount', 0)})")
        return waiting(f"init container {name} {'running' if 'running' in state else 'waiting'}")
    return waiting(f"init container {name} has no status yet")


def job_readiness(obj: Obj) -> Readiness:
    if is_condition_true(obj, "Complete"):
        return ok(f"complete ({(obj.get('status') or {}).get('succeeded', 0)} succeeded)")
    cond = conditions(obj).get("Failed") or {}
    if cond.get("status") == "True":
        return failed(f"job failed: {cond.get('reason', '')} {_short(cond.get('message'))}".strip())
    status = obj.get("status") or {}
    return waiting(f"running (active={status.get('active', 0)}, failed={status.get('failed', 0)})")


# ------------------------------------------------------ CRDs, certs, storage


def crd_readiness(obj: Obj) -> Readiness:
    if is_condition_true(obj, "Established"):
        return ok("established")
    cond = conditions(obj).get("NamesAccepted") or {}
    if cond.get("status") == "False":
        return failed(f"names not accepted: {_short(cond.get('message'))}")
    return waiting(f"not established ({describe_conditions(obj) or 'no conditions'})")


def ready_condition_readiness(obj: Obj) -> Readiness:
    """Objects that publish a ``Ready`` condition: cert-manager Certificate,
    Issuer, ClusterIssuer, CertificateRequest; nodes."""
    cond = conditions(obj).get("Ready")
    if cond is None:
        return waiting("no Ready condition yet")
    if cond.get("status") == "True":
        return ok(f"Ready=True ({cond.get('reason', '')})".replace(" ()", ""))
    if obj.get("kind") == "CertificateRequest" and cond.get("reason") in ("Failed", "Denied"):
        return failed(f"Ready=False ({cond.get('reason')}: {_short(cond.get('message'))})")
    return waiting(f"Ready={cond.get('status')} ({cond.get('reason', '')}: {_short(cond.get('message'))})")


def pvc_readiness(obj: Obj) -> Readiness:
    phase = (obj.get("status") or {}).get("phase")
    if phase == "Bound":
        return ok(f"bound to {(obj.get('spec') or {}).get('volumeName', '?')}")
    if phase == "Lost":
        return failed("claim lost its volume")
    return waiting(f"phase {phase or 'unknown'}")


def endpoints_readiness(objs: Iterable[Obj]) -> Readiness:
    """A Service has at least one ready endpoint: EndpointSlices (discovery.k8s.io/v1)
    or legacy Endpoints. Used for the cert-manager webhook, which must answer before
    Issuers and Certificates can be applied."""
    seen = 0
    for obj in objs:
        seen += 1
        if obj.get("kind") == "Endpoints":
            if any(s.get("addresses") for s in obj.get("subsets") or []):
                return ok("endpoint address ready")
            continue
        for ep in obj.get("endpoints") or []:
            if (ep.get("conditions") or {}).get("ready", True) and ep.get("addresses"):
                return ok("endpoint ready")
    return waiting("no ready endpoint" if seen else "no endpoints object yet")


JUDGES: dict[str, Callable[[Obj], Readiness]] = {
    "Deployment": deployment_readiness,
    "StatefulSet": statefulset_readiness,
    "DaemonSet": daemonset_readiness,
    "Pod": pod_readiness,
    "Job": job_readiness,
    "CustomResourceDefinition": crd_readiness,
    "Certificate": ready_condition_readiness,
    "CertificateRequest": ready_condition_readiness,
    "Issuer": ready_condition_readiness,
    "ClusterIssuer": ready_condition_readiness,
    "Node": ready_condition_readiness,
    "PersistentVolumeClaim": pvc_readiness,
}


def readiness(obj: Obj) -> Readiness:
    """Judge any object; kinds without a readiness notion are ready once they exist."""
    judge = JUDGES.get(obj.get("kind", ""))
    return judge(obj) if judge else ok("exists")


def all_ready(objs: Sequence[Obj], *, what: str) -> Readiness:
    """Fold many verdicts: ready when every object is; the first failure wins;
    otherwise the first not-ready object (with a count) is the reason."""
    if not objs:
        return waiting(f"no {what} found yet")
    pending: list[str] = []
    for obj in objs:
        verdict = readiness(obj)
        if verdict.failed:
            return failed(f"{object_id(obj)}: {verdict.reason}")
        if not verdict.ready:
            pending.append(f"{object_id(obj)}: {verdict.reason}")
    if pending:
        more = f" (+{len(pending) - 1} more)" if len(pending) > 1 else ""
        return waiting(pending[0] + more)
    return ok(f"{len(objs)} {what} ready")


def describe_state(obj: Obj) -> str:
    """One line for a timeout message: the verdict, conditions, containers."""
    parts = [f"{object_id(obj)}: {readiness(obj).reason}"]
    conds = describe_conditions(obj)
    if conds and obj.get("kind") != "Pod":
        parts.append(f"conditions: {conds}")
    if obj.get("kind") == "Pod":
        containers = describe_containers(obj)
        if containers:
            parts.append(f"containers: {containers}")
    return "; ".join(parts)
