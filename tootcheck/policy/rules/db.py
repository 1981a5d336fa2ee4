"""PostgreSQL and Redis durability (MSTDN-DB-*)."""

from __future__ import annotations

from collections.abc import Iterator

from tootcheck.model import Severity
from tootcheck.policy.k8s import WORKLOAD_KINDS, replicas, volumes_by_name
from tootcheck.policy.registry import rule
from tootcheck.policy.rules._common import role_in
from tootcheck.policy.rules.pv import DURABLE_VOLUMES, flag, mount_holding, pgdata, postgres_major, tokens
from tootcheck.policy.types import Context, Hit, Subject

E, W = Severity.ERROR, Severity.WARN
PG_DOCS = "docker-library/docs postgres/content.md (PGDATA, NFS, 18+ layout)"


@rule("MSTDN-DB-001", E, "PGDATA is a subdirectory of the PostgreSQL claim (18+: the claim "
      "is at /var/lib/postgresql)",
      profile="baseline", kinds=WORKLOAD_KINDS, scope="container", applies=role_in("postgres"),
      remediation="Mount the claim at /var/lib/postgresql/data with PGDATA=/var/lib/postgresql/"
                  "data/pgdata (postgres <= 17), or at /var/lib/postgresql (postgres 18+).",
      refs=(PG_DOCS,))
def pgdata_layout(s: Subject, ctx: Context) -> Iterator[Hit]:
    """initdb refuses a non-empty directory and cannot chown an NFS mount point, so up to
    17 PGDATA must be a subdirectory of the mount; 18+ keeps versioned data under
    /var/lib/postgresql, where the claim must be mounted. Otherwise PostgreSQL does not
    start, or (data off the claim) loses the database with the pod. The chown failure
    depends on the storage (NFS with root squash)."""
    c = s.container
    assert c is not None
    env = ctx.env(c)
    path = pgdata(c, env.value("PGDATA"))
    m = mount_holding(c, path)
    major = postgres_major(c)
    pgdata_var = env.get("PGDATA")
    pgdata_path = pgdata_var.path if pgdata_var else c.field("env")
    if m is None:
        yield Hit(f"PGDATA {path} is not under any volume mount", pgdata_path)
        return
    mount = str(m.get("mountPath", "")).rstrip("/")
    vol = volumes_by_name(s.obj).get(str(m.get("name")), {})
    if not any(k in vol for k in DURABLE_VOLUMES):
        yield Hit(f"PGDATA {path} is on volume {m.get('name')}, not a PersistentVolumeClaim "
                  f"or NFS", c.field("volumeMounts"))
    if major is not None and major >= 18:
        if mount != "/var/lib/postgresql":
            yield Hit(f"postgres {major} keeps data under /var/lib/postgresql, but the claim is "
                      f"mounted at {mount}", c.field("volumeMounts"))
    elif path.rstrip("/") == mount:
        yield Hit(f"PGDATA {path} is the mount point itself, not a subdirectory of it",
                  pgdata_path)


@rule("MSTDN-DB-002", E, "PostgreSQL runs once, with a password from a Secret",
      profile="baseline", kinds=WORKLOAD_KINDS, scope="container", applies=role_in("postgres"),
      remediation="Read POSTGRES_PASSWORD from the Secret, never use POSTGRES_HOST_AUTH_METHOD="
                  "trust, and run PostgreSQL in one replica (a Deployment needs strategy "
                  "Recreate).",
      refs=(PG_DOCS, "mastodon/mastodon docker-compose.yml (trust is for an isolated network "
            "only)"))
def postgres_single(s: Subject, ctx: Context) -> Iterator[Hit]:
    """trust lets anything that reaches the port log in as any role; two PostgreSQL
    processes on one data directory (a second replica, or a RollingUpdate surge)
    corrupt it."""
    c = s.container
    assert c is not None
    env = ctx.env(c)
    pw = env.get("POSTGRES_PASSWORD")
    if env.get("POSTGRES_PASSWORD_FILE") is None:
        if pw is None:
            yield Hit("POSTGRES_PASSWORD is not set", c.field("env"))
        elif not pw.from_secret:
            yield Hit(f"POSTGRES_PASSWORD comes from {pw.describe()}, not a Secret", pw.path)
    method = env.value("POSTGRES_HOST_AUTH_METHOD")
    if method and method.lower() == "trust":
        yield Hit("POSTGRES_HOST_AUTH_METHOD is trust",
                  env.get("POSTGRES_HOST_AUTH_METHOD").path)  # type: ignore[union-attr]
    obj = s.obj
    if replicas(obj) > 1 or obj.kind in ("DaemonSet", "ReplicaSet"):
        yield Hit(f"{obj.kind} runs PostgreSQL in {replicas(obj)} replica(s)", ("spec", "replicas"))
    if obj.kind == "Deployment" and (obj.get("spec", "strategy", "type") or "RollingUpdate") \
            != "Recreate":
        yield Hit("Deployment running PostgreSQL does not use strategy Recreate (a rollout "
                  "would start a second server on the same data)", ("spec", "strategy"))


@rule("MSTDN-DB-003", E, "Redis persists to disk (AOF or RDB) under a volume",
      profile="baseline", kinds=WORKLOAD_KINDS, scope="container", applies=role_in("redis"),
      remediation="Run redis-server with --appendonly yes (or a non-empty --save) and keep "
                  "--dir (default /data) on the Redis claim.",
      refs=("mastodon/documentation content/en/admin/backups.md (Sidekiq queues live only in "
            "Redis)",))
def redis_persistence(s: Subject, ctx: Context) -> Iterator[Hit]:
    """Sidekiq's queues and scheduled jobs exist only in Redis; with neither AOF nor RDB
    snapshots a restart drops every pending delivery. Whether an fsynced AOF survives
    an NFS server restart depends on the storage (checked live by the in-container
    checks)."""
    c = s.container
    assert c is not None
    words = tokens(c)
    appendonly = (flag(words, "appendonly") or "no").lower()
    save = flag(words, "save")
    config_file = any(w.endswith(".conf") for w in words)
    if appendonly != "yes" and save is not None and save.strip() in ("", '""', "''"):
        yield Hit("Redis runs with --save \"\" and without --appendonly yes: nothing is "
                  "persisted", c.field("args"))
    elif appendonly != "yes" and save is None and not config_file and \
            flag(words, "appendonly") is not None:
        yield Hit("--appendonly is not yes; only the default RDB snapshots persist data",
                  c.field("args"))
    directory = flag(words, "dir") or "/data"
    m = mount_holding(c, directory)
    if m is None or str(m.get("mountPath")) == "/":
        yield Hit(f"Redis data directory {directory} is not on a volume", c.field("volumeMounts"))


@rule("MSTDN-DB-004", W, "A Redis memory cap never evicts keys",
      profile="baseline", kinds=WORKLOAD_KINDS, scope="container", applies=role_in("redis"),
      remediation="Use --maxmemory-policy noeviction whenever --maxmemory is set.",
      refs=("sidekiq/sidekiq#4752 (Sidekiq warns unless maxmemory-policy is noeviction)",))
def redis_eviction(s: Subject, ctx: Context) -> Iterator[Hit]:
    """With an eviction policy Redis silently deletes queued jobs when memory is full."""
    c = s.container
    assert c is not None
    words = tokens(c)
    maxmemory = flag(words, "maxmemory")
    policy = flag(words, "maxmemory-policy") or "noeviction"
    if maxmemory not in (None, "0", "0b") and policy != "noeviction":
        yield Hit(f"--maxmemory {maxmemory} with --maxmemory-policy {policy}", c.field("args"))
