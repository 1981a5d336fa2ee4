"""A fast yes/"don't know" answer to "is this object valid against this JSON schema?".

jsonschema walks an object with a fresh validator per keyword and per level, which cost
more than all the other rules together. Nearly every object is valid, so a schema is
compiled once into plain Python checks, and only an object they do not pass goes to
jsonschema, which then produces the messages (so a finding reads exactly as before).

The checks are sound, never complete: ``check(x) is True`` only when jsonschema's
Draft 2020-12 validator (no format checker) reports no error for ``x``. Keywords are
implemented to its semantics (``type`` as its type checker, ``enum`` for strings,
``properties``/``additionalProperties``/``required``/``items``/``oneOf``/...); a
validating keyword that is not implemented here makes its schema answer "don't know"
(False), which only costs time. Annotations (description, format, x-kubernetes-*)
are ignored, as jsonschema does.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

Check = Callable[[Any], bool]

# Draft 2020-12's validating keywords (jsonschema's Draft202012Validator.VALIDATORS);
# anything else in a schema is an annotation. A test keeps this list in step.
VALIDATING = frozenset({
    "$dynamicRef", "$ref", "additionalProperties", "allOf", "anyOf", "const", "contains",
    "dependentRequired", "dependentSchemas", "enum", "exclusiveMaximum", "exclusiveMinimum",
    "format", "if", "items", "maxItems", "maxLength", "maxProperties", "maximum", "minItems",
    "minLength", "minProperties", "minimum", "multipleOf", "not", "oneOf", "pattern",
    "patternProperties", "prefixItems", "properties", "propertyNames", "required", "type",
    "unevaluatedItems", "unevaluatedProperties", "uniqueItems",
})
IMPLEMENTED = frozenset({
    "$ref", "additionalProperties", "allOf", "anyOf", "const", "enum", "format", "items",
    "maxProperties", "minProperties", "oneOf", "properties", "required", "type",
})


def _never(_: Any) -> bool:
    return False


def _always(_: Any) -> bool:
    return True


def _is_integer(x: Any) -> bool:
    if isinstance(x, bool):
        return False
    return isinstance(x, int) or (isinstance(x, float) and x.is_integer())


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


TYPES: dict[str, Check] = {
    "null": lambda x: x is None,
    "boolean": lambda x: isinstance(x, bool),
    "integer": _is_integer,
    "number": _is_number,
    "string": lambda x: isinstance(x, str),
    "object": lambda x: isinstance(x, dict),
    "array": lambda x: isinstance(x, list),
}


class Compiler:
    """Compiles the schemas of one document set; ``$ref``s are resolved against the
    current document (``#/...``) or a sibling file named by the ref's base."""

    def __init__(self, load: Callable[[str], Mapping[str, Any] | None]) -> None:
        self._load = load  # ref base (e.g. "/api/_definitions.json") -> document
        self._refs: dict[tuple[int, str], tuple[Check, bool]] = {}
        self._docs: dict[str, Mapping[str, Any] | None] = {}

    def compile(self, schema: Any, root: Any = None) -> Check:
        return self._compile(schema, schema if root is None else root, top=True)[0]

    # Each compiled schema comes with `exact`: its check is True exactly when the
    # instance is valid (needed inside oneOf, where a "don't know" would miscount).
    def _compile(self, schema: Any, root: Any, top: bool = False) -> tuple[Check, bool]:
        if schema is True:
            return _always, True
        if schema is False:
            return _never, True
        if not isinstance(schema, Mapping):
            return _never, False
        if "$id" in schema and not top:
            return _never, False  # a nested base URI: not followed here
        unknown = (set(schema) & VALIDATING) - IMPLEMENTED
        if unknown:
            return _never, False
        checks: list[Check] = []
        exact = True
        for part in (self._type(schema), self._enum(schema), self._ref(schema, root),
                     self._object(schema, root), self._items(schema, root),
                     self._combinators(schema, root)):
            if part is not None:
                checks.append(part[0])
                exact = exact and part[1]
        if not checks:
            return _always, exact
        if len(checks) == 1:
            return checks[0], exact
        first, *rest = checks

        def all_of(x: Any) -> bool:
            if not first(x):
                return False
            for c in rest:  # noqa: SIM110 (a loop: cheaper than all() over a generator)
                if not c(x):
                    return False
            return True

        return all_of, exact

    def _type(self, schema: Mapping[str, Any]) -> tuple[Check, bool] | None:
        if "type" not in schema:
            return None
        wanted = schema["type"]
        names = [wanted] if isinstance(wanted, str) else wanted
        if not isinstance(names, list) or any(n not in TYPES for n in names):
            return _never, False
        tests = tuple(TYPES[n] for n in names)
        if len(tests) == 1:
            return tests[0], True
        if set(names) <= {"string", "null", "object", "array", "boolean"}:
            python_types: dict[str, type] = {"string": str, "null": type(None), "object": dict,
                                             "array": list, "boolean": bool}
            classes = tuple(python_types[n] for n in names)
            return (lambda x: isinstance(x, classes)), True
        return (lambda x: any(t(x) for t in tests)), True

    def _enum(self, schema: Mapping[str, Any]) -> tuple[Check, bool] | None:
        if "enum" in schema:
            members = schema["enum"]
        elif "const" in schema:
            members = [schema["const"]]
        else:
            return None
        if "enum" in schema and "const" in schema:
            return _never, False
        if not isinstance(members, list):
            return _never, False
        strings = frozenset(m for m in members if isinstance(m, str))
        if len(strings) == len(members):  # only strings: decided exactly
            return (lambda x: isinstance(x, str) and x in strings), True
        return (lambda x: isinstance(x, str) and x in strings), False

    def _ref(self, schema: Mapping[str, Any], root: Any) -> tuple[Check, bool] | None:
        ref = schema.get("$ref")
        if ref is None:
            return None
        if not isinstance(ref, str) or "#" not in ref:
            return _never, False
        base, _, pointer = ref.partition("#")
        doc = root if not base else self._doc(base)
        if doc is None:
            return _never, False
        key = (id(doc), pointer)
        found = self._refs.get(key)
        if found is not None:
            return found
        target = _resolve(doc, pointer)
        if target is _MISSING:
            return _never, False
        # A cycle reaches this ref again while it compiles: it calls through a cell, and
        # counts as not exact (so a oneOf around it is not decided here).
        cell: list[Check] = [_never]
        self._refs[key] = ((lambda x: cell[0](x)), False)
        check, exact = self._compile(target, doc)
        cell[0] = check
        self._refs[key] = (check, exact)
        return check, exact

    def _doc(self, base: str) -> Mapping[str, Any] | None:
        if base not in self._docs:
            self._docs[base] = self._load(base)
        return self._docs[base]

    def _object(self, schema: Mapping[str, Any], root: Any) -> tuple[Check, bool] | None:
        props_s = schema.get("properties")
        addl_s = schema.get("additionalProperties")
        required = schema.get("required")
        min_p, max_p = schema.get("minProperties"), schema.get("maxProperties")
        if props_s is None and addl_s is None and required is None and min_p is None \
                and max_p is None:
            return None
        exact = True
        props: dict[str, Check] = {}
        if props_s is not None:
            if not isinstance(props_s, Mapping):
                return _never, False
            for name, sub in props_s.items():
                prop_check, sub_exact = self._compile(sub, root)
                props[name] = prop_check
                exact = exact and sub_exact
        addl: Check | None = None
        if addl_s is not None:
            addl, sub_exact = self._compile(addl_s, root)
            exact = exact and sub_exact
        if required is not None and not (isinstance(required, list)
                                         and all(isinstance(r, str) for r in required)):
            return _never, False
        need = tuple(required or ())
        for bound in (min_p, max_p):
            if bound is not None and not _is_integer(bound):
                return _never, False
        lo = int(min_p) if min_p is not None else 0
        hi = int(max_p) if max_p is not None else None

        def check(x: Any) -> bool:
            if not isinstance(x, dict):
                return True
            for name in need:
                if name not in x:
                    return False
            if len(x) < lo or (hi is not None and len(x) > hi):
                return False
            for k, v in x.items():
                c = props.get(k) if isinstance(k, str) else None
                if c is None:
                    if addl is not None and not addl(v):
                        return False
                elif not c(v):
                    return False
            return True

        return check, exact

    def _items(self, schema: Mapping[str, Any], root: Any) -> tuple[Check, bool] | None:
        if "items" not in schema:
            return None
        item, exact = self._compile(schema["items"], root)

        def check(x: Any) -> bool:
            if not isinstance(x, list):
                return True
            for v in x:  # noqa: SIM110 (as above)
                if not item(v):
                    return False
            return True

        return check, exact

    def _combinators(self, schema: Mapping[str, Any], root: Any) -> tuple[Check, bool] | None:
        parts: list[tuple[Check, bool]] = []
        for word in ("allOf", "anyOf", "oneOf"):
            subs_s = schema.get(word)
            if subs_s is None:
                continue
            if not isinstance(subs_s, list) or not subs_s:
                return _never, False
            subs = [self._compile(s, root) for s in subs_s]
            checks = tuple(c for c, _ in subs)
            exact = all(e for _, e in subs)
            if word == "allOf":
                parts.append((_all_of(checks), exact))
            elif word == "anyOf":  # sound: one check passing proves validity
                parts.append((_any_of(checks), exact))
            elif exact:  # oneOf counts, so every branch must be decided exactly
                parts.append((_one_of(checks), True))
            else:
                return _never, False
        if not parts:
            return None
        checks_all = tuple(c for c, _ in parts)
        return (lambda x: all(c(x) for c in checks_all)), all(e for _, e in parts)


_MISSING = object()


def _resolve(doc: Any, pointer: str) -> Any:
    node = doc
    for raw in pointer.split("/")[1:] if pointer else []:
        part = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(node, Mapping) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return _MISSING
    return node


def sibling_loader(folder: Path) -> Callable[[str], Mapping[str, Any] | None]:
    """Loads a ref's base (``/api/_definitions.json``) as the file of that name in
    ``folder``."""
    def load(base: str) -> Mapping[str, Any] | None:
        path = folder / base.rsplit("/", 1)[-1]
        try:
            doc = json.loads(path.read_text())
        except (OSError, ValueError):
            return None
        return doc if isinstance(doc, Mapping) else None

    return load


def _all_of(checks: tuple[Check, ...]) -> Check:
    return lambda x: all(c(x) for c in checks)


def _any_of(checks: tuple[Check, ...]) -> Check:
    return lambda x: any(c(x) for c in checks)


def _one_of(checks: tuple[Check, ...]) -> Check:
    return lambda x: sum(1 for c in checks if c(x)) == 1
