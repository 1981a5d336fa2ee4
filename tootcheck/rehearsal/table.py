"""The upgrade-path table, loaded from ``release_lines.yaml`` (package data).

The YAML holds the facts (one entry per Mastodon release line, every item citing a
release note or upstream file); this module gives them types and checks, at load,
that every ``cite`` names a source of its line, so a claim without a source cannot
ship. :mod:`tootcheck.rehearsal.plan` holds the logic over the table.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

import yaml

from tootcheck.errors import BadInput
from tootcheck.kube.apply import SAFE_LOADER

DATA_FILE = "release_lines.yaml"


@dataclass(frozen=True)
class Source:
    """A release note or upstream file: where a claim comes from."""

    key: str
    url: str
    version: str
    says: str

    def cite(self) -> str:
        return f"{self.url} ({self.version})"


@dataclass(frozen=True)
class Item:
    """One cited fact: a step, a variable, a migration, a task."""

    text: str
    source: Source
    extra: str = ""  # generate command, what to do before, migration id ...


@dataclass(frozen=True)
class Minimum:
    """``min`` inclusive, minus ``excluded`` inclusive ranges (PostgreSQL 14.0-14.3)."""

    min: tuple[int, ...]
    source: Source
    excluded: tuple[tuple[tuple[int, ...], tuple[int, ...]], ...] = ()

    def problem(self, found: tuple[int, ...]) -> str | None:
        """Why ``found`` does not qualify (None: it does). A version without a minor
        (``14``) inside an excluded range's major cannot be ruled in."""
        if _cmp(found, self.min) < 0:
            return f"older than {dotted(self.min)}"
        for lo, hi in self.excluded:
            if len(found) < len(lo) and found[:len(found)] == lo[:len(found)]:
                return (f"{dotted(found)} does not say its minor version: cannot rule out "
                        f"{dotted(lo)}-{dotted(hi)}")
            if _cmp(found, lo) >= 0 and _cmp(found, hi) <= 0:
                return f"inside the excluded range {dotted(lo)}-{dotted(hi)}"
        return None

    def describe(self) -> str:
        text = f">= {dotted(self.min)}"
        for lo, hi in self.excluded:
            text += f", not {dotted(lo)}-{dotted(hi)}"
        return text


@dataclass(frozen=True)
class ReleaseLine:
    line: tuple[int, int]
    first: str
    released: str
    sources: Mapping[str, Source]
    postgres: Minimum
    redis: Minimum
    kubernetes: Minimum | None = None
    env_required: tuple[Item, ...] = ()  # extra: the command generating a value
    env_needed_when_crossing: tuple[Item, ...] = ()
    env_removed: tuple[Item, ...] = ()  # extra: what to do before
    steps: tuple[Item, ...] = ()
    post_deployment_migrations: tuple[Item, ...] = ()  # text: id, extra: what it does
    no_post_deployment_migrations: Source | None = None
    post_upgrade_tasks: tuple[Item, ...] = ()
    avoid: tuple[Item, ...] = ()  # text: release
    patch_notes: tuple[Item, ...] = ()  # text: release, extra: what it says
    streaming_image: bool = False  # this line publishes ghcr.io/mastodon/mastodon-streaming

    @property
    def name(self) -> str:
        return f"{self.line[0]}.{self.line[1]}"


@dataclass(frozen=True)
class ChartMajor:
    major: int
    notes: tuple[str, ...]
    source: Source
    renames_workload: bool = False
    kubernetes: Minimum | None = None


@dataclass(frozen=True)
class Table:
    lines: tuple[ReleaseLine, ...]
    generic_steps: tuple[Item, ...]
    generic_sources: Mapping[str, Source]
    chart_majors: Mapping[int, ChartMajor]

    def line(self, line: tuple[int, int]) -> ReleaseLine | None:
        return next((row for row in self.lines if row.line == line), None)


def dotted(version: Sequence[int]) -> str:
    return ".".join(str(p) for p in version)


def _cmp(a: Sequence[int], b: Sequence[int]) -> int:
    n = max(len(a), len(b))
    pa, pb = tuple(a) + (0,) * (n - len(a)), tuple(b) + (0,) * (n - len(b))
    return (pa > pb) - (pa < pb)


def numbers(text: str, where: str) -> tuple[int, ...]:
    if not re.fullmatch(r"\d+(\.\d+)*", str(text)):
        raise BadInput(f"{where}: {text!r} is not a version like 14 or 6.2")
    return tuple(int(p) for p in str(text).split("."))


# ------------------------------------------------------------------- loading


def _sources(raw: Mapping[str, Any], where: str) -> dict[str, Source]:
    out = {}
    for key, value in (raw or {}).items():
        missing = [k for k in ("url", "version", "says") if not value.get(k)]
        if missing:
            raise BadInput(f"{where}: source {key} lacks {', '.join(missing)}")
        out[key] = Source(key, str(value["url"]), str(value["version"]),
                          " ".join(str(value["says"]).split()))
    return out


def _cite(sources: Mapping[str, Source], key: Any, where: str) -> Source:
    if key not in sources:
        raise BadInput(f"{where}: cites {key!r}, which is not one of its sources "
                       f"({', '.join(sources) or 'none'})")
    return sources[key]


def _minimum(raw: Any, sources: Mapping[str, Source], where: str) -> Minimum:
    if not isinstance(raw, Mapping) or "min" not in raw:
        raise BadInput(f"{where}: needs {{min, cite}}")
    excluded = tuple((numbers(lo, where), numbers(hi, where)) for lo, hi in raw.get("excluded") or ())
    return Minimum(numbers(raw["min"], where), _cite(sources, raw.get("cite"), where), excluded)


def _items(raw: Any, sources: Mapping[str, Source], where: str, text: str,
           extra: str = "") -> tuple[Item, ...]:
    out = []
    for n, entry in enumerate(raw or ()):
        here = f"{where}[{n}]"
        if not entry.get(text):
            raise BadInput(f"{here}: needs {text}")
        out.append(Item(" ".join(str(entry[text]).split()), _cite(sources, entry.get("cite"), here),
                        " ".join(str(entry.get(extra, "") if extra else "").split())))
    return tuple(out)


def _line(raw: Mapping[str, Any]) -> ReleaseLine:
    where = f"{DATA_FILE}: line {raw.get('line')}"
    major, _, minor = str(raw.get("line", "")).partition(".")
    if not (major.isdigit() and minor.isdigit()):
        raise BadInput(f"{where}: line must look like 4.3")
    sources = _sources(raw.get("sources") or {}, where)
    kubernetes = raw.get("kubernetes")
    no_post = raw.get("no_post_deployment_migrations_cite")
    return ReleaseLine(
        line=(int(major), int(minor)), first=str(raw["first"]), released=str(raw["released"]),
        sources=sources,
        postgres=_minimum(raw.get("postgres"), sources, f"{where} postgres"),
        redis=_minimum(raw.get("redis"), sources, f"{where} redis"),
        kubernetes=_minimum(kubernetes, sources, f"{where} kubernetes") if kubernetes else None,
        env_required=_items(raw.get("env_required"), sources, f"{where} env_required", "name",
                            "generate"),
        env_needed_when_crossing=_items(raw.get("env_needed_when_crossing"), sources,
                                        f"{where} env_needed_when_crossing", "name"),
        env_removed=_items(raw.get("env_removed"), sources, f"{where} env_removed", "name",
                           "before"),
        steps=_items(raw.get("steps"), sources, f"{where} steps", "do"),
        post_deployment_migrations=_items(raw.get("post_deployment_migrations"), sources,
                                          f"{where} post_deployment_migrations", "id", "does"),
        no_post_deployment_migrations=(_cite(sources, no_post, where) if no_post else None),
        post_upgrade_tasks=_items(raw.get("post_upgrade_tasks"), sources,
                                  f"{where} post_upgrade_tasks", "run"),
        avoid=_items(raw.get("avoid"), sources, f"{where} avoid", "release"),
        patch_notes=_items(raw.get("patch_notes"), sources, f"{where} patch_notes", "release",
                           "says"),
        streaming_image=bool(raw.get("streaming_image_from_line")),
    )


def _chart_major(raw: Mapping[str, Any]) -> ChartMajor:
    where = f"{DATA_FILE}: chart major {raw.get('major')}"
    sources = _sources(raw.get("sources") or {}, where)
    kubernetes = raw.get("kubernetes")
    return ChartMajor(int(raw["major"]), tuple(" ".join(str(n).split()) for n in raw.get("notes") or ()),
                      _cite(sources, raw.get("cite"), where), bool(raw.get("renames_workload")),
                      _minimum(kubernetes, sources, f"{where} kubernetes") if kubernetes else None)


def parse(text: str) -> Table:
    """The table from YAML text; BadInput (one line) naming what is wrong."""
    try:
        data = yaml.load(text, Loader=SAFE_LOADER) or {}
    except yaml.YAMLError as exc:
        raise BadInput(f"{DATA_FILE}: not YAML ({' '.join(str(exc).split())})") from exc
    generic = data.get("generic") or {}
    generic_sources = _sources(generic.get("sources") or {}, f"{DATA_FILE}: generic")
    lines = tuple(sorted((_line(raw) for raw in data.get("lines") or ()), key=lambda r: r.line))
    if not lines:
        raise BadInput(f"{DATA_FILE}: no release lines")
    if len({r.line for r in lines}) != len(lines):
        raise BadInput(f"{DATA_FILE}: a release line appears twice")
    majors = {m.major: m for m in (_chart_major(raw) for raw in data.get("chart_majors") or ())}
    return Table(lines, _items(generic.get("steps"), generic_sources, f"{DATA_FILE}: generic steps",
                               "do"), generic_sources, majors)


@lru_cache(maxsize=1)
def load() -> Table:
    """The packaged table (read once)."""
    text = resources.files("tootcheck.rehearsal").joinpath(DATA_FILE).read_text(encoding="utf-8")
    return parse(text)
