"""Persistence on NFS (MSTDN-PV-*): what must be on a PVC, which class, which reclaim policy."""

from __future__ import annotations

import shlex
from collections.abc import Iterator
from typing import Any, cast

from tootcheck.model import Severity
from tootcheck.policy.bundle import K8sObject
from tootcheck.policy.k8s import (
    WORKLOAD_KINDS,
    Container,
    all_containers,
    mount_for_path,
    replicas,
    volumes_by_name,
)
from tootcheck.policy.registry import rule
from tootcheck.policy.rules._common import role_in
from tootcheck.policy.types import Context, Hit, Subject

E, W = Severity.ERROR, Severity.WARN
SYSTEM_PATHS = ("/opt/mastodon/public/system", "/mastodon/public/system")
BACKUPS_MD = "mastodon/documentation content/en/admin/backups.md"


def tokens(c: Container) -> list[str]:
    """command + args as shell words (a `sh -c "..."` string is split too)."""
    out: list[str] = []
    for part in [*(c.data.get("command") or []), *(c.data.get("args") or [])]:
        text = str(part)
        try:
            out.extend(shlex.split(text) if " " in text else [text])
        except ValueError:
            out.extend(text.split())
    return out


def flag(words: list[str], name: str) -> str | None:
    """Value of ``--name value`` (or ``--name=value``); the last occurrence wins."""
    value = None
    for i, w in enumerate(words):
        if w == f"--{name}" and i + 1 < len(words):
            value = words[i + 1]
        elif w.startswith(f"--{name}="):
            value = w.split("=", 1)[1]
    return value


def postgres_major(c: Container) -> int | None:
    v = c.image.version
    return v[0] if v else None


def pgdata(c: Container, env_value: str | None) -> str:
    if env_value:
        return env_value
    major = postgres_major(c)
    return f"/var/lib/postgresql/{major}/docker" if major and major >= 18 \
        else "/var/lib/postgresql/data"


def redis_dir(c: Container) -> str:
    return flag(tokens(c), "dir") or "/data"


def data_paths(c: Container, ctx: Context) -> list[tuple[str, str]]:
    """(what, path) the container keeps durable data in."""
    env = ctx.env(c)
    if c.role in ("web", "sidekiq", "mastodon"):
        if (env.value("S3_ENABLED") or "").lower() == "true" or \
                (env.value("SWIFT_ENABLED") or "").lower() == "true":
            return []
        return [("media (public/system)", SYSTEM_PATHS[0])]
    if c.role == "postgres":
        return [("PGDATA", pgdata(c, env.value("PGDATA")))]
    if c.role == "redis":
        return [("Redis data", redis_dir(c))]
    return []


def mount_holding(c: Container, path: str) -> dict[str, Any] | None:
    if path.startswith("/opt/mastodon/"):
        return mount_for_path(c, path) or mount_for_path(c, path.replace("/opt/mastodon/",
                                                                         "/mastodon/", 1))
    return mount_for_path(c, path)


DURABLE_VOLUMES = ("persistentVolumeClaim", "nfs")  # a claim, or the NFS share mounted inline


def durable_volume(c: Container, path: str) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    """The mount holding ``path`` and its volume ({} when there is none)."""
    m = mount_holding(c, path)
    if m is None or str(m.get("mountPath")) == "/":
        return None, {}
    return m, volumes_by_name(c.obj).get(str(m.get("name")), {})


@rule("MSTDN-PV-001", E, "Media, PGDATA and Redis data live on a claim or the NFS share",
      profile="baseline", kinds=WORKLOAD_KINDS, scope="container",
      applies=role_in("web", "sidekiq", "mastodon", "postgres", "redis"),
      remediation="Mount a PersistentVolumeClaim (or the NFS share, inline nfs:) at "
                  "/opt/mastodon/public/system (web and sidekiq), at the PostgreSQL data "
                  "directory and at Redis's /data.",
      refs=(BACKUPS_MD, "mastodon/chart templates/deployment-web.yaml (system volume)"))
def durable_paths(s: Subject, ctx: Context) -> Iterator[Hit]:
    """An emptyDir (or the container's own filesystem) is deleted with the pod: uploaded
    media, the database and queued jobs would vanish on the next rollout. A claim and
    an inline nfs: volume both survive the pod (whether a claim's data survives its
    deletion depends on the storage: MSTDN-PV-002/003)."""
    c = s.container
    assert c is not None
    for what, path in data_paths(c, ctx):
        m, vol = durable_volume(c, path)
        if m is None:
            yield Hit(f"{what} at {path} is not on any volume mount", c.field("volumeMounts"))
            continue
        if not any(k in vol for k in DURABLE_VOLUMES):
            kind = next((k for k in vol if k != "name"), "missing volume")
            yield Hit(f"{what} at {path} is on volume {m.get('name')} of type {kind}, not a "
                      f"PersistentVolumeClaim or NFS", c.field("volumeMounts"))


def _claim_templates(obj: K8sObject) -> list[tuple[tuple[Any, ...], dict[str, Any]]]:
    return [(("spec", "volumeClaimTemplates", i), t) for i, t in
            enumerate(obj.get("spec", "volumeClaimTemplates") or []) if isinstance(t, dict)]


def _is_nfs_pv(pv: K8sObject, ctx: Context) -> bool:
    return "nfs" in (pv.get("spec") or {}) or \
        pv.get("spec", "csi", "driver") in ctx.config.nfs_provisioners


@rule("MSTDN-PV-002", E, "Claims use an NFS StorageClass (or bind an NFS volume)",
      profile="baseline", kinds=("PersistentVolumeClaim", "StatefulSet"),
      applies=lambda s, ctx: s.obj.kind == "PersistentVolumeClaim" or bool(
          _claim_templates(s.obj)),
      remediation="Set storageClassName: nfs-csi (or another class from nfs_storage_classes "
                  "whose provisioner is an NFS provisioner), or bind a PV with spec.nfs.",
      refs=("Kyverno other/require-storageclass", "Kyverno other/restrict-storageclass",
            "kubernetes-csi/csi-driver-nfs (nfs.csi.k8s.io)"))
def nfs_class(s: Subject, ctx: Context) -> Iterator[Hit]:
    """All persistent data lives on the NFS server; a claim on another (or the default)
    class lands on node-local storage that the backups do not cover, and is lost with
    the node. Live, the claim must be Bound. Depends on the storage (the class's
    provisioner)."""
    claims = [((), s.obj.data)] if s.obj.kind == "PersistentVolumeClaim" \
        else _claim_templates(s.obj)
    for base, claim in claims:
        spec = claim.get("spec") or {}
        name = (claim.get("metadata") or {}).get("name", s.obj.name)
        cls = spec.get("storageClassName")
        volume = spec.get("volumeName")
        if volume and not cls:
            pv = ctx.bundle.find("PersistentVolume", None, str(volume))
            if pv is None or not _is_nfs_pv(pv, ctx):
                yield Hit(f"claim {name} binds PV {volume}, which is not a rendered NFS volume",
                          (*base, "spec", "volumeName"))
            continue
        if cls not in ctx.config.nfs_storage_classes:
            yield Hit(f"claim {name} uses storageClassName {cls or 'unset (cluster default)'}, "
                      f"not one of {', '.join(ctx.config.nfs_storage_classes)}",
                      (*base, "spec", "storageClassName"))
            continue
        sc = ctx.bundle.find("StorageClass", None, str(cls))
        if sc is not None and sc.data.get("provisioner") not in ctx.config.nfs_provisioners:
            yield Hit(f"StorageClass {cls} is provisioned by {sc.data.get('provisioner')}, not "
                      f"an NFS provisioner", (*base, "spec", "storageClassName"))
        elif sc is None and ctx.mode == "live":
            yield Hit(f"StorageClass {cls} does not exist in the cluster",
                      (*base, "spec", "storageClassName"))
    if ctx.mode == "live" and s.obj.kind == "PersistentVolumeClaim":
        phase = s.obj.live_status.get("phase")
        if phase != "Bound":
            yield Hit(f"claim is {phase or 'in an unknown phase'}, not Bound", ())


@rule("MSTDN-PV-003", E, "NFS volumes and classes retain data when claims are deleted",
      profile="baseline", kinds=("PersistentVolume", "StorageClass"),
      remediation="Set persistentVolumeReclaimPolicy: Retain on PersistentVolumes and "
                  "reclaimPolicy: Retain on the StorageClass (or archiveOnDelete: \"true\" "
                  "for nfs-subdir-external-provisioner).",
      refs=("Kubernetes: dynamically provisioned volumes default to reclaimPolicy Delete",
            "kubernetes-sigs/nfs-subdir-external-provisioner archiveOnDelete"))
def retain(s: Subject, ctx: Context) -> Iterator[Hit]:
    """The reclaim policy defaults to Delete: deleting the namespace or a claim would
    erase the media and the database on the NFS server. Depends on the storage (the
    provisioner's reclaim and archive behaviour)."""
    obj = s.obj
    if obj.kind == "PersistentVolume":
        policy = obj.get("spec", "persistentVolumeReclaimPolicy") or "Retain (static default)"
        if obj.get("spec", "persistentVolumeReclaimPolicy") not in (None, "Retain"):
            yield Hit(f"persistentVolumeReclaimPolicy is {policy}",
                      ("spec", "persistentVolumeReclaimPolicy"))
        return
    params = obj.data.get("parameters") or {}
    if obj.data.get("reclaimPolicy") == "Retain" or \
            str(params.get("archiveOnDelete", "")).lower() == "true" or \
            str(params.get("onDelete", "")).lower() in ("retain", "archive"):
        return
    yield Hit(f"reclaimPolicy is {obj.data.get('reclaimPolicy') or 'unset (Delete)'}",
              ("reclaimPolicy",))


def _claim_users(ctx: Context) -> dict[tuple[str | None, str], list[tuple[K8sObject, Container]]]:
    key = ("claim-users",)
    if key not in ctx.bundle.cache:
        users: dict[tuple[str | None, str], list[tuple[K8sObject, Container]]] = {}
        for c in all_containers(ctx.bundle):
            vols = volumes_by_name(c.obj)
            for m in c.mounts():
                claim = (vols.get(str(m.get("name"))) or {}).get("persistentVolumeClaim") or {}
                if claim.get("claimName"):
                    users.setdefault((c.obj.namespace, str(claim["claimName"])), []).append(
                        (c.obj, c))
        ctx.bundle.cache[key] = users
    return cast("dict[tuple[str | None, str], list[tuple[K8sObject, Container]]]", ctx.bundle.cache[key])


@rule("MSTDN-PV-004", W, "Access modes fit how claims are mounted",
      profile="baseline", kinds=("PersistentVolumeClaim",),
      remediation="Use ReadWriteMany for a claim mounted by several pods (public/system) and "
                  "ReadWriteOnce/ReadWriteOncePod with a single replica for PostgreSQL.",
      refs=("mastodon/chart (pod affinity for RWO system volume)",
            "Kyverno other/enforce-readwriteonce-pod"))
def access_modes(s: Subject, ctx: Context) -> Iterator[Hit]:
    """A ReadWriteOnce claim mounted by two workloads (or a scaled one) leaves pods
    Pending on another node; PostgreSQL must never be mounted by two pods at once.
    Depends on the cluster (several nodes) and the storage (which modes it honours)."""
    modes = set(s.obj.get("spec", "accessModes") or [])
    users = _claim_users(ctx).get((s.obj.namespace, s.obj.name), [])
    pods = {id(w): w for w, _ in users}
    many = len(pods) > 1 or any(replicas(w) > 1 for w in pods.values())
    if many and "ReadWriteMany" not in modes:
        yield Hit(f"claim is mounted by {len(pods)} workload(s) with "
                  f"{max(replicas(w) for w in pods.values())} replica(s) but is not "
                  f"ReadWriteMany", ("spec", "accessModes"))
    if any(c.role == "postgres" for _, c in users):
        if "ReadWriteMany" in modes:
            yield Hit("PostgreSQL's claim is ReadWriteMany; use ReadWriteOnce or ReadWriteOncePod",
                      ("spec", "accessModes"))
        if many:
            yield Hit("PostgreSQL's claim is used by more than one pod", ("spec", "accessModes"))


@rule("MSTDN-PV-005", W, "Durable data is mounted through PersistentVolumeClaims only",
      profile="hardened", kinds=WORKLOAD_KINDS, scope="container",
      applies=role_in("web", "sidekiq", "mastodon", "postgres", "redis"),
      remediation="Replace the inline nfs: volume with a PersistentVolumeClaim bound to a "
                  "static NFS PersistentVolume (or the nfs-csi StorageClass), so the NFS "
                  "server and export live in one object.",
      refs=("Pod Security Standards restricted (volume types)",
            "Kubernetes: PersistentVolumes decouple storage from pods"))
def claims_only(s: Subject, ctx: Context) -> Iterator[Hit]:
    """An inline nfs: volume works, but it repeats the server and export in every pod,
    bypasses the reclaim policy and is refused by the restricted Pod Security profile;
    hardened deployments mount claims only."""
    c = s.container
    assert c is not None
    for what, path in data_paths(c, ctx):
        m, vol = durable_volume(c, path)
        if m is not None and "nfs" in vol:
            yield Hit(f"{what} at {path} is on the inline nfs: volume {m.get('name')}, not a "
                      f"PersistentVolumeClaim", c.field("volumeMounts"))
