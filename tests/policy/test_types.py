"""The policy types live in their own module: the engine and the registry both import
them, and neither imports the other's module at load time (no cycle)."""

from __future__ import annotations

import ast
from pathlib import Path

import tootcheck.policy

POLICY = Path(tootcheck.policy.__file__).parent


def _imports(module: Path) -> set[str]:
    tree = ast.parse(module.read_text())
    return {node.module for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and node.module}


def test_registry_does_not_import_engine() -> None:
    assert "tootcheck.policy.engine" not in _imports(POLICY / "registry.py")
    assert "tootcheck.policy.types" in _imports(POLICY / "registry.py")


def test_types_import_neither_engine_nor_registry() -> None:
    found = _imports(POLICY / "types.py")
    assert not found & {"tootcheck.policy.engine", "tootcheck.policy.registry"}, found


def test_rules_import_types_not_engine() -> None:
    for module in sorted((POLICY / "rules").glob("*.py")):
        assert "tootcheck.policy.engine" not in _imports(module), module.name

