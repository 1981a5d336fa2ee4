"""The policy settings and waivers of the operator's config file, validated.

Every :class:`~tootcheck.policy.config.PolicyConfig` field is a top-level key of
the config (``tootcheck.toml`` or ``[tool.tootcheck]``); its type comes from the
dataclass, so a new field is a new key without code here. Besides them:

``waivers``
    either a list of tables (``[[waivers]]`` with rule, object, reason, expires) or
    the path of a waivers file (YAML, as ``tootcheck policy --waivers`` reads),
    relative to the config file.

An unknown key, or a value of the wrong type, is bad input: one line naming the
file, the key and what is wrong (exit 2), so a typo cannot switch a check off.
"""

from __future__ import annotations

import re
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from tootcheck import config_file
from tootcheck.config_file import ConfigFile
from tootcheck.errors import BadInput
from tootcheck.policy.config import PROFILES, PolicyConfig
from tootcheck.policy.waivers import Waiver, Waivers, load_waivers, waiver_entry

WAIVERS_KEY = "waivers"
_WAIVER_HEADER = re.compile(r"^[ \t]*\[\[\s*(?:tool\s*\.\s*tootcheck\s*\.\s*)?waivers\s*\]\]",
                            re.MULTILINE)


@dataclass(frozen=True)
class Project:
    """What the config file says: the policy settings, the waivers, the project root."""

    file: ConfigFile
    config: PolicyConfig
    waivers: Waivers

    @property
    def root(self) -> Path:
        return self.file.root


def _types() -> dict[str, Any]:
    return typing.get_type_hints(PolicyConfig)


def _describe(kind: Any) -> str:
    origin = typing.get_origin(kind)
    if kind is str:
        return "a string"
    if kind is int:
        return "an integer"
    if kind is bool:
        return "true or false"
    if origin is tuple:
        return "a list of strings"
    if origin in (Mapping, dict, typing.Mapping):
        return "a table of lists of strings"
    return str(kind)


def _is_strings(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def _convert(kind: Any, value: Any) -> Any:
    """``value`` as the field's type, or raise ValueError."""
    origin = typing.get_origin(kind)
    if kind is bool:
        if isinstance(value, bool):
            return value
    elif kind is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif kind is str:
        if isinstance(value, str):
            return value
    elif origin is tuple:
        if _is_strings(value):
            return tuple(value)
    elif origin in (Mapping, dict) and isinstance(value, Mapping) and all(
            _is_strings(v) for v in value.values()):
        return {str(k): tuple(v) for k, v in value.items()}
    raise ValueError(_describe(kind))


def settings_from_table(table: Mapping[str, Any], file: ConfigFile,
                        base: PolicyConfig | None = None) -> PolicyConfig:
    """The PolicyConfig of a config table (``waivers`` is read separately)."""
    base = base or PolicyConfig()
    types = _types()
    known = {f.name for f in fields(PolicyConfig)}
    changes: dict[str, Any] = {}
    for key, value in table.items():
        if key == WAIVERS_KEY:
            continue
        if key not in known:
            raise BadInput(f"{file.where(key)}: unknown key (known: "
                           f"{', '.join(sorted(known | {WAIVERS_KEY}))})")
        try:
            converted = _convert(types[key], value)
        except ValueError as exc:
            raise BadInput(f"{file.where(key)}: must be {exc}, not {_shown(value)}") from None
        if key == "profile" and converted not in PROFILES:
            raise BadInput(f"{file.where(key)}: must be one of {', '.join(PROFILES)}, "
                           f"not {converted!r}")
        changes[key] = converted
    try:
        return replace(base, **changes)
    except BadInput as exc:  # the dataclass's own checks
        raise BadInput(f"{file.shown}: {exc}") from None


def load_config(path: Path | None = None, *, start: Path | None = None) -> PolicyConfig:
    """The settings of the config file (``path``, else the one found from ``start``)."""
    return load_project(path, start=start).config


def config_from_mapping(raw: Mapping[str, Any], base: PolicyConfig | None = None,
                        origin: str = "policy config") -> PolicyConfig:
    """Settings from a plain mapping (e.g. a test case's header), validated the same way."""
    return settings_from_table(raw, ConfigFile(Path(origin), raw), base)


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def waivers_from_table(table: Mapping[str, Any], file: ConfigFile,
                       known_rules: Iterable[str]) -> Waivers:
    value = table.get(WAIVERS_KEY)
    if value is None:
        return Waivers([], "")
    if isinstance(value, str):
        return load_waivers(file.resolve(value), known_rules)
    if not isinstance(value, list) or not all(isinstance(v, Mapping) for v in value):
        raise BadInput(f"{file.where(WAIVERS_KEY)}: must be a list of tables ([[waivers]]) or "
                       f"the path of a waivers file, not {_shown(value)}")
    known = set(known_rules)
    lines = [file.text.count("\n", 0, m.start()) + 1 for m in _WAIVER_HEADER.finditer(file.text)]
    entries: list[Waiver] = []
    for i, item in enumerate(value):
        line = lines[i] if i < len(lines) else 1
        entries.append(waiver_entry(dict(item), f"{file.shown}:{line}", line, known))
    return Waivers(entries, file.shown)


def load_project(explicit: Path | None = None, *, known_rules: Iterable[str] = (),
                 start: Path | None = None) -> Project:
    """The config found from ``start`` (default: the working directory) or ``explicit``."""
    file = config_file.load(explicit, start=start)
    config = settings_from_table(file.table, file)
    waivers = waivers_from_table(file.table, file, known_rules)
    return Project(file, config, waivers)

