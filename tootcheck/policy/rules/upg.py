"""Upgrade safety (MSTDN-UPG-*): one Mastodon version, a migration step that runs first."""

from __future__ import annotations

import re
from collections.abc import Iterator

from tootcheck.model import Severity
from tootcheck.policy.k8s import WORKLOAD_KINDS, Container, all_containers, mastodon_containers
from tootcheck.policy.registry import rule
from tootcheck.policy.rules._common import has_role_container, role_in, web_container
from tootcheck.policy.types import Context, Hit, Subject

E, W = Severity.ERROR, Severity.WARN
CHART = "mastodon/chart templates/_db-migrate.tpl, job-db-pre-migrate.yaml"


def _version_text(c: Container) -> str:
    return c.image.tag or "no tag"


@rule("MSTDN-UPG-001", E, "web, sidekiq, streaming and the migration run one Mastodon version "
      "from the official registry",
      profile="baseline", kinds=WORKLOAD_KINDS, scope="container",
      applies=role_in("web", "sidekiq", "streaming", "migrate", "mastodon"),
      remediation="Use ghcr.io/mastodon/mastodon:vX.Y.Z for web, sidekiq and the migration and "
                  "ghcr.io/mastodon/mastodon-streaming:vX.Y.Z for streaming, all at the same "
                  "version (change them in one edit).",
      refs=("mastodon/mastodon docker-compose.yml (all services pinned together)",
            "Kyverno best-practices/restrict-image-registries"))
def one_version(s: Subject, ctx: Context) -> Iterator[Hit]:
    """Rails processes at different versions disagree about the schema and the job
    formats; the streaming server must match the API it serves."""
    c = s.container
    assert c is not None
    registry = ctx.config.mastodon_registry.rstrip("/")
    wanted_repo = f"{registry}/mastodon-streaming" if c.role == "streaming" else \
        f"{registry}/mastodon"
    if c.image.repo != wanted_repo and not (c.role == "streaming"
                                            and c.image.repo == f"{registry}/mastodon"):
        yield Hit(f"image {c.image.ref} is not from {wanted_repo}", c.field("image"))
    web = web_container(ctx, s.obj.namespace)
    ref = web if web is not None else next(
        (x for x in all_containers(ctx.bundle) if x.is_mastodon), None)
    if ref is None or ref is c:
        return
    if c.image.digest and c.image.digest == ref.image.digest:
        return
    if c.image.version is None or c.image.version != ref.image.version or \
            c.image.tag != ref.image.tag:
        yield Hit(f"{c.role} runs {_version_text(c)} but {ref.role} {ref.name!r} runs "
                  f"{_version_text(ref)}", c.field("image"))


MIGRATE_IN_COMMAND = re.compile(r"\bdb:(migrate|prepare)\b")


def _migrations(ctx: Context, s: Subject) -> list[Container]:
    """Migration containers: init containers of this pod, or in any Job of the bundle."""
    own = [c for c in ctx.containers(s.obj) if c.role == "migrate" and c.init]
    jobs = [c for c in mastodon_containers(ctx.bundle, "migrate", namespace=s.obj.namespace,
                                           any_namespace=False)
            if c.obj.kind in ("Job", "CronJob")]
    return own + jobs


@rule("MSTDN-UPG-002", E, "A database migration step runs with the web image and env",
      profile="baseline", kinds=WORKLOAD_KINDS, scope="container", applies=role_in("web"), modes=("offline",),
      remediation="Run bundle exec rails db:prepare (or db:migrate) before web starts: in "
                  "web's command before puma, as an init container after the database "
                  "sidecars, or as a Job, with the web image and the same envFrom sources.",
      refs=(CHART, "mastodon/documentation content/en/admin/upgrading.md"))
def migration_step(s: Subject, ctx: Context) -> Iterator[Hit]:
    """A new version started against an unmigrated schema fails or corrupts data. The
    step may be an init container (the reference's db-migrate, rails db:prepare), a
    Job, or web's own command (`rails db:migrate && exec puma ...`); a separate step
    must use exactly web's image and configuration."""
    web = s.container
    assert web is not None
    if MIGRATE_IN_COMMAND.search(web.command_line):
        return  # `rails db:migrate && exec puma ...`: web's own image and env, before it serves
    found = _migrations(ctx, s)
    if not found:
        yield Hit("no migration step: no init container or Job runs rails db:migrate/db:prepare",
                  web.field("image"))
        return
    web_sources = set(ctx.env(web).env_from)
    for m in found:
        where = f"{m.obj.kind} {m.obj.name} container {m.name!r}"
        if m.image.ref != web.image.ref:
            yield Hit(f"migration {where} uses {m.image.ref}, not web's {web.image.ref}",
                      web.field("image"))
        if set(ctx.env(m).env_from) != web_sources:
            yield Hit(f"migration {where} does not consume the same envFrom sources as web",
                      web.field("envFrom"))


@rule("MSTDN-UPG-003", W, "The migration step completes once, after the databases",
      profile="baseline", kinds=WORKLOAD_KINDS, applies=has_role_container("migrate"),
      remediation="For a Job: set backoffLimit and ttlSecondsAfterFinished (or hook-delete-"
                  "policy before-hook-creation) with restartPolicy Never/OnFailure. For an init "
                  "container: keep it a plain init container placed after the postgres and "
                  "redis sidecars, which need startup probes.",
      refs=("kube-linter job-ttl-seconds-after-finished", CHART,
            "Kubernetes sidecar containers: the next init container starts once a sidecar's "
            "startupProbe succeeds"))
def migration_order(s: Subject, ctx: Context) -> Iterator[Hit]:
    """A finished Job with a static name blocks the next apply (spec.template is
    immutable); an init-container migration that starts before PostgreSQL accepts
    connections fails and restarts the pod."""
    obj = s.obj
    containers = ctx.containers(obj)
    if obj.kind in ("Job", "CronJob"):
        spec = obj.get("spec") if obj.kind == "Job" else obj.get("spec", "jobTemplate", "spec")
        spec = spec or {}
        base = ("spec",) if obj.kind == "Job" else ("spec", "jobTemplate", "spec")
        if spec.get("backoffLimit") is None:
            yield Hit("migration Job sets no backoffLimit", (*base, "backoffLimit"))
        policy = str(obj.annotations.get("helm.sh/hook-delete-policy", ""))
        if spec.get("ttlSecondsAfterFinished") is None and "before-hook-creation" not in policy:
            yield Hit("migration Job sets neither ttlSecondsAfterFinished nor hook-delete-policy "
                      "before-hook-creation", (*base, "ttlSecondsAfterFinished"))
        return
    for idx, m in enumerate(containers):
        if m.role != "migrate" or not m.init:
            continue
        if m.sidecar:
            yield Hit(f"migration container {m.name!r} has restartPolicy Always (a sidecar "
                      f"never completes, so web starts before it finishes)",
                      m.field("restartPolicy"))
        for later in containers[idx + 1:]:
            if later.init and later.role in ("postgres", "redis"):
                yield Hit(f"migration container {m.name!r} runs before the {later.role} "
                          f"container {later.name!r} it needs", m.path)
        for earlier in containers[:idx]:
            if earlier.sidecar and earlier.role in ("postgres", "redis") and \
                    not isinstance(earlier.data.get("startupProbe"), dict):
                yield Hit(f"sidecar {earlier.name!r} has no startupProbe, so {m.name!r} may "
                          f"start before {earlier.role} accepts connections",
                          earlier.field("startupProbe"), earlier.name)
