"""The FROM and TO renders, as far as an upgrade cares: what the Mastodon Deployment
runs (:func:`inspect_render`), whether TO meets the plan's requirements
(:func:`requirement_problems`), and what the API server or the data volume would
refuse between the two renders: immutable fields, a PostgreSQL major change, a
renamed workload. Also the scratch-workspace helpers (image overrides, chart version).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import yaml

from tootcheck import versions
from tootcheck.errors import BadInput
from tootcheck.rehearsal.table import Item, Minimum, ReleaseLine

Doc = Mapping[str, Any]


class Release(Protocol):
    @property
    def tag(self) -> str: ...
    @property
    def line(self) -> tuple[int, int]: ...


class PlanView(Protocol):
    """What the render checks read of a RehearsalPlan (tootcheck.rehearsal.plan imports
    this module, so it is described here rather than imported)."""

    @property
    def target(self) -> Release: ...
    @property
    def postgres(self) -> Minimum: ...
    @property
    def redis(self) -> Minimum: ...
    @property
    def env_required(self) -> tuple[str, ...]: ...
    @property
    def env_removed(self) -> tuple[str, ...]: ...
    @property
    def post_deployment_migrations(self) -> tuple[Item, ...]: ...
    @property
    def lines(self) -> tuple[ReleaseLine, ...]: ...


ENCRYPTION_KEYS = ("ACTIVE_RECORD_ENCRYPTION_DETERMINISTIC_KEY",
                   "ACTIVE_RECORD_ENCRYPTION_KEY_DERIVATION_SALT",
                   "ACTIVE_RECORD_ENCRYPTION_PRIMARY_KEY")
# The line that split streaming into ghcr.io/mastodon/mastodon-streaming (v4.3.0 notes).
STREAMING_IMAGE_LINE = (4, 3)

# ------------------------------------------------------- the render at TO

# Keys of Secret mastodon-secrets (the reference names them; the bring-up creates them).
MASTODON_SECRET_KEYS = (
    "SECRET_KEY_BASE", "OTP_SECRET", "VAPID_PRIVATE_KEY", "DB_PASS", "REDIS_PASSWORD",
    "OIDC_CLIENT_SECRET", *ENCRYPTION_KEYS, "SMTP_PASSWORD",
)
MIGRATION_TASKS = ("db:prepare", "db:migrate")


@dataclass(frozen=True)
class InitContainer:
    name: str
    image: str
    sidecar: bool
    command: tuple[str, ...]


@dataclass(frozen=True)
class Deployed:
    """What a render of the Mastodon Deployment says, as far as upgrades care."""

    name: str
    strategy: str
    images: Mapping[str, str]  # container (and init container) name -> image
    init: tuple[InitContainer, ...]
    env: frozenset[str]  # variable names set by ConfigMaps and container env
    secret_refs: frozenset[str]  # Secrets the Mastodon containers take env from
    postgres: tuple[int, ...] | None
    redis: tuple[int, ...] | None
    selector: Mapping[str, Any] = field(default_factory=dict)


def image_version(image: str) -> tuple[int, ...] | None:
    """``postgres:17.11-bookworm`` -> (17, 11); None without a numeric tag."""
    tag = image.rsplit("/", 1)[-1].partition("@")[0]
    if ":" not in tag:
        return None
    match = re.match(r"v?(\d+(?:\.\d+)*)", tag.split(":", 1)[1])
    return tuple(int(p) for p in match[1].split(".")) if match else None


def image_tag(image: str) -> str:
    last = image.rsplit("/", 1)[-1].partition("@")[0]
    return last.split(":", 1)[1] if ":" in last else ""


def image_repo(image: str) -> str:
    head, _, last = image.partition("@")[0].rpartition("/")
    name = last.split(":", 1)[0]
    return f"{head}/{name}" if head else name


def _pod_spec(doc: Doc) -> Mapping[str, Any]:
    return ((doc.get("spec") or {}).get("template") or {}).get("spec") or {}


def mastodon_deployment(docs: Iterable[Doc]) -> Doc:
    """The Deployment running Mastodon's web container."""
    for doc in docs:
        if doc.get("kind") == "Deployment" and any(
                image_repo(c.get("image", "")) == versions.MASTODON_IMAGE
                for c in _pod_spec(doc).get("containers") or []):
            return doc
    raise BadInput(f"the render has no Deployment running {versions.MASTODON_IMAGE}")


def inspect_render(docs: Sequence[Doc]) -> Deployed:
    deployment = mastodon_deployment(docs)
    spec = _pod_spec(deployment)
    config_maps = {d["metadata"]["name"]: d for d in docs if d.get("kind") == "ConfigMap"}
    env: set[str] = set()
    secret_refs: set[str] = set()
    images: dict[str, str] = {}
    init: list[InitContainer] = []
    for container in [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]:
        images[container["name"]] = container.get("image", "")
        if image_repo(container.get("image", "")) not in (versions.MASTODON_IMAGE,
                                                          versions.MASTODON_STREAMING_IMAGE):
            continue
        env.update(e["name"] for e in container.get("env") or [])
        for source in container.get("envFrom") or []:
            if "configMapRef" in source:
                cm = config_maps.get(source["configMapRef"].get("name", ""))
                env.update((cm or {}).get("data") or {})
            if "secretRef" in source:
                secret_refs.add(source["secretRef"].get("name", ""))
    for container in spec.get("initContainers") or []:
        init.append(InitContainer(container["name"], container.get("image", ""),
                                  container.get("restartPolicy") == "Always",
                                  tuple(container.get("command") or ()) +
                                  tuple(container.get("args") or ())))

    def version_of(repo: str) -> tuple[int, ...] | None:
        for image in images.values():
            if image_repo(image).rsplit("/", 1)[-1] == repo:
                return image_version(image)
        return None

    return Deployed(
        name=deployment["metadata"]["name"],
        strategy=((deployment.get("spec") or {}).get("strategy") or {}).get("type", "RollingUpdate"),
        images=images, init=tuple(init), env=frozenset(env), secret_refs=frozenset(secret_refs),
        postgres=version_of("postgres"), redis=version_of("redis"),
        selector=(deployment.get("spec") or {}).get("selector") or {})


def _dotted(version: Sequence[int]) -> str:
    return ".".join(str(p) for p in version)


def requirement_problems(
    plan: PlanView,
    deployed: Deployed,
    secret_keys: Mapping[str, Iterable[str]] | None = None,
) -> list[str]:
    """Why the TO render cannot be upgraded to as the plan says (empty: it can)."""
    if secret_keys is None:
        secret_keys = {"mastodon-secrets": MASTODON_SECRET_KEYS}
    to = plan.target
    problems: list[str] = []
    postgres, redis = plan.postgres, plan.redis
    if deployed.postgres is None:
        problems.append("no PostgreSQL container with a versioned image: cannot check "
                        f"PostgreSQL {postgres.describe()} (needed by {to})")
    elif (why := postgres.problem(deployed.postgres)) is not None:
        problems.append(f"{to} needs PostgreSQL {postgres.describe()}; the deployment runs "
                        f"{_dotted(deployed.postgres)} ({why}; {postgres.source.cite()})")
    if deployed.redis is None:
        problems.append(f"no Redis container with a versioned image: cannot check Redis "
                        f"{redis.describe()} (needed by {to})")
    elif (why := redis.problem(deployed.redis)) is not None:
        problems.append(f"{to} needs Redis {redis.describe()}; the deployment runs "
                        f"{_dotted(deployed.redis)} ({why}; {redis.source.cite()})")
    from_secrets = {key for ref in deployed.secret_refs for key in secret_keys.get(ref, ())}
    for name in plan.env_required:
        if name not in deployed.env and name not in from_secrets:
            problems.append(f"{to} needs {name} set before its first start; neither the "
                            "ConfigMap nor the referenced Secrets provide it")
    for name in plan.env_removed:
        if name in deployed.env:
            problems.append(f"{name} is set but {to} no longer supports it")
    if plan.post_deployment_migrations and "SKIP_POST_DEPLOYMENT_MIGRATIONS" in deployed.env:
        rows = ", ".join(r.name for r in plan.lines if r.post_deployment_migrations)
        problems.append(f"SKIP_POST_DEPLOYMENT_MIGRATIONS is set: the post-deployment "
                        f"migrations of {rows} would never run (the deployment has no second "
                        "migration step)")
    if deployed.strategy != "Recreate":
        problems.append(f"Deployment {deployed.name} uses {deployed.strategy}: old pods would "
                        "serve against the migrated schema; the rehearsal models Recreate")
    problems += _migration_problems(deployed, to)
    for name, image in deployed.images.items():
        repo = image_repo(image)
        if repo in (versions.MASTODON_IMAGE, versions.MASTODON_STREAMING_IMAGE) and \
                image_tag(image) != to.tag:
            problems.append(f"container {name} runs {image}, not {to.tag}")
    if not any(image_repo(i) == versions.MASTODON_STREAMING_IMAGE
               for i in deployed.images.values()):
        problems.append(f"no container runs {versions.MASTODON_STREAMING_IMAGE}")
    return problems


def postgres_major_change(before: Deployed, after: Deployed) -> str | None:
    """One line when the PostgreSQL major differs between FROM and TO: the data
    directory on the volume would not start under the new major (needs pg_upgrade)."""
    if before.postgres is None or after.postgres is None or \
            before.postgres[0] == after.postgres[0]:
        return None
    return (f"PostgreSQL changes major between FROM ({_dotted(before.postgres)}) and TO "
            f"({_dotted(after.postgres)}): the data directory on the volume needs pg_upgrade "
            "(or a dump and restore); upgrade PostgreSQL on its own first, then rehearse "
            "Mastodon with the same major on both sides")


def workload_renamed(before: Sequence[Doc], after: Sequence[Doc]) -> str | None:
    """One line when the Mastodon Deployment has another name in TO's render: apply
    would start the new one beside the old, both on the same volume, while it migrates."""
    old, new = mastodon_deployment(before), mastodon_deployment(after)
    was, now = old["metadata"]["name"], new["metadata"]["name"]
    if was == now:
        return None
    return (f"the Mastodon Deployment is renamed {was} -> {now} by TO's render: the old pod "
            "would keep serving on the same volume while the new one migrates; keep the name "
            f"(app-template: the controller key) or scale {was} to 0 and delete it in the "
            "upgrade procedure, then rehearse that")


def _migration_problems(deployed: Deployed, to: Release) -> list[str]:
    migrators = [c for c in deployed.init if not c.sidecar
                 and any(task in c.command for task in MIGRATION_TASKS)]
    if not migrators:
        return [f"no init container runs rails {' or '.join(MIGRATION_TASKS)}: {to}'s "
                "migrations would never run before the new processes start"]
    problems = []
    migrator = migrators[0]
    position = [c.name for c in deployed.init].index(migrator.name)
    late = [c.name for c in deployed.init[position + 1:] if c.sidecar]
    if late:
        problems.append(f"sidecar(s) {', '.join(late)} start after {migrator.name}: the "
                        "migration would run without its database")
    if image_repo(migrator.image) != versions.MASTODON_IMAGE:
        problems.append(f"{migrator.name} runs {migrator.image}, not {versions.MASTODON_IMAGE}")
    return problems


def expected_order(deployed: Deployed) -> list[str]:
    """The start order the Deployment defines: sidecars and init containers in list
    order, then the containers (together)."""
    containers = [n for n in deployed.images if n not in {c.name for c in deployed.init}]
    return [*(c.name for c in deployed.init), "+".join(containers)]


IMMUTABLE: dict[str, tuple[str, ...]] = {
    "Deployment": ("spec.selector",),
    "StatefulSet": ("spec.selector", "spec.serviceName", "spec.volumeClaimTemplates"),
    "DaemonSet": ("spec.selector",),
    "PersistentVolumeClaim": ("spec.accessModes", "spec.storageClassName", "spec.volumeMode"),
    "Service": ("spec.clusterIP",),
    "Job": ("spec.template", "spec.selector"),
}


def _at(doc: Doc, path: str) -> Any:
    node: Any = doc
    for part in path.split("."):
        node = node.get(part) if isinstance(node, Mapping) else None
    return node


def immutable_changes(before: Sequence[Doc], after: Sequence[Doc]) -> list[str]:
    """Changes between two renders that the API server refuses to apply in place."""
    def key(d: Doc) -> tuple[str, str, str]:
        meta = d.get("metadata") or {}
        return (d.get("kind", ""), meta.get("namespace") or "", meta.get("name", ""))

    old = {key(d): d for d in before}
    problems = []
    for doc in after:
        previous = old.get(key(doc))
        if previous is None:
            continue
        for path in IMMUTABLE.get(doc.get("kind", ""), ()):
            was, now = _at(previous, path), _at(doc, path)
            if was != now:
                kind, ns, name = key(doc)
                problems.append(f"{kind}/{ns + '/' if ns else ''}{name}: {path} changes from "
                                f"{was!r} to {now!r}; the API server refuses that in place")
    return problems


def dropped_objects(before: Sequence[Doc], after: Sequence[Doc]) -> list[str]:
    """Objects of FROM's render that TO's no longer has (apply does not prune them)."""
    def ident(d: Doc) -> str:
        meta = d.get("metadata") or {}
        return "/".join(p for p in (d.get("kind"), meta.get("namespace"), meta.get("name")) if p)

    now = {ident(d) for d in after}
    return [ident(d) for d in before if ident(d) not in now]


def carry_overrides(before: Sequence[Doc], after: Sequence[Doc], live: Mapping[str, str],
                    configmap: str = "mastodon-env") -> tuple[list[dict[str, Any]], list[str]]:
    """TO's docs with the run-time values the bring-up set in ``configmap`` kept.

    A key whose live value differs from FROM's render was set at bring-up (the kind
    run's own VAPID public key, say); when TO's render leaves that key as FROM had
    it, the upgrade must not reset it. Returns the docs and the keys carried over.
    """
    def data(docs: Sequence[Doc]) -> Mapping[str, Any]:
        for doc in docs:
            if doc.get("kind") == "ConfigMap" and (doc.get("metadata") or {}).get("name") == configmap:
                return doc.get("data") or {}
        return {}

    was, will = data(before), data(after)
    carried = sorted(k for k, value in live.items()
                     if k in was and value != was[k] and will.get(k) == was[k])
    out: list[dict[str, Any]] = []
    for doc in after:
        if carried and doc.get("kind") == "ConfigMap" and \
                (doc.get("metadata") or {}).get("name") == configmap:
            doc = {**doc, "data": {**(doc.get("data") or {}), **{k: live[k] for k in carried}}}
        out.append(dict(doc))
    return out, carried


# ------------------------------------------------------ rehearsal workspace


def image_overrides(version: Release) -> list[dict[str, str]]:
    """kustomize ``images:`` entries that put both Mastodon images at ``version``.
    Before 4.3 there is no streaming image: streaming runs from the mastodon image
    (same ``node ./streaming/index.js`` in /opt/mastodon)."""
    streaming: dict[str, str] = {"name": versions.MASTODON_STREAMING_IMAGE, "newTag": version.tag}
    if version.line < STREAMING_IMAGE_LINE:
        streaming["newName"] = versions.MASTODON_IMAGE
    return [{"name": versions.MASTODON_IMAGE, "newTag": version.tag}, streaming]


def wrapper_kustomization(base: str, version: Release) -> dict[str, Any]:
    """A kustomization wrapping ``base`` (a relative path) with the image overrides."""
    return {"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
            "resources": [base], "images": image_overrides(version)}


def with_chart_version(kustomization: str, version: Release, chart: str = "app-template") -> str:
    """The kustomization text with ``chart``'s helmCharts version set to ``version``."""
    data = yaml.safe_load(kustomization) or {}
    entries = [c for c in data.get("helmCharts") or [] if c.get("name") == chart]
    if not entries:
        raise BadInput(f"the kustomization has no helmCharts entry named {chart}")
    for entry in entries:
        entry["version"] = version.tag
    return str(yaml.safe_dump(data, sort_keys=False))


