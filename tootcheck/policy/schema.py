"""Strict schema validation for a stated Kubernetes version, offline.

Built-in kinds use the strict schemas shipped in ``kubernetes-validate``
(validators are built once per kind and version: the package's own ``validate()``
re-reads a 1.5 MB definitions file on every call). Custom resources use the
project-written JSON schemas shipped in the package (``tootcheck/data/schemas/<group>/
<kind>.json``; in the repository ``manifests/schemas``). A
kind with no schema at all is reported, never passed silently.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
from referencing import Registry, Resource

from tootcheck import resources
from tootcheck.errors import BadInput

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
    import kubernetes_validate

    return Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema"


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
def _k8s_registry(version: str) -> tuple[Path, Registry]:
    folder = next(p for p in _k8s_root().iterdir() if p.name.startswith(f"v{version}.")
                  and p.name.endswith("-local-strict"))
    defs = json.loads((folder / "_definitions.json").read_text())
    return folder, Resource.from_contents(defs) @ Registry()


@cache
def _k8s_validator(version: str, kind: str, api_version: str) -> jsonschema.Validator | None:
    folder, registry = _k8s_registry(version)
    group_version = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
    path = folder / f"{kind.lower()}-{group_version}.json"
    if not path.exists():
        return None
    schema = json.loads(path.read_text())
    registry = Resource.from_contents(schema) @ registry
    return jsonschema.Draft202012Validator(schema, registry=registry)


@cache
def _crd_validator(schema_dir: Path, group: str, kind: str) -> jsonschema.Validator | None:
    path = schema_dir / group / f"{kind.lower()}.json"
    if not path.exists():
        return None
    try:
        schema = json.loads(path.read_text())
        jsonschema.Draft202012Validator.check_schema(schema)
    except (OSError, ValueError, jsonschema.SchemaError) as exc:
        raise BadInput(f"schema {path} is broken: {' '.join(str(exc).split())[:200]}") from None
    return jsonschema.Draft202012Validator(schema)


def validate_object(data: dict[str, Any], kube_version: str, *,
                    schema_dir: Path = SCHEMA_DIR) -> list[SchemaProblem]:
    """Problems with one object; an empty list means it validated strictly."""
    api_version = str(data.get("apiVersion", ""))
    kind = str(data.get("kind", ""))
    group = api_version.split("/", 1)[0] if "/" in api_version else ""
    if is_builtin_group(group):
        version = schema_version(kube_version)
        validator = _k8s_validator(version, kind, api_version) or _crd_validator(
            schema_dir, group, kind)  # e.g. gateway.networking.k8s.io is a CRD group
        if validator is None:
            return [SchemaProblem((), f"{api_version} {kind} is not served by Kubernetes "
                                      f"{version} (removed, misspelt or unknown API) and has "
                                      f"no project schema")]
    else:
        validator = _crd_validator(schema_dir, group, kind)
        if validator is None:
            return [SchemaProblem((), f"no schema for custom resource {api_version} {kind}: "
                                      f"add manifests/schemas/{group}/{kind.lower()}.json")]
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
