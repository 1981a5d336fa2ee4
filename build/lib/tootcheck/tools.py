"""The external tools the renders need, found the one way ``tootcheck.kube.tools`` defines.

A thin facade for code that only needs a compatible kubectl or helm v3 (kustomize 5.5/5.6
reject helm v4 in ``--enable-helm``): ``.tools/bin`` first, then PATH; ToolMissing (one
line, exit 2) otherwise.
"""

from __future__ import annotations

from pathlib import Path

from tootcheck.kube.tools import TOOLS_BIN, resolve
from tootcheck.kube.tools import find as find_all

__all__ = ["TOOLS_BIN", "find", "require_helm3", "require_kubectl"]


def find(name: str) -> Path | None:
    """A compatible ``name`` (kubectl, helm, kind), or None."""
    return next((found.path for found in find_all(name) if found.ok), None)


def require_kubectl() -> Path:
    return resolve("kubectl")


def require_helm3() -> Path:
    return resolve("helm")
