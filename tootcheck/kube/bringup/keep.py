"""Keep or delete the kind cluster at the end of the session (pure), and how to reconnect."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tootcheck.kube import safety


@dataclass(frozen=True)
class KeepDecision:
    keep: bool
    reason: str


def keep_decision(policy: str, *, failed: bool, reused: bool, foreign: bool = False) -> KeepDecision:
    """Whether to keep the kind cluster at the end of the session (pure).

    ``always`` keeps it, ``never`` deletes it, ``on-failure`` keeps it when any test
    or the bring-up failed. A cluster that existed before this run (reused) is
    kept under ``on-failure`` even when all passed: the operator brought it. A
    ``foreign`` cluster (reused, without the suite's marker) is never deleted.
    """
    if foreign:
        return KeepDecision(True, "the suite did not create it (no marker ConfigMap), so it "
                                  "never deletes it")
    if policy == "always":
        return KeepDecision(True, "--tootcheck-keep-cluster=always")
    if policy == "never":
        return KeepDecision(False, "--tootcheck-keep-cluster=never")
    if failed:
        return KeepDecision(True, "a test or the bring-up failed (--tootcheck-keep-cluster=on-failure)")
    if reused:
        return KeepDecision(True, "the cluster existed before this run (--reuse-cluster)")
    return KeepDecision(False, "all passed (--tootcheck-keep-cluster=on-failure)")


def reconnect_lines(cluster: str, kubeconfig: Path, namespace: str, reason: str) -> list[str]:
    context = safety.kind_context(cluster)
    return [
        f"kind cluster {cluster!r} kept: {reason}",
        f"  export KUBECONFIG={kubeconfig}",
        f"  kubectl --context {context} -n {namespace} get pods",
        f"  rerun against it: make e2e PYTEST_ARGS='--reuse-cluster --tootcheck-cluster-name {cluster}'",
        f"  delete it: kind delete cluster --name {cluster}",
    ]
