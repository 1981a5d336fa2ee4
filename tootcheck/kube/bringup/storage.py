"""Storage phase: the NFS server and its StorageClass."""

from __future__ import annotations

from tootcheck.kube import plan
from tootcheck.kube.bringup.context import (
    Context,
    apply_and_wait,
)
from tootcheck.kube.waits import Watch

STORAGE_WATCHES = (Watch("apps/v1", "Deployment", "nfs", "nfs-server"),
                   Watch("storage.k8s.io/v1", "StorageClass", name="nfs-csi"))


def run_storage(ctx: Context, phase: plan.Phase) -> str:
    return apply_and_wait(ctx, phase, STORAGE_WATCHES)


