"""Finding the external tools (kubectl, helm, kind, docker) and their versions.

The project's own ``.tools/bin`` (filled by ``make tools``) comes first, then PATH.
helm must be v3: kustomize 5.5/5.6 reject helm v4 in ``--enable-helm``.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tootcheck.errors import ToolMissing
from tootcheck.settings import REPO_ROOT

TOOLS_BIN = REPO_ROOT / ".tools" / "bin"
_VERSION = re.compile(r"v?(\d+)\.(\d+)\.(\d+)")


@dataclass(frozen=True, order=True)
class Version:
    major: int
    minor: int
    patch: int

    @classmethod
    def parse(cls, text: str) -> Version | None:
        match = _VERSION.search(text)
        return cls(*(int(g) for g in match.groups())) if match else None

    def __str__(self) -> str:
        return f"v{self.major}.{self.minor}.{self.patch}"


def find(name: str) -> Path | None:
    """The tool from .tools/bin, else from PATH, else None."""
    local = TOOLS_BIN / name
    if local.is_file():
        return local
    found = shutil.which(name)
    return Path(found) if found else None


def _output(cmd: list[str]) -> str:
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"error: {exc}"
    return done.stdout + done.stderr


def helm_version(helm: Path) -> Version | None:
    return Version.parse(_output([str(helm), "version", "--short"]))


def kustomize_version(kubectl: Path) -> Version | None:
    for line in _output([str(kubectl), "version", "--client"]).splitlines():
        if line.startswith("Kustomize Version"):
            return Version.parse(line)
    return None


def require_helm3() -> Path:
    helm = find("helm")
    if helm is None:
        raise ToolMissing("helm", "needed by kustomize --enable-helm", "run `make tools`")
    version = helm_version(helm)
    if version is None or version.major != 3:
        raise ToolMissing("helm v3", f"{helm} is {version or 'of unknown version'}; "
                          "kustomize --enable-helm needs helm v3", "run `make tools`")
    return helm


def require_kubectl() -> Path:
    kubectl = find("kubectl")
    if kubectl is None:
        raise ToolMissing("kubectl", "needed to render kustomizations", "run `make tools`")
    return kubectl
