"""What a rehearsal does, as pure functions over the upgrade-path table: versions,
refusals, the cited upgrade procedure, the requirements the deployment must meet.

The table itself is data (``release_lines.yaml``, loaded by
:mod:`tootcheck.rehearsal.table`); the checks on the FROM and TO renders are in
:mod:`tootcheck.rehearsal.renders` (re-exported here for callers of the old module).

:func:`make_plan` turns ``FROM``/``TO`` (and optionally the app-template chart's
``FROM``/``TO``) into a :class:`RehearsalPlan` or refuses with one line:

- malformed versions;
- ``FROM == TO`` with the chart unchanged (nothing would be rehearsed);
- a downgrade (Mastodon's migrations are one-way; the way back is a restore);
- ``FROM`` older than the first line of the table (v4.2.0: zero-downtime migrations
  from older schemas are refused by ``db:pre_migration_check``).

:meth:`RehearsalPlan.procedure` lists the release notes' steps for the lines crossed,
each citing its note; :func:`plan_text` prints them with the requirements and warnings
(``tootcheck preflight rehearse --plan``).

One module of about 410 lines on purpose: versions, refusals and the cited procedure
are one decision over the release table; the render checks already live apart.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import total_ordering
from typing import Any

from tootcheck import versions
from tootcheck.errors import BadInput
from tootcheck.rehearsal import table as table_mod
from tootcheck.rehearsal.renders import (  # re-exported for callers of the old module
    ENCRYPTION_KEYS as ENCRYPTION_KEYS,
)
from tootcheck.rehearsal.renders import (
    IMMUTABLE as IMMUTABLE,
)
from tootcheck.rehearsal.renders import (
    MASTODON_SECRET_KEYS as MASTODON_SECRET_KEYS,
)
from tootcheck.rehearsal.renders import (
    MIGRATION_TASKS as MIGRATION_TASKS,
)
from tootcheck.rehearsal.renders import (
    Deployed as Deployed,
)
from tootcheck.rehearsal.renders import (
    InitContainer as InitContainer,
)
from tootcheck.rehearsal.renders import (
    carry_overrides as carry_overrides,
)
from tootcheck.rehearsal.renders import (
    dropped_objects as dropped_objects,
)
from tootcheck.rehearsal.renders import (
    expected_order as expected_order,
)
from tootcheck.rehearsal.renders import (
    image_overrides as image_overrides,
)
from tootcheck.rehearsal.renders import (
    image_repo as image_repo,
)
from tootcheck.rehearsal.renders import (
    image_tag as image_tag,
)
from tootcheck.rehearsal.renders import (
    image_version as image_version,
)
from tootcheck.rehearsal.renders import (
    immutable_changes as immutable_changes,
)
from tootcheck.rehearsal.renders import (
    inspect_render as inspect_render,
)
from tootcheck.rehearsal.renders import (
    mastodon_deployment as mastodon_deployment,
)
from tootcheck.rehearsal.renders import (
    postgres_major_change as postgres_major_change,
)
from tootcheck.rehearsal.renders import (
    requirement_problems as requirement_problems,
)
from tootcheck.rehearsal.renders import (
    with_chart_version as with_chart_version,
)
from tootcheck.rehearsal.renders import (
    workload_renamed as workload_renamed,
)
from tootcheck.rehearsal.renders import (
    wrapper_kustomization as wrapper_kustomization,
)
from tootcheck.rehearsal.table import Item, Minimum, ReleaseLine, Table

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




TABLE: Table = table_mod.load()
RELEASE_LINES: tuple[ReleaseLine, ...] = TABLE.lines
# Zero-downtime (two-step) migrations need a 4.2.0 schema (db:pre_migration_check).
MIN_SUPPORTED = v(TABLE.lines[0].first)


def line_of(version: Version, table: Table = TABLE) -> ReleaseLine | None:
    return table.line(version.line)


# ------------------------------------------------------------------- the plan


@dataclass(frozen=True)
class Step:
    name: str
    does: str
    cite: str = ""  # "URL (version)" of the release note the step comes from


STEPS: tuple[Step, ...] = (
    Step("bring-up", "the kind cluster and infrastructure, then the kind overlay rendered with "
                     "the Mastodon images at FROM (and the chart at CHART_FROM); before 4.3 "
                     "streaming runs from the mastodon image (node ./streaming/index.js)"),
    Step("seed", "through REST as the test accounts: both accounts, a follow, a status with a "
                 "PNG attachment, a status scheduled a day ahead (tootcheck.checks.markers)"),
    Step("upgrade", "server-side apply of the render at TO; Recreate: the old pod terminates "
                    "(every old process stops, so the pre- and post-deployment migrations run "
                    "together: db:prepare), then the new pod starts postgres and redis "
                    "(native sidecars), db-migrate, then web, streaming and sidekiq; /health, "
                    "the streaming health and the pods are polled every second; a migration "
                    "container that exits non-zero stops the wait at once"),
    Step("suites", "every suite runs against the upgraded deployment (skipped as 'not run: "
                   "upgrade failed' when the upgrade failed)"),
    Step("verify", "every seeded item checked through REST (media bytes compared) and in "
                   "PostgreSQL; runs after every other test"),
    Step("report", "migration time from db-migrate's terminated startedAt/finishedAt; "
                   "unavailability windows of /health and streaming; the migration log on "
                   "failure"),
)


@dataclass(frozen=True)
class RehearsalPlan:
    source: Version
    target: Version
    chart_from: Version
    chart_to: Version
    lines: tuple[ReleaseLine, ...]  # the release lines entered on the way (above FROM's)
    # TO must meet the requirements of its own line and of every line below it
    governing: tuple[ReleaseLine, ...] = ()
    warnings: tuple[str, ...] = ()
    steps: tuple[Step, ...] = STEPS
    table: Table = TABLE

    @property
    def chart_changes(self) -> bool:
        return self.chart_from != self.chart_to

    @property
    def postgres(self) -> Minimum:
        """The highest minimum of the governing lines, every excluded range kept."""
        rows = self.governing or self.table.lines[:1]
        top = max(rows, key=lambda r: r.postgres.min)
        excluded = tuple(dict.fromkeys(rng for r in rows for rng in r.postgres.excluded))
        return Minimum(top.postgres.min, top.postgres.source, excluded)

    @property
    def redis(self) -> Minimum:
        rows = self.governing or self.table.lines[:1]
        return max(rows, key=lambda r: r.redis.min).redis

    @property
    def kubernetes(self) -> Minimum | None:
        """From the chart (app-template 4 needs Kubernetes 1.28); Mastodon sets none."""
        found = [m.kubernetes for major, m in sorted(self.table.chart_majors.items())
                 if major <= self.chart_to.major and m.kubernetes is not None]
        return max(found, key=lambda k: k.min) if found else None

    @property
    def env_required(self) -> tuple[str, ...]:
        names = [i.text for row in self.governing for i in row.env_required]
        names += [i.text for row in self.lines for i in row.env_needed_when_crossing]
        return tuple(dict.fromkeys(names))

    @property
    def env_removed(self) -> tuple[str, ...]:
        needed = set(self.env_required)
        return tuple(dict.fromkeys(i.text for row in self.governing for i in row.env_removed
                                   if i.text not in needed))

    @property
    def post_deployment_migrations(self) -> tuple[Item, ...]:
        return tuple(i for row in self.lines for i in row.post_deployment_migrations)

    def describe(self) -> str:
        crossed = ", ".join(row.name for row in self.lines) or "none (same line)"
        chart = (f"chart {self.chart_from} -> {self.chart_to}" if self.chart_changes
                 else f"chart {self.chart_from} unchanged")
        return f"{self.source} -> {self.target} (lines entered: {crossed}; {chart})"

    def procedure(self) -> tuple[Step, ...]:
        """The release notes' upgrade steps for this path, in order, each cited."""
        backup, pre, restart, post = _generic(self.table)
        out = [Step("backup", backup.text, backup.source.cite())]
        for row in self.lines:
            keys = [i for i in row.env_required]
            if keys:
                generate = sorted({i.extra for i in keys if i.extra})
                out.append(Step(f"{row.name}: secrets", (
                    f"generate {', '.join(i.text for i in keys)} (FROM {self.source} has none"
                    f"{'; ' + ' / '.join(generate) if generate else ''}) and set them before "
                    f"the first start at {row.name}; never change them afterwards"),
                    keys[0].source.cite()))
            for item in row.env_removed:
                if item.text in self.env_required:
                    continue
                out.append(Step(f"{row.name}: {item.text}", f"{item.text} is no longer read"
                                + (f": {item.extra}" if item.extra else ""), item.source.cite()))
            out += [Step(row.name, i.text, i.source.cite()) for i in row.steps]
        out.append(Step("pre-deployment migrations", pre.text, pre.source.cite()))
        out.append(Step("restart", restart.text, restart.source.cite()))
        for row in self.lines:
            if row.post_deployment_migrations:
                listed = "; ".join(f"{i.text} {i.extra}" for i in row.post_deployment_migrations)
                cites = " ".join(dict.fromkeys(i.source.cite()
                                               for i in row.post_deployment_migrations))
                out.append(Step(f"{row.name}: post-deployment migrations", listed, cites))
            elif row.no_post_deployment_migrations is not None:
                out.append(Step(f"{row.name}: post-deployment migrations", "none",
                                row.no_post_deployment_migrations.cite()))
        out.append(Step("post-deployment migrations", post.text, post.source.cite()))
        tasks = [Step(f"{row.name}: after the upgrade", i.text, i.source.cite())
                 for row in self.lines for i in row.post_upgrade_tasks]
        out += tasks or [Step("after the upgrade", "no tootctl task is named by the notes of "
                              "the lines crossed", "")]
        for row in self.governing:
            for note in row.patch_notes:
                if self.source < v(note.text) <= self.target:
                    out.append(Step(note.text, note.extra, note.source.cite()))
        return tuple(out)


def _generic(table: Table) -> tuple[Item, Item, Item, Item]:
    steps = table.generic_steps
    if len(steps) != 4:
        raise BadInput(f"{table_mod.DATA_FILE}: generic steps must be backup, pre-deployment "
                       "migrations, restart, post-deployment migrations")
    return steps[0], steps[1], steps[2], steps[3]


FLAGS = {"from": "--rehearse-from", "to": "--rehearse-to",
         "chart_from": "--rehearse-chart-from", "chart_to": "--rehearse-chart-to"}


def make_plan(
    source: str,
    target: str,
    chart_from: str = "",
    chart_to: str = "",
    *,
    table: Table = TABLE,
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
    oldest = v(table.lines[0].first)
    for flag, version in ((flags["from"], a), (flags["to"], b)):
        if version < oldest:
            raise BadInput(
                f"{flag} {version} predates {oldest}: zero-downtime migrations need a "
                f"{oldest.line[0]}.{oldest.line[1]} schema (db:pre_migration_check); upgrade "
                f"to the latest {oldest.line[0]}.{oldest.line[1]}.x first, then rehearse from it")
    if b < a:
        raise BadInput(f"{flags['to']} {b} is older than {flags['from']} {a}: migrations are "
                       "one-way; the way back is a restore from backup (--rehearse-rollback)")
    if cb < ca:
        raise BadInput(f"{flags['chart_to']} {cb} is older than {flags['chart_from']} {ca}: "
                       "a chart downgrade is not an upgrade to rehearse")
    if a == b and ca == cb:
        raise BadInput(f"{flags['from']} and {flags['to']} are both {a} and the chart does not "
                       "change: nothing to rehearse; a rehearsal needs a real version change")
    lines = tuple(row for row in table.lines if a.line < row.line <= b.line)
    warnings: list[str] = []
    for row in table.lines:
        for item in row.avoid:
            if b.tag == item.text:
                warnings.append(f"TO {b}: skip it, upgrade to a later {row.name}.x "
                                f"({item.source.cite()})")
        for note in row.patch_notes:
            if row.line == b.line and b < v(note.text):
                warnings.append(f"TO {b}: {note.extra} ({note.source.cite()})")
    newest = table.lines[-1]
    if table.line(b.line) is None and b.line > newest.line:
        warnings.append(f"TO {b} is newer than the upgrade-path table ({newest.name}): read its "
                        "release notes for new requirements before trusting this plan")
    if cb.major != ca.major:
        for major in range(ca.major + 1, cb.major + 1):
            found = table.chart_majors.get(major)
            notes = found.notes if found else ("no notes recorded",)
            cite = f" ({found.source.cite()})" if found else ""
            warnings.extend(f"app-template {major}.x: {note}{cite}" for note in notes)
            if found and found.renames_workload:
                warnings.append(f"app-template {major}.x renames workloads: the rehearsal refuses "
                                "a renamed Mastodon Deployment (see preflight)")
    governing = tuple(row for row in table.lines if row.line <= b.line)
    return RehearsalPlan(a, b, ca, cb, lines, governing, tuple(warnings), table=table)


def plan_text(plan: RehearsalPlan) -> str:
    """The whole plan, step by step, with requirements and warnings (for --plan)."""
    out = [f"rehearsal: {plan.describe()}", "", "Upgrade procedure (from the release notes):"]
    for n, step in enumerate(plan.procedure(), 1):
        out.append(f"  {n:>2}. [{step.name}] {step.does}")
        if step.cite:
            out.append(f"      source: {step.cite}")
    out += ["", "Requirements at TO:",
            f"  PostgreSQL {plan.postgres.describe()}  (source: {plan.postgres.source.cite()})",
            f"  Redis {plan.redis.describe()}  (source: {plan.redis.source.cite()})"]
    kube = plan.kubernetes
    out.append(f"  Kubernetes {kube.describe()}  (source: {kube.source.cite()})" if kube else
               "  Kubernetes: no minimum named by Mastodon's notes or the chart's")
    out.append(f"  set before the first start: {', '.join(plan.env_required) or '-'}")
    out.append(f"  no longer read: {', '.join(plan.env_removed) or '-'}")
    out += ["", "How this rehearsal runs it (kind):"]
    out += [f"  - {s.name}: {s.does}" for s in plan.steps]
    out += ["", "Warnings:" if plan.warnings else "Warnings: none"]
    out += [f"  ! {w}" for w in plan.warnings]
    return "\n".join(out)


def table_markdown(table: Table = TABLE) -> str:
    """The upgrade-path table as Markdown (docs/modes.md embeds it)."""
    rows = ["| line | first | PostgreSQL | Redis | set before start | no longer read | "
            "post-deployment migrations | avoid |",
            "|---|---|---|---|---|---|---|---|"]
    for row in table.lines:
        post = (", ".join(i.text for i in row.post_deployment_migrations)
                or ("none" if row.no_post_deployment_migrations else "-"))
        rows.append(
            f"| {row.name} | {row.first} ({row.released}) | {row.postgres.describe()} | "
            f"{row.redis.describe()} | "
            f"{', '.join(i.text for i in (*row.env_required, *row.env_needed_when_crossing)) or '-'} | "
            f"{', '.join(i.text for i in row.env_removed) or '-'} | {post} | "
            f"{', '.join(i.text for i in row.avoid) or '-'} |")
    return "\n".join(rows)
