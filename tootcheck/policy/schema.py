"""Strict schema validation for a stated Kubernetes version, offline.

An object is first put to jsonschema-rs (a Draft 2020-12 validator in Rust, built once
per schema), which answers "valid" in microseconds; only an object it does not pass
(or cannot take: keys that are not strings, values JSON has no type for) goes to
jsonschema (imported then), which decides and words the problems. So an object is
valid only when jsonschema says so; jsonschema-rs only saves the time. Formats are
annotations to both (no format checker), and a schema that uses a regular expression
(``pattern``, ``patternProperties``) is left to jsonschema alone: Rust's and Python's
engines read some patterns differently (Python's ``$`` also matches before a final
newline). No shipped schema uses one; a project schema may.

Built-in kinds use the strict schemas shipped in ``kubernetes-validate``
(validators are built once per kind and version: the package's own ``validate()``
re-reads a 1.5 MB definitions file on every call). Custom resources use the
project-written JSON schemas shipped in the package (``tootcheck/data/schemas/<group>/
<kind>.json``; in the repository ``manifests/schemas``). A
kind with no schema at all is reported, never passed silently.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tootcheck import resources
from tootcheck.errors import BadInput

if TYPE_CHECKING:
    import jsonschema
    import jsonschema_rs
    from referencing import Registry

Check = Callable[[Any], bool]  # True: surely valid; False: ask jsonschema

SCHEMA_DIR = resources.schema_dir()
_LEGACY_GROUPS = frozenset({"", "apps", "batch", "autoscaling", "policy", "extensions"})
_MAX_ERRORS = 5


@dataclass(frozen=True)
class SchemaProblem:
    path: tuple[str | int, ...]
    message: str


def is_builtin_group(group: str) -> bool:
    return group in _LEGACY_GROUPS or group.endswith(".k8s.io")


@cache
def _k8s_root() -> Path:
    # Located, not imported: the package's import pulls in more than the data needs.
    spec = importlib.util.find_spec("kubernetes_validate")
    if spec is None or spec.origin is None:
        raise BadInput("kubernetes-validate is not installed (it ships the strict schemas)")
    return Path(spec.origin).parent / "kubernetes-json-schema"


@cache
def schema_version(kube_version: str) -> str:
    """The newest shipped schema version not newer than ``kube_version`` (major.minor)."""
    wanted = kube_version.lstrip("v")
    if not re.match(r"^\d+\.\d+(\.\d+)?$", wanted):
        raise BadInput(f"--kube-version {kube_version!r} is not a Kubernetes version like 1.34")
    mm = tuple(int(x) for x in wanted.split(".")[:2])
    shipped = sorted(
        (tuple(int(x) for x in m.group(1).split(".")), m.group(1))
        for p in _k8s_root().iterdir()
        if (m := re.match(r"^v(\d+\.\d+)\.\d+-local-strict$", p.name)))
    usable = [name for v, name in shipped if v <= mm]
    if not usable or mm > shipped[-1][0]:
        span = f"{shipped[0][1]} to {shipped[-1][1]}" if shipped else "none"
        raise BadInput(f"no strict schemas for Kubernetes {kube_version} in kubernetes-validate "
                       f"(it ships {span})")
    return usable[-1]


@cache
def _k8s_folder(version: str) -> Path:
    return next(p for p in _k8s_root().iterdir() if p.name.startswith(f"v{version}.")
                and p.name.endswith("-local-strict"))


@cache
def _k8s_registry(version: str) -> Registry:
    from referencing import Registry, Resource

    defs = json.loads((_k8s_folder(version) / "_definitions.json").read_text())
    return Resource.from_contents(defs) @ Registry()


@cache
def _k8s_fast_registry(version: str) -> jsonschema_rs.Registry | None:
    """The definitions every built-in kind's schema refers to, for jsonschema-rs."""
    import jsonschema_rs

    defs = json.loads((_k8s_folder(version) / "_definitions.json").read_text())
    if uses_patterns(defs):
        return None  # every built-in kind is left to jsonschema (see above)
    return jsonschema_rs.Registry([(_K8S_BASE + "_definitions.json", defs)],
                                  draft=jsonschema_rs.Draft202012)


def load_definitions(kube_version: str) -> None:
    """Load the version's schema definitions now, before a worker is forked: it then
    shares their pages (jsonschema-rs keeps them outside Python's reference counts)
    instead of loading its own copy (about 15 MB). BadInput for an unsupported version."""
    _k8s_fast_registry(schema_version(kube_version))


# The built-in schemas refer to "/api/_definitions.json#/$defs/..." (a path of the
# kubernetes-validate layout): resolved against this base, in the registry above.
_K8S_BASE = "file:///api/"


@cache
def _k8s_schema(version: str, kind: str, api_version: str) -> dict[str, Any] | None:
    group_version = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
    path = _k8s_folder(version) / f"{kind.lower()}-{group_version}.json"
    if not path.exists():
        return None
    schema: dict[str, Any] = json.loads(path.read_text())
    return schema


@cache
def _k8s_check(version: str, kind: str, api_version: str) -> Check | None:
    schema = _k8s_schema(version, kind, api_version)
    if schema is None:
        return None
    registry = _k8s_fast_registry(version)
    if registry is None:
        return _unsure
    return _fast_check(schema, registry=registry, base_uri=f"{_K8S_BASE}{kind.lower()}.json")


@cache
def _k8s_validator(version: str, kind: str, api_version: str) -> jsonschema.Validator | None:
    schema = _k8s_schema(version, kind, api_version)
    if schema is None:
        return None
    import jsonschema
    from referencing import Resource

    registry = Resource.from_contents(schema) @ _k8s_registry(version)
    return jsonschema.Draft202012Validator(schema, registry=registry)


@cache
def _crd_schema(schema_dir: Path, group: str, kind: str) -> dict[str, Any] | None:
    """A project schema, once checked against the Draft 2020-12 metaschema."""
    path = schema_dir / group / f"{kind.lower()}.json"
    if not path.exists():
        return None
    try:
        text = path.read_text()
        schema: dict[str, Any] = json.loads(text)
    except (OSError, ValueError) as exc:
        raise BadInput(f"schema {path} is broken: {' '.join(str(exc).split())[:200]}") from None
    _check_metaschema(path, text, schema)
    return schema


def _check_metaschema(path: Path, text: str, schema: dict[str, Any]) -> None:
    # jsonschema costs more to import and to run than the rest of a small run, so a
    # schema text that passed once is remembered (by digest) in the user cache.
    marker = resources.cache_dir() / "schemas-ok" / hashlib.sha256(text.encode()).hexdigest()
    if marker.exists():
        return
    import jsonschema

    try:
        jsonschema.Draft202012Validator.check_schema(schema)
    except jsonschema.SchemaError as exc:
        raise BadInput(f"schema {path} is broken: {' '.join(str(exc).split())[:200]}") from None
    try:
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.touch()
    except OSError:
        pass  # a read-only cache only costs time


@cache
def _crd_validator(schema_dir: Path, group: str, kind: str) -> jsonschema.Validator | None:
    schema = _crd_schema(schema_dir, group, kind)
    if schema is None:
        return None
    import jsonschema

    return jsonschema.Draft202012Validator(schema)


@cache
def _crd_check(schema_dir: Path, group: str, kind: str) -> Check | None:
    schema = _crd_schema(schema_dir, group, kind)
    return None if schema is None else _fast_check(schema)


def _fast_check(schema: dict[str, Any], **options: Any) -> Check:
    """jsonschema-rs's yes, without format checks (as jsonschema here); any object it
    cannot convert, and any schema it cannot build or that uses a regular expression,
    gets "ask jsonschema"."""
    import jsonschema_rs

    if uses_patterns(schema):
        return _unsure
    try:
        is_valid = jsonschema_rs.Draft202012Validator(schema, validate_formats=False,
                                                      **options).is_valid
    except (ValueError, jsonschema_rs.ValidationError, jsonschema_rs.ReferencingError):
        return _unsure

    def check(data: Any) -> bool:
        try:
            return is_valid(data)
        except (ValueError, TypeError, OverflowError):  # not a JSON value
            return False

    return check


def _unsure(_: Any) -> bool:
    return False


# Keywords whose value maps names to schemas: the names are not keywords.
_NAMED_SCHEMAS = frozenset({"properties", "$defs", "definitions", "dependentSchemas"})


def uses_patterns(schema: Any) -> bool:
    """Whether a schema (or a document of definitions) uses ``pattern`` or
    ``patternProperties`` anywhere (a property merely named so does not count)."""
    if isinstance(schema, list):
        return any(uses_patterns(s) for s in schema)
    if not isinstance(schema, dict):
        return False
    for key, value in schema.items():
        if key in ("pattern", "patternProperties"):
            return True
        if key in _NAMED_SCHEMAS and isinstance(value, dict):
            if any(uses_patterns(s) for s in value.values()):
                return True
        elif uses_patterns(value):
            return True
    return False


@dataclass(frozen=True)
class _KindSchema:
    """How objects of one API version and kind are validated: the fast check, then the
    jsonschema validator that decides and words the problems (built on first need)."""

    check: Check
    validator: Callable[[], jsonschema.Validator | None]


@cache
def _kind_schema(api_version: str, kind: str, kube_version: str,
                 schema_dir: Path) -> _KindSchema | str:
    """The schema for objects of this API version and kind, or why there is none (one
    cached lookup per object)."""
    group = api_version.split("/", 1)[0] if "/" in api_version else ""
    if is_builtin_group(group):
        version = schema_version(kube_version)
        check = _k8s_check(version, kind, api_version)
        if check is not None:
            return _KindSchema(check, lambda: _k8s_validator(version, kind, api_version))
    # a custom resource, or a CRD group under *.k8s.io (gateway.networking.k8s.io)
    check = _crd_check(schema_dir, group, kind)
    if check is not None:
        return _KindSchema(check, lambda: _crd_validator(schema_dir, group, kind))
    if is_builtin_group(group):
        return (f"{api_version} {kind} is not served by Kubernetes "
                f"{schema_version(kube_version)} (removed, misspelt or unknown API) and has "
                f"no project schema")
    return (f"no schema for custom resource {api_version} {kind}: "
            f"add manifests/schemas/{group}/{kind.lower()}.json")


def validate_object(data: dict[str, Any], kube_version: str, *,
                    schema_dir: Path = SCHEMA_DIR) -> list[SchemaProblem]:
    """Problems with one object; an empty list means it validated strictly."""
    kind = str(data.get("kind", ""))
    found = _kind_schema(str(data.get("apiVersion", "")), kind, kube_version, schema_dir)
    if isinstance(found, str):
        return [SchemaProblem((), found)]
    if found.check(data):
        return []
    validator = found.validator()
    assert validator is not None
    redact = kind == "Secret"
    problems: list[SchemaProblem] = []
    for error in sorted(validator.iter_errors(data), key=lambda e: list(map(str, e.path))):
        path = tuple(error.absolute_path)
        message = _message(error, redact)
        problems.append(SchemaProblem(path, message))
        if len(problems) >= _MAX_ERRORS:
            break
    return problems


def _message(error: jsonschema.ValidationError, redact: bool) -> str:
    if error.validator == "additionalProperties" and "unexpected" in error.message:
        m = re.search(r"\((.*) (?:was|were) unexpected\)", error.message)
        return f"unknown field(s) {m.group(1)}" if m else "unknown field"
    if redact:  # never quote a Secret's values
        return f"fails schema keyword {error.validator!r}"
    text = " ".join(error.message.split())
    if error.validator != "required":  # "'x' is a required property" names a key, no value
        # jsonschema starts most messages with the offending value (`12345 is not of type
        # 'string'`): that may be a credential (env[].value, ConfigMap data), so say "value".
        shown = " ".join(repr(error.instance).split())
        if text.startswith(shown):
            text = "value" + text[len(shown):]
        elif shown in text:
            text = f"fails schema keyword {error.validator!r}"
    return text if len(text) <= 160 else text[:157] + "..."
