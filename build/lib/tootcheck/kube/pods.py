"""Pods of a target: find, exec, logs, and delete-and-wait-for-the-replacement.

``restart_pod(target, selector, timeout)`` is what the persistence suite calls:
it deletes every pod matching ``selector`` in the target's namespace and waits
(bounded, one wait primitive) until replacements with new UIDs are Ready and the
old pods are gone. Pure pieces (choosing a pod, judging the replacement) are
separate functions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol

from tootcheck.errors import BadInput
from tootcheck.kube.client import Kube, connect
from tootcheck.kube.readiness import Readiness, pod_readiness
from tootcheck.kube.waits import KubeReader, wait_for
from tootcheck.target import Target

MASTODON_SELECTOR = "app.kubernetes.io/name=mastodon,app.kubernetes.io/controller=mastodon"


class PodOps(KubeReader, Protocol):
    def delete(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> bool: ...


@lru_cache(maxsize=8)
def _connect_cached(kubeconfig: Path | None, context: str | None) -> Kube:
    return connect(kubeconfig, context)


def kube_for(target: Target) -> Kube:
    """The (cached) API handle for a target; BadInput when it has no cluster."""
    if target.kubeconfig is None and target.kube_context is None:
        raise BadInput(f"target {target.name} has no kubeconfig or kube context")
    return _connect_cached(target.kubeconfig, target.kube_context)


def uid(pod: Mapping[str, Any]) -> str:
    return str((pod.get("metadata") or {}).get("uid") or (pod.get("metadata") or {}).get("name"))


def is_terminating(pod: Mapping[str, Any]) -> bool:
    return bool((pod.get("metadata") or {}).get("deletionTimestamp"))


def pick_ready(pods: Sequence[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """A Ready, non-terminating pod, oldest name first for determinism."""
    ready = [p for p in pods if not is_terminating(p) and pod_readiness(p).ready]
    return sorted(ready, key=lambda p: p["metadata"]["name"])[0] if ready else None


def replacement_readiness(pods: Sequence[Mapping[str, Any]], old_uids: set[str],
                          expected: int) -> Readiness:
    """Old pods gone; ``expected`` new pods, each Ready."""
    lingering = [p["metadata"]["name"] for p in pods if uid(p) in old_uids]
    if lingering:
        return Readiness(False, f"old pod(s) still present: {', '.join(lingering)}")
    fresh = [p for p in pods if not is_terminating(p)]
    if len(fresh) < expected:
        return Readiness(False, f"{len(fresh)} of {expected} replacement pod(s) exist")
    for pod in fresh:
        verdict = pod_readiness(pod)
        if not verdict.ready:
            return Readiness(False, f"{pod['metadata']['name']}: {verdict.reason}",
                             failed=verdict.failed)
    return Readiness(True, f"replaced by {', '.join(p['metadata']['name'] for p in fresh)}")


def restart_pods(kube: PodOps, namespace: str, selector: str, *,
                 timeout: float | str = "restart", **clock: Any) -> list[str]:
    """Delete the pods ``selector`` matches; wait until Ready replacements exist."""
    pods = [p for p in kube.list("v1", "Pod", namespace, label_selector=selector)
            if not is_terminating(p)]
    if not pods:
        raise BadInput(f"no pod matches {selector} in namespace {namespace}")
    old = {uid(p) for p in pods}
    for pod in pods:
        kube.delete("v1", "Pod", pod["metadata"]["name"], namespace)

    names: list[str] = []

    def replaced() -> Readiness:
        current = kube.list("v1", "Pod", namespace, label_selector=selector)
        names[:] = sorted(p["metadata"]["name"] for p in current if not is_terminating(p))
        return replacement_readiness(current, old, len(pods))

    wait_for(replaced, what=f"replacement of pods {selector} in {namespace}",
             timeout=timeout, interval=2.0, **clock)
    return names


def restart_pod(target: Target, selector: str, timeout: float | str = "restart") -> list[str]:
    """Delete the target's pods matching ``selector`` and wait for Ready replacements.
    Returns the new pod names."""
    return restart_pods(kube_for(target), target.namespace, selector, timeout=timeout)


def ready_pod(kube: KubeReader, namespace: str, selector: str) -> str:
    pod = pick_ready(kube.list("v1", "Pod", namespace, label_selector=selector))
    if pod is None:
        raise BadInput(f"no Ready pod matches {selector} in namespace {namespace}")
    return str(pod["metadata"]["name"])


def logs(target: Target, container: str, *, selector: str = MASTODON_SELECTOR,
         previous: bool = False, tail_lines: int | None = 500) -> str:
    kube = kube_for(target)
    pod = ready_pod(kube, target.namespace, selector)
    return kube.pod_log(target.namespace, pod, container, previous=previous, tail_lines=tail_lines)
