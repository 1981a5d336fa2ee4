"""Did the suite create this cluster? Destructive suites run only where it did.

The bring-up writes a marker ConfigMap (``kube-system/tootcheck-cluster``,
labelled ``app.kubernetes.io/managed-by: tootcheck-tests``, naming the cluster)
right after *it* ran ``kind create cluster``; a reused cluster without that
marker never gets one. :func:`verdict` requires all of: the context is
``kind-<cluster>``, kind lists that cluster, the API server is on loopback (kind
publishes it on 127.0.0.1), and the marker names the same cluster. Pure.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

MARKER_NAME = "tootcheck-cluster"
MARKER_NAMESPACE = "kube-system"
MANAGED_BY = ("app.kubernetes.io/managed-by", "tootcheck-tests")


@dataclass(frozen=True)
class Verdict:
    created_by_suite: bool
    reason: str


def kind_context(cluster: str) -> str:
    return f"kind-{cluster}"


def marker(cluster: str, run_id: str, created_at: str) -> dict[str, Any]:
    """The ConfigMap the bring-up applies after creating the cluster itself."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": MARKER_NAME, "namespace": MARKER_NAMESPACE,
                     "labels": {MANAGED_BY[0]: MANAGED_BY[1]}},
        "data": {"cluster": cluster, "created-by-run": run_id, "created-at": created_at},
    }


def is_loopback_server(server: str) -> bool:
    host = urlsplit(server).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def verdict(*, cluster: str, context: str | None, server: str,
            marker_configmap: Mapping[str, Any] | None,
            kind_clusters: Sequence[str] | None) -> Verdict:
    """Whether the cluster behind ``context`` is the kind cluster the suite created."""
    expected = kind_context(cluster)
    if context != expected:
        return Verdict(False, f"kube context {context!r} is not {expected!r}")
    if kind_clusters is not None and cluster not in kind_clusters:
        return Verdict(False, f"kind has no cluster named {cluster!r}")
    if not is_loopback_server(server):
        return Verdict(False, f"API server {server} is not on loopback, so not a local kind cluster")
    if not marker_configmap:
        return Verdict(False, f"no marker ConfigMap {MARKER_NAMESPACE}/{MARKER_NAME}: "
                              "the suite did not create this cluster")
    labels = (marker_configmap.get("metadata") or {}).get("labels") or {}
    if labels.get(MANAGED_BY[0]) != MANAGED_BY[1]:
        return Verdict(False, f"marker ConfigMap lacks label {MANAGED_BY[0]}={MANAGED_BY[1]}")
    data = marker_configmap.get("data") or {}
    if data.get("cluster") != cluster:
        return Verdict(False, f"marker names cluster {data.get('cluster')!r}, not {cluster!r}")
    return Verdict(True, f"kind cluster {cluster} created by the suite "
                         f"(run {data.get('created-by-run', '?')}, {data.get('created-at', '?')})")


def destructive_decision(*, target_name: str, created_by_suite: bool, reason: str,
                         allow_destructive: bool) -> tuple[str, str]:
    """("run" | "skip" | "fail", one-line message) for a destructive test.

    Allowed on a cluster the suite created, or with --allow-destructive. Otherwise a
    live target is skipped (destructive suites never run against production by
    default) and a kind target that fails verification fails loudly: the suite
    expected its own cluster there.
    """
    if created_by_suite:
        return "run", f"destructive test allowed: {reason}"
    if allow_destructive:
        return "run", f"destructive test allowed by --allow-destructive on {target_name} ({reason})"
    message = (f"refused: destructive test on {target_name}, which the suite did not create "
               f"({reason}); pass --allow-destructive to override")
    return ("fail" if target_name.startswith("kind://") else "skip"), message
