"""Finding and reading the operator's tootcheck config: one TOML file.

Searched upward from the working directory, the nearest of:

- ``tootcheck.toml`` (the whole file is the config), or
- ``pyproject.toml`` with a ``[tool.tootcheck]`` table;

``--config FILE`` overrides the search. The directory of the file found is the
project root: relative paths in it (waivers, renders) are resolved against it.
Without a config file the project root is the working directory and the defaults
apply. This module only finds and parses; :mod:`tootcheck.policy.config_loader`
validates the keys.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tootcheck.errors import BadInput

CONFIG_NAME = "tootcheck.toml"
PYPROJECT = "pyproject.toml"
PYPROJECT_TABLE = ("tool", "tootcheck")


@dataclass(frozen=True)
class ConfigFile:
    path: Path | None  # None: no config file, the defaults
    table: Mapping[str, Any] = field(default_factory=dict)
    text: str = ""
    prefix: str = ""  # how keys are spelled in the file: "" or "tool.tootcheck."
    start: Path = field(default_factory=Path.cwd)

    @property
    def root(self) -> Path:
        """The project root: the config file's directory, else where the search started."""
        return self.path.parent if self.path is not None else self.start

    def where(self, key: str) -> str:
        """``FILE: KEY`` for one-line errors (``KEY`` as written in the file)."""
        return f"{self.shown}: {self.prefix}{key}"

    @property
    def shown(self) -> str:
        if self.path is None:
            return "(no config file)"
        return display(self.path)

    def resolve(self, value: str) -> Path:
        """A path from the config, relative to the project root."""
        path = Path(value).expanduser()
        return path if path.is_absolute() else self.root / path


def display(path: Path) -> str:
    """A path as findings print it: relative to the working directory when below it."""
    try:
        return path.resolve().relative_to(Path.cwd().resolve()).as_posix()
    except (ValueError, OSError):
        return str(path)


def project_root(start: Path | None = None) -> Path:
    """The directory of the config file found from ``start`` (default: the working
    directory), else ``start`` itself: where the operator's manifests and renders are."""
    origin = (start or Path.cwd()).resolve()
    found = find(origin)
    return found.parent if found is not None else origin


def _read(path: Path) -> tuple[str, dict[str, Any]]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInput(f"{display(path)}: cannot read: "
                       f"{getattr(exc, 'strerror', None) or exc}") from None
    try:
        return text, tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise BadInput(f"{display(path)}: not valid TOML: {' '.join(str(exc).split())}") from None


def _tool_table(data: Mapping[str, Any]) -> Mapping[str, Any] | None:
    tool = data.get(PYPROJECT_TABLE[0])
    if not isinstance(tool, Mapping):
        return None
    table = tool.get(PYPROJECT_TABLE[1])
    return table if isinstance(table, Mapping) else None


def _pyproject_has_table(path: Path) -> bool:
    """Cheap test before parsing: a foreign pyproject.toml we cannot parse is not ours."""
    try:
        return "tool.tootcheck" in path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False


def find(start: Path | None = None) -> Path | None:
    """The nearest tootcheck.toml, or pyproject.toml with [tool.tootcheck], from ``start`` up."""
    here = (start or Path.cwd()).resolve()
    for directory in (here, *here.parents):
        candidate = directory / CONFIG_NAME
        if candidate.is_file():
            return candidate
        pyproject = directory / PYPROJECT
        if pyproject.is_file() and _pyproject_has_table(pyproject):
            return pyproject
    return None


def load(explicit: Path | None = None, *, start: Path | None = None) -> ConfigFile:
    """The config: ``explicit`` (``--config``), else the one found upward from ``start``
    (default the working directory), else an empty one (defaults)."""
    origin = (start or Path.cwd()).resolve()
    if explicit is not None:
        if not explicit.is_file():
            raise BadInput(f"{explicit}: config file does not exist")
        path: Path | None = explicit.resolve()
    else:
        path = find(origin)
    if path is None:
        return ConfigFile(None, start=origin)
    text, data = _read(path)
    if path.name == PYPROJECT:
        table = _tool_table(data)
        if table is None:
            raise BadInput(f"{display(path)}: no [tool.tootcheck] table")
        return ConfigFile(path, table, text, "tool.tootcheck.", origin)
    return ConfigFile(path, data, text, "", origin)
