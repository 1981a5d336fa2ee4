"""The fast "valid" answer (jsonschema-rs) is sound: whenever it passes an object,
jsonschema finds no problem with it either (so skipping jsonschema changes no finding);
and it does pass the valid objects (so the fast path is really taken)."""

from __future__ import annotations

import copy
import datetime as dt
import functools
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from tests.policy.casefiles import CASES_DIR
from tootcheck.errors import BadInput
from tootcheck.policy import schema
from tootcheck.policy.bundle import parse_stream
from tootcheck.policy.gate import RENDERED_DIR
from tootcheck.versions import KUBERNETES


@functools.cache
def objects() -> list[dict[str, Any]]:
    """Every distinct committed object (parsed on first use: only the worker running these
    tests pays; about half the case files' objects are repeats, and give the same answers)."""
    files = sorted(RENDERED_DIR.glob("*.yaml")) + sorted(CASES_DIR.glob("*/*.yaml"))
    seen: set[str] = set()
    out = []
    for path in files:
        for parsed in parse_stream(path.read_text(), path.name):
            key = json.dumps(parsed.data, sort_keys=True, default=str)
            if key not in seen:
                seen.add(key)
                out.append(parsed.data)
    return out


def _pair(data: dict[str, Any]) -> tuple[Any, Any]:
    """(compiled check, jsonschema validator) for the object's kind, or (None, None)."""
    api_version, kind = str(data.get("apiVersion", "")), str(data.get("kind", ""))
    group = api_version.split("/", 1)[0] if "/" in api_version else ""
    version = schema.schema_version(KUBERNETES)
    if schema.is_builtin_group(group) and schema._k8s_schema(version, kind, api_version):
        return (schema._k8s_check(version, kind, api_version),
                schema._k8s_validator(version, kind, api_version))
    if schema._crd_validator(schema.SCHEMA_DIR, group, kind) is None:
        return None, None
    return (schema._crd_check(schema.SCHEMA_DIR, group, kind),
            schema._crd_validator(schema.SCHEMA_DIR, group, kind))


def _mutations(data: Any, path: tuple = ()) -> Iterator[tuple[tuple, Any]]:
    """(path, replacement) pairs: unknown keys, wrong types, nulls, dropped keys."""
    yield path, None
    yield path, 7
    yield path, "x"
    yield path, True
    yield path, 1.5
    yield path, []
    if isinstance(data, dict):
        yield path, {**data, "bogusField": 1}
        for key in list(data)[:8]:
            yield path, {k: v for k, v in data.items() if k != key}
            if len(path) < 6:
                yield from _mutations(data[key], (*path, key))
    elif isinstance(data, list) and data:
        yield path, [*data, data[0]]
        if len(path) < 6:
            yield from _mutations(data[0], (*path, 0))


def _replace(data: Any, path: tuple, value: Any) -> Any:
    if not path:
        return value
    out = copy.copy(data)
    out[path[0]] = _replace(data[path[0]], path[1:], value)
    return out


def test_valid_objects_take_the_fast_path() -> None:
    checked = 0
    for data in objects():
        check, validator = _pair(data)
        if check is None or next(validator.iter_errors(data), None) is not None:
            continue
        assert check(data), f"{data['kind']}/{data['metadata'].get('name')}"
        checked += 1
    assert checked > 100


# Where a workload kind holds its pod template: the same schema definition
# (io.k8s.api.core.v1.PodTemplateSpec) in each of them.
POD_TEMPLATES = {"Deployment": ("spec", "template"), "StatefulSet": ("spec", "template"),
                 "DaemonSet": ("spec", "template"), "ReplicaSet": ("spec", "template"),
                 "Job": ("spec", "template"), "CronJob": ("spec", "jobTemplate", "spec", "template")}


@pytest.mark.slow(reason="jsonschema validates the whole object again for each of about "
                        "1,200 mutations the compiled check passes (1.3 s alone, 3 s under load)")
def test_check_never_passes_an_invalid_object() -> None:
    passed_invalid = []
    tried = 0
    kinds: set[tuple[str, str]] = set()
    pod_template_done = False
    for data in objects():  # one object per kind and API version: the schemas differ by those
        key = (str(data.get("apiVersion")), str(data.get("kind")))
        check, validator = _pair(data)
        if check is None or key in kinds:
            continue
        kinds.add(key)
        # The pod template is mutated in the first workload only: the other kinds refer to
        # the same definition, so mutating it again in each (about half of this test's
        # jsonschema time) tries the same subschema with the same values.
        template = POD_TEMPLATES.get(key[1])
        skip = template if template is not None and pod_template_done else None
        pod_template_done = pod_template_done or template is not None
        for path, value in _mutations(data):
            if skip is not None and path[:len(skip)] == skip and len(path) > len(skip):
                continue
            mutated = _replace(data, path, value)
            tried += 1
            if check(mutated) and next(validator.iter_errors(mutated), None) is not None:
                passed_invalid.append((data["kind"], path, value))
    assert tried > 1000
    assert not passed_invalid, passed_invalid[:5]


@pytest.mark.parametrize(("schema_", "value", "expected"), [
    ({"oneOf": [{"type": ["string", "null"]}, {"type": ["integer", "null"]}]}, "1", True),
    ({"oneOf": [{"type": ["string", "null"]}, {"type": ["integer", "null"]}]}, None, False),
    ({"type": "integer"}, 2.0, True),
    ({"type": "integer"}, True, False),
    ({"enum": ["a"]}, "a", True),
    ({"enum": [1]}, True, False),
    # a regular expression: jsonschema alone (Python's $ matches "a\n", Rust's does not)
    ({"pattern": "^a"}, "ab", False),
    ({"properties": {"a": {"patternProperties": {"^x": {"type": "string"}}}}}, {"a": {}}, False),
    ({"properties": {"pattern": {"type": "string"}}}, {"pattern": "^a"}, True),  # a name
    ({"properties": {"a": {"type": "string"}}, "additionalProperties": False}, {"a": "x"}, True),
    ({"properties": {"a": {"type": "string"}}, "additionalProperties": False}, {"b": 1}, False),
    ({"required": ["a"]}, {}, False),
    ({"$ref": "#/$defs/x", "$defs": {"x": {"type": "string"}}}, "s", True),
    ({"$ref": "#/$defs/x", "$defs": {"x": {"type": "string"}}}, 1, False),
    ({"format": "date"}, "not a date", True),  # formats are annotations to both
    # what parsers may give and JSON has not: "ask jsonschema"
    ({"type": "object"}, {1: "a"}, False),
    ({"type": "object"}, {None: "a"}, False),
    ({"properties": {"a": {"type": "string"}}}, {"a": dt.date(2026, 12, 4)}, False),
    ({"$ref": "#/$defs/missing"}, "s", False),  # a schema it cannot build
])
def test_fast_check(schema_: dict[str, Any], value: Any, expected: bool) -> None:
    check = schema._fast_check(schema_)
    assert check(value) is expected
    if expected:
        assert jsonschema.Draft202012Validator(schema_).is_valid(value)


def test_shipped_schemas_use_no_pattern() -> None:
    """So every shipped kind takes the fast path (a pattern would leave it to jsonschema)."""
    version = schema.schema_version(KUBERNETES)
    definitions = json.loads((schema._k8s_folder(version) / "_definitions.json").read_text())
    assert "pattern" in json.dumps(definitions)  # only as a property's name: JSONSchemaProps
    assert not schema.uses_patterns(definitions)
    project = sorted(schema.SCHEMA_DIR.glob("*/*.json"))
    assert len(project) >= 5
    assert not any(schema.uses_patterns(json.loads(p.read_text())) for p in project)


def test_broken_project_schema_is_bad_input(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                            ) -> None:
    monkeypatch.setenv("TOOTCHECK_CACHE_DIR", str(tmp_path / "cache"))
    (tmp_path / "schemas" / "example.io").mkdir(parents=True)
    obj = {"apiVersion": "example.io/v1", "kind": "Thing", "metadata": {"name": "t"}}
    (tmp_path / "schemas" / "example.io" / "thing.json").write_text(
        json.dumps({"type": "object", "minProperties": -1}))
    with pytest.raises(BadInput, match=r"thing\.json is broken"):
        schema.validate_object(obj, KUBERNETES, schema_dir=tmp_path / "schemas")
    assert not (tmp_path / "cache").exists()  # a broken schema is never remembered


def test_checked_schema_is_remembered(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOOTCHECK_CACHE_DIR", str(tmp_path / "cache"))
    (tmp_path / "schemas" / "example.io").mkdir(parents=True)
    (tmp_path / "schemas" / "example.io" / "thing.json").write_text(
        json.dumps({"type": "object", "required": ["spec"]}))
    obj = {"apiVersion": "example.io/v1", "kind": "Thing", "metadata": {"name": "t"}}
    problems = schema.validate_object(obj, KUBERNETES, schema_dir=tmp_path / "schemas")
    assert [p.message for p in problems] == ["'spec' is a required property"]
    assert len(list((tmp_path / "cache" / "schemas-ok").iterdir())) == 1
