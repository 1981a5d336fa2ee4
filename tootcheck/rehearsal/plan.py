"""What a rehearsal does, as data and pure functions: versions, refusals, the upgrade
path, the requirements the deployment must meet, and the step list.

:func:`make_plan` turns ``FROM``/``TO`` (and optionally the app-template chart's
``FROM``/``TO``) into a :class:`RehearsalPlan` or refuses with one line:

- malformed versions;
- ``FROM == TO`` with the chart unchanged (nothing would be rehearsed);
- a downgrade (Mastodon's migrations are one-way; a rollback is a restore);
- ``FROM`` older than :data:`MIN_SUPPORTED` (the reference runs the separate
  ``mastodon-streaming`` image, published from v4.3.0 on).

:data:`RELEASE_LINES` is the supported upgrade-path table, one row per release
line, taken from Mastodon's release notes, upstream code and maintainers'
statements (each row cites its sources). :func:`requirement_problems` checks the
rendered TO deployment against the rows the upgrade crosses (PostgreSQL and Redis
minimums, variables that must or must not be set, post-deployment migrations,
the migration init container, Recreate) before anything is deployed, and
:func:`immutable_changes` finds changes between the FROM and TO renders the API
server refuses in place (a changed Deployment selector: helm/chart-testing#433).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import total_ordering
from typing import Any

import yaml

from tootcheck import versions
from tootcheck.errors import BadInput

Doc = Mapping[str, Any]

_VERSION = re.compile(r"(v?)(\d+)\.(\d+)\.(\d+)(?:-([0-9A-Za-z][0-9A-Za-z.-]*))?")


def _pre_key(pre: str) -> tuple[tuple[int, int | str], ...]:
    """SemVer pre-release precedence: numeric parts numerically, before text parts."""
    return tuple((0, int(p)) if p.isdigit() else (1, p) for p in pre.split(".") if p)


@total_ordering
@dataclass(frozen=True)
class Version:
    """A release: ``v4.7.2``, ``v4.8.0-rc.1`` (Mastodon) or ``4.1.1`` (app-template)."""

    major: int
    minor: int
    patch: int
    pre: str = ""
    prefix: str = "v"

    @property
    def key(self) -> tuple[Any, ...]:
        # a pre-release sorts before its release
        return (self.major, self.minor, self.patch, 0 if self.pre else 1, _pre_key(self.pre))

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, Version):
            return NotImplemented
        return self.key < other.key

    @property
    def tag(self) -> str:
        return f"{self.prefix}{self.major}.{self.minor}.{self.patch}" + (
            f"-{self.pre}" if self.pre else "")

    @property
    def line(self) -> tuple[int, int]:
        return (self.major, self.minor)

    def __str__(self) -> str:
        return self.tag


def parse_version(text: str, flag: str = "FROM", *, prefix: str = "v",
                  what: str = "a Mastodon release like v4.7.2") -> Version:
    """``v4.7.2``/``4.7.2``/``v4.8.0-rc.1``; BadInput naming ``flag`` otherwise."""
    match = _VERSION.fullmatch((text or "").strip())
    if not match:
        shown = repr(text.strip()) if text and text.strip() else "(empty)"
        raise BadInput(f"{flag} {shown} is not {what}")
    return Version(int(match[2]), int(match[3]), int(match[4]), match[5] or "", prefix)


def parse_chart_version(text: str, flag: str = "CHART_FROM") -> Version:
    return parse_version(text, flag, prefix="", what="an app-template chart version like 4.1.1")


def v(text: str) -> Version:
    return parse_version(text, "version")


# The reference layout runs streaming from its own image, published from v4.3.0 on
# ("The Docker image has been split in two separate images", v4.3.0 release notes;
# mastodon/mastodon#32437).
MIN_SUPPORTED = v("v4.3.0")

# --------------------------------------------------------- upgrade-path table


@dataclass(frozen=True)
class ReleaseLine:
    """What upgrading into a release line requires, from its release notes and code.

    ``stop_before``: when FROM is older than this, Mastodon requires running that
    version first (an intermediate stop). ``avoid``: releases of the line not to
    deploy. ``post_deployment_migrations``: the line ships migrations under
    ``db/post_migrate`` (run by ``db:prepare``/``db:migrate`` unless
    ``SKIP_POST_DEPLOYMENT_MIGRATIONS`` is set).
    """

    line: tuple[int, int]
    first: str
    released: str
    postgres_min: int
    redis_min: tuple[int, ...]
    env_required: tuple[str, ...] = ()
    env_removed: tuple[str, ...] = ()
    post_deployment_migrations: bool = False
    stop_before: str | None = None
    avoid: tuple[tuple[str, str], ...] = ()  # (release, why)
    notes: tuple[str, ...] = ()
    sources: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return f"{self.line[0]}.{self.line[1]}"


ENCRYPTION_KEYS = ("ACTIVE_RECORD_ENCRYPTION_DETERMINISTIC_KEY",
                   "ACTIVE_RECORD_ENCRYPTION_KEY_DERIVATION_SALT",
                   "ACTIVE_RECORD_ENCRYPTION_PRIMARY_KEY")

RELEASE_LINES: tuple[ReleaseLine, ...] = (
    ReleaseLine(
        (4, 3), "v4.3.0", "2024-10-08", postgres_min=12, redis_min=(4, 0),
        env_required=ENCRYPTION_KEYS,
        post_deployment_migrations=True,
        notes=(
            "ACTIVE_RECORD_ENCRYPTION_* must be set before the first start (generate them "
            "once with `bin/rails db:encryption:init`; never change them): without them "
            "every Rails process aborts at boot",
            "streaming moves to its own image ghcr.io/mastodon/mastodon-streaming",
            "REDIS_NAMESPACE is deprecated (removed in 4.4)",
            "zero-downtime upgrades (SKIP_POST_DEPLOYMENT_MIGRATIONS two-step) are only "
            "supported from 4.2.0 or later; otherwise stop every process first",
        ),
        sources=(
            "https://github.com/mastodon/mastodon/releases/tag/v4.3.0",
            "mastodon/mastodon config/initializers/active_record_encryption.rb (aborts "
            "without the three keys); issue mastodon/mastodon#30100",
            "mastodon/mastodon#32437 (separate streaming image)",
            "mastodon/documentation#1528 (REDIS_NAMESPACE deprecated in 4.3)",
            "mastodon/mastodon lib/tasks/db.rake db:pre_migration_check (zero-downtime "
            "from < 4.2.0 refused; PostgreSQL 12 minimum in 4.3)",
            "mastodon/mastodon README.md at 4.3 (PostgreSQL 12+, Redis 4+)",
            "mastodon/mastodon db/post_migrate/2024030718*..20240916190140*",
        ),
    ),
    ReleaseLine(
        (4, 4), "v4.4.0", "2025-07", postgres_min=13, redis_min=(6, 2),
        env_removed=("REDIS_NAMESPACE",),
        post_deployment_migrations=True,
        avoid=(("v4.4.0", "its release notes advise skipping it for v4.4.1 or later"),),
        notes=(
            "REDIS_NAMESPACE is no longer supported (Sidekiq 7): strip the namespace from "
            "the keys with mastodon/redis_namespace_migration before upgrading",
            "PostgreSQL 13+ (db:pre_migration_check aborts the migration otherwise) and "
            "Redis 6.2+",
            "skip v4.4.0 itself; any 4.3.x upgrades straight to the latest 4.4 following "
            "the v4.4.0 notes",
        ),
        sources=(
            "https://github.com/mastodon/mastodon/releases/tag/v4.4.0",
            "mastodon/mastodon#34744 (drop PostgreSQL 12), #30413 (drop Redis < 6.2)",
            "mastodon/redis_namespace_migration README (namespace support removed)",
            "mastodon/mastodon#36350 (renchap: 4.3.13 -> latest 4.4 with the 4.4.0 notes)",
            "mastodon/mastodon db/post_migrate/20241123160722*..20250520192024*",
        ),
    ),
    ReleaseLine(
        (4, 5), "v4.5.0", "2025-11", postgres_min=14, redis_min=(7, 0),
        notes=(
            "PostgreSQL 14+ and Redis 7.0+ (Sidekiq 8)",
            "no post-deployment migrations since 2025-05-20: the release notes' second "
            "db:migrate is harmless but does nothing",
        ),
        sources=(
            "https://github.com/mastodon/mastodon/releases/tag/v4.5.0",
            "mastodon/mastodon#36540 (drop PostgreSQL 13; minimum 14)",
            "mastodon/mastodon#34824 (Sidekiq 8); mastodon/mastodon#40361 (ClearlyClaire: "
            "'we require Redis 7.0+'); hometown-fork/hometown#1371 (4.5 dependencies)",
            "mastodon/mastodon#39493 (no post-deployment migration after 2025-05-20)",
        ),
    ),
    ReleaseLine(
        (4, 6), "v4.6.0", "2026-06", postgres_min=14, redis_min=(7, 0),
        notes=("no new minimums found in the sources consulted; the release notes' "
               "post-deployment db:migrate step has nothing to run",),
        sources=("https://github.com/mastodon/mastodon/releases/tag/v4.6.0",
                 "mastodon/mastodon#39470 (bump to v4.6.0), #39493"),
    ),
    ReleaseLine(
        (4, 7), "v4.7.0", "2026-08", postgres_min=14, redis_min=(7, 0),
        notes=("no new minimums found in the sources consulted",),
        sources=("https://github.com/mastodon/mastodon/releases/tag/v4.7.0",
                 "NixOS/nixpkgs#554800 (mastodon 4.6.6 -> 4.7.0), mastodon/mastodon#40361"),
    ),
)

# app-template major upgrades (chart FROM/TO), from its upgrade notes.
CHART_MAJOR_NOTES: dict[int, tuple[str, ...]] = {
    4: ("new naming scheme and the app.kubernetes.io/controller label: selectors change, "
        "so Deployments must be recreated; Kubernetes >= 1.28",
        "source: bjw-s-labs/helm-charts docs/app-template/upgrade-instructions.md (3 -> 4)"),
    5: ("rawResources wrap their content in `manifest:`; a dedicated ServiceAccount is "
        "created by default (global.createDefaultServiceAccount: false opts out); "
        "automountServiceAccountToken defaults to false",
        "source: bjw-s-labs/helm-charts docs/app-template/upgrades/4-to-5"),
}


def line_of(version: Version, table: Sequence[ReleaseLine] = RELEASE_LINES) -> ReleaseLine | None:
    return next((row for row in table if row.line == version.line), None)


# ------------------------------------------------------------------- the plan


@dataclass(frozen=True)
class Step:
    name: str
    does: str


STEPS: tuple[Step, ...] = (
    Step("bring-up", "the kind cluster and infrastructure, then the kind overlay rendered with "
                     "the Mastodon images at FROM (and the chart at CHART_FROM)"),
    Step("seed", "through REST as the test accounts: both accounts, a follow, a status with a "
                 "PNG attachment, a status scheduled a day ahead (tootcheck.checks.markers)"),
    Step("upgrade", "server-side apply of the render at TO; Recreate: the old pod terminates, "
                    "then the new pod starts postgres and redis (native sidecars), db-migrate "
                    "(rails db:prepare: every migration, post-deployment ones included), then "
                    "web, streaming and sidekiq; /health and the streaming health are polled "
                    "throughout"),
    Step("suites", "every suite runs against the upgraded deployment"),
    Step("verify", "every seeded item checked through REST (media bytes compared) and in "
                   "PostgreSQL; runs after every other test"),
    Step("report", "migration time from db-migrate's terminated startedAt/finishedAt; "
                   "unavailability windows of /health and streaming"),
)


@dataclass(frozen=True)
class RehearsalPlan:
    source: Version
    target: Version
    chart_from: Version
    chart_to: Version
    lines: tuple[ReleaseLine, ...]  # the release lines entered on the way (above FROM's)
    # TO must meet the requirements of its own line and of every line below it (a patch
    # upgrade within one line still needs that line's requirements)
    governing: tuple[ReleaseLine, ...] = ()
    stops: tuple[Version, ...] = ()  # required intermediate versions, oldest first
    warnings: tuple[str, ...] = ()
    steps: tuple[Step, ...] = STEPS

    @property
    def chart_changes(self) -> bool:
        return self.chart_from != self.chart_to

    @property
    def postgres_min(self) -> int:
        return max((row.postgres_min for row in self.governing), default=0)

    @property
    def redis_min(self) -> tuple[int, ...]:
        return max((row.redis_min for row in self.governing), default=(0,))

    @property
    def env_required(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(n for row in self.governing for n in row.env_required))

    @property
    def env_removed(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(n for row in self.governing for n in row.env_removed))

    @property
    def post_deployment_migrations(self) -> bool:
        return any(row.post_deployment_migrations for row in self.lines)

    def describe(self) -> str:
        crossed = ", ".join(row.name for row in self.lines) or "none (same line)"
        chart = (f"chart {self.chart_from} -> {self.chart_to}" if self.chart_changes
                 else f"chart {self.chart_from} unchanged")
        return f"{self.source} -> {self.target} (lines entered: {crossed}; {chart})"


FLAGS = {"from": "--rehearse-from", "to": "--rehearse-to",
         "chart_from": "--rehearse-chart-from", "chart_to": "--rehearse-chart-to"}


def make_plan(
    source: str,
    target: str,
    chart_from: str = "",
    chart_to: str = "",
    *,
    table: Sequence[ReleaseLine] = RELEASE_LINES,
    pinned_chart: str = versions.APP_TEMPLATE,
    flags: Mapping[str, str] = FLAGS,
) -> RehearsalPlan:
    """Validate the versions and build the plan; BadInput (one line) when refused.
    ``flags`` names the options in messages (``tootcheck preflight`` says --from/--to)."""
    flags = {**FLAGS, **flags}
    a = parse_version(source, flags["from"])
    b = parse_version(target, flags["to"])
    ca = parse_chart_version(chart_from or pinned_chart, flags["chart_from"])
    cb = parse_chart_version(chart_to or chart_from or pinned_chart, flags["chart_to"])
    for flag, version in ((flags["from"], a), (flags["to"], b)):
        if version < MIN_SUPPORTED:
            raise BadInput(
                f"{flag} {version} predates {MIN_SUPPORTED}: the reference deployment runs "
                f"streaming from {versions.MASTODON_STREAMING_IMAGE}, published from "
                f"{MIN_SUPPORTED} on")
    if b < a:
        raise BadInput(
            f"{flags['to']} {b} is older than {flags['from']} {a}: Mastodon's migrations are "
            "one-way, so a rehearsal only goes forward (a rollback is a restore from backup)")
    if cb < ca:
        raise BadInput(f"{flags['chart_to']} {cb} is older than {flags['chart_from']} {ca}: "
                       "a rehearsal only goes forward")
    if a == b and ca == cb:
        raise BadInput(f"{flags['from']} and {flags['to']} are both {a} (chart {ca} both): "
                       "nothing to rehearse; a rehearsal needs a real version change")
    lines = tuple(row for row in table if a.line < row.line <= b.line)
    stops = intermediate_stops(a, b, table)
    warnings: list[str] = []
    for row in table:
        for tag, why in row.avoid:
            if b.tag == tag:
                warnings.append(f"TO {b}: {why}")
    if line_of(b, table) is None and b.line > max((r.line for r in table), default=(0, 0)):
        warnings.append(f"{b} is newer than the upgrade-path table ({table[-1].name}): read its "
                        "release notes for new requirements")
    if cb.major != ca.major:
        for major in range(ca.major + 1, cb.major + 1):
            warnings.extend(f"app-template {major}.x: {note}"
                            for note in CHART_MAJOR_NOTES.get(major, ("no notes recorded",)))
    governing = tuple(row for row in table if row.line <= b.line)
    return RehearsalPlan(a, b, ca, cb, lines, governing, stops, tuple(warnings))


def intermediate_stops(source: Version, target: Version,
                       table: Sequence[ReleaseLine] = RELEASE_LINES) -> tuple[Version, ...]:
    """Versions Mastodon requires running between FROM and TO (none for 4.3 -> 4.7:
    releases may be skipped as long as every skipped release's notes are followed,
    docs.joinmastodon.org/admin/upgrading)."""
    stops: list[Version] = []
    current = source
    for row in table:
        if not (source.line < row.line <= target.line) or row.stop_before is None:
            continue
        stop = parse_version(row.stop_before, "stop_before")
        if current < stop < target:
            stops.append(stop)
            current = stop
    return tuple(stops)


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
    plan: RehearsalPlan,
    deployed: Deployed,
    secret_keys: Mapping[str, Iterable[str]] | None = None,
) -> list[str]:
    """Why the TO render cannot be upgraded to as the plan says (empty: it can)."""
    if secret_keys is None:
        secret_keys = {"mastodon-secrets": MASTODON_SECRET_KEYS}
    to = plan.target
    problems: list[str] = []
    if deployed.postgres is None:
        problems.append("no PostgreSQL container with a versioned image: cannot check "
                        f"PostgreSQL >= {plan.postgres_min} (needed by {to})")
    elif deployed.postgres[0] < plan.postgres_min:
        problems.append(f"{to} needs PostgreSQL >= {plan.postgres_min}; the deployment runs "
                        f"{_dotted(deployed.postgres)}")
    if deployed.redis is None:
        problems.append(f"no Redis container with a versioned image: cannot check Redis >= "
                        f"{_dotted(plan.redis_min)} (needed by {to})")
    elif tuple(deployed.redis[:len(plan.redis_min)]) < plan.redis_min:
        problems.append(f"{to} needs Redis >= {_dotted(plan.redis_min)}; the deployment runs "
                        f"{_dotted(deployed.redis)}")
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


def _migration_problems(deployed: Deployed, to: Version) -> list[str]:
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


def image_overrides(version: Version) -> list[dict[str, str]]:
    """kustomize ``images:`` entries that put both Mastodon images at ``version``."""
    return [{"name": versions.MASTODON_IMAGE, "newTag": version.tag},
            {"name": versions.MASTODON_STREAMING_IMAGE, "newTag": version.tag}]


def wrapper_kustomization(base: str, version: Version) -> dict[str, Any]:
    """A kustomization wrapping ``base`` (a relative path) with the image overrides."""
    return {"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
            "resources": [base], "images": image_overrides(version)}


def with_chart_version(kustomization: str, version: Version, chart: str = "app-template") -> str:
    """The kustomization text with ``chart``'s helmCharts version set to ``version``."""
    data = yaml.safe_load(kustomization) or {}
    entries = [c for c in data.get("helmCharts") or [] if c.get("name") == chart]
    if not entries:
        raise BadInput(f"the kustomization has no helmCharts entry named {chart}")
    for entry in entries:
        entry["version"] = version.tag
    return yaml.safe_dump(data, sort_keys=False)


def table_markdown(table: Sequence[ReleaseLine] = RELEASE_LINES) -> str:
    """The upgrade-path table as Markdown (docs/modes.md embeds it)."""
    rows = ["| line | first | PostgreSQL | Redis | set before start | remove | "
            "post-deployment migrations | avoid |",
            "|---|---|---|---|---|---|---|---|"]
    for row in table:
        rows.append(
            f"| {row.name} | {row.first} ({row.released}) | >= {row.postgres_min} | "
            f">= {_dotted(row.redis_min)} | {', '.join(row.env_required) or '-'} | "
            f"{', '.join(row.env_removed) or '-'} | "
            f"{'yes' if row.post_deployment_migrations else 'none'} | "
            f"{', '.join(tag for tag, _ in row.avoid) or '-'} |")
    return "\n".join(rows)
