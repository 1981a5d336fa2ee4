"""Strict JSON schemas for custom resources, taken from the pinned charts' own CRDs.

The API server's strict field validation rejects fields a CRD's structural schema does not
declare, unless the schema preserves unknown fields. :func:`strict_schema` reproduces that
on the CRD's ``openAPIV3Schema``: every object schema that lists ``properties`` and neither
sets ``additionalProperties`` nor ``x-kubernetes-preserve-unknown-fields`` becomes closed.
"""

from __future__ import annotations

import copy
from typing import Any

import jsonschema


def _close(node: Any) -> None:
    if isinstance(node, dict):
        if ("properties" in node and "additionalProperties" not in node
                and not node.get("x-kubernetes-preserve-unknown-fields")):
            node["additionalProperties"] = False
        for value in node.values():
            _close(value)
    elif isinstance(node, list):
        for value in node:
            _close(value)


def strict_schema(crd: dict[str, Any], version: str) -> dict[str, Any]:
    """The closed openAPIV3Schema of ``version`` of a CustomResourceDefinition object."""
    for entry in crd["spec"]["versions"]:
        if entry["name"] == version:
            schema = copy.deepcopy(entry["schema"]["openAPIV3Schema"])
            _close(schema)
            # metadata is the API server's to validate (it is {type: object} in every CRD).
            schema.setdefault("properties", {})["metadata"] = {"type": "object"}
            return schema
    raise KeyError(f"{crd['metadata']['name']} serves no version {version}")


def crd_for(crds: list[dict[str, Any]], api_version: str, kind: str) -> dict[str, Any] | None:
    group, _, _version = api_version.partition("/")
    for crd in crds:
        spec = crd.get("spec") or {}
        if spec.get("group") == group and (spec.get("names") or {}).get("kind") == kind:
            return crd
    return None


def problems(obj: dict[str, Any], crds: list[dict[str, Any]]) -> list[str]:
    """Why ``obj`` would be rejected under strict validation (empty: accepted)."""
    api_version = str(obj.get("apiVersion"))
    crd = crd_for(crds, api_version, str(obj.get("kind")))
    if crd is None:
        return [f"no CRD serves {api_version} {obj.get('kind')}"]
    version = api_version.partition("/")[2]
    served = [v["name"] for v in crd["spec"]["versions"] if v.get("served")]
    if version not in served:
        return [f"{crd['metadata']['name']} does not serve {version} (serves {served})"]
    validator = jsonschema.Draft7Validator(strict_schema(crd, version))
    return [f"{'.'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}"
            for e in validator.iter_errors(obj)]
