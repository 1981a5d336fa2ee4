"""Fixtures for the persistence suite: the restart steps and where markers are recorded.

The restarts go through the bring-up's kube layer (``tootcheck.kube.pods``):
delete the one Mastodon pod and wait for a Ready replacement, then the same for
the NFS server pod (Deployment ``nfs-server`` in namespace ``nfs``,
manifests/infra/nfs). The suite is marked ``destructive``; the guard refuses it on
clusters the suite did not create unless ``--allow-destructive``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tootcheck.checks.markers import MarkerSet
from tootcheck.kube.pods import MASTODON_SELECTOR, kube_for, restart_pod, restart_pods
from tootcheck.settings import Settings
from tootcheck.target import Target

NFS_NAMESPACE = "nfs"
NFS_SELECTOR = "app.kubernetes.io/name=nfs-server"

RestartSteps = list[tuple[str, Callable[[], object]]]


@pytest.fixture(scope="session")
def restart_steps(target: Target) -> RestartSteps:
    if target.kubeconfig is None and target.kube_context is None:
        pytest.skip(f"target {target.name} has no kubeconfig: nothing to restart")

    def restart_mastodon() -> list[str]:
        return restart_pod(target, MASTODON_SELECTOR, timeout="restart")

    def restart_nfs() -> list[str]:
        return restart_pods(kube_for(target), NFS_NAMESPACE, NFS_SELECTOR, timeout="restart")

    return [("Mastodon pod restart", restart_mastodon), ("NFS server restart", restart_nfs)]


@pytest.fixture
def record_markers(settings: Settings) -> Callable[[MarkerSet], Path]:
    """Write the marker set (no secrets) next to the reports, for the operator."""

    def write(markers: MarkerSet) -> Path:
        path = Path(settings.reports_dir) / "persistence-markers.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(markers.to_json())
        return path

    return write
