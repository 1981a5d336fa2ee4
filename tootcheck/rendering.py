"""Rendering kustomizations into the committed snapshots the offline gate checks.

Each entry of :data:`SNAPSHOTS` maps a kustomize directory to its snapshot. The
render uses exactly the production command, ``kubectl kustomize --enable-helm``.
A snapshot starts with a header comment; :func:`body` strips it for comparison.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tootcheck.errors import BadInput
from tootcheck.kube import tools as kube_tools
from tootcheck.settings import REPO_ROOT

HEADER = (
    "# Rendered by `make render` from {source} with `kubectl kustomize --enable-helm`."
    " Do not edit.\n"
)


@dataclass(frozen=True)
class Snapshot:
    source: str  # kustomize directory, relative to the repository root
    output: str  # committed snapshot, relative to the repository root

    @property
    def source_path(self) -> Path:
        return REPO_ROOT / self.source

    @property
    def output_path(self) -> Path:
        return REPO_ROOT / self.output

    @property
    def name(self) -> str:
        return Path(self.output).stem


REFERENCE = Snapshot("manifests/apps/mastodon", "manifests/rendered/mastodon.yaml")
# The test infrastructure and the kind overlay (manifests/kind, infra, overlays).
INFRA_SNAPSHOTS: tuple[Snapshot, ...] = (
    Snapshot("manifests/infra/nfs", "manifests/rendered/infra-nfs.yaml"),
    Snapshot("manifests/infra/traefik", "manifests/rendered/infra-traefik.yaml"),
    Snapshot("manifests/infra/cert-manager", "manifests/rendered/infra-cert-manager.yaml"),
    Snapshot("manifests/infra/issuers", "manifests/rendered/infra-issuers.yaml"),
    Snapshot("manifests/infra/authentik", "manifests/rendered/infra-authentik.yaml"),
    Snapshot("manifests/kind/coredns", "manifests/rendered/infra-coredns.yaml"),
    Snapshot("manifests/overlays/kind", "manifests/rendered/overlay-kind.yaml"),
    Snapshot("manifests/infra/mailpit", "manifests/rendered/infra-mailpit.yaml"),
    Snapshot("manifests/infra/fediverse-peer", "manifests/rendered/infra-fediverse-peer.yaml"),
)
SNAPSHOTS: tuple[Snapshot, ...] = (REFERENCE, *INFRA_SNAPSHOTS)


@dataclass(frozen=True)
class HelmChartRef:
    directory: Path  # the kustomization that names the chart
    name: str
    version: str
    repo: str

    @property
    def cache(self) -> Path:
        """Where kustomize looks for a pulled chart before pulling it (chartHome 'charts')."""
        return self.directory / "charts" / f"{self.name}-{self.version}" / self.name

    @property
    def is_cached(self) -> bool:
        return (self.cache / "Chart.yaml").is_file()

    def __str__(self) -> str:
        return f"{self.name} {self.version}"


KUSTOMIZATION_FILES = ("kustomization.yaml", "kustomization.yml", "Kustomization")


def display_path(path: Path) -> str:
    """Repo-relative posix path when inside the repository (stable in messages and reports)."""
    try:
        return path.resolve().relative_to(REPO_ROOT).as_posix()
    except ValueError:
        return str(path)


def kustomization_file(directory: Path) -> Path | None:
    for name in KUSTOMIZATION_FILES:
        if (directory / name).is_file():
            return directory / name
    return None


def _kustomization(directory: Path) -> dict[str, Any]:
    path = kustomization_file(directory)
    if path is None:
        raise BadInput(f"{display_path(directory)}: no kustomization file")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInput(f"{display_path(path)}: cannot read: "
                       f"{getattr(exc, 'strerror', None) or exc}") from None
    except (yaml.YAMLError, ValueError, TypeError) as exc:  # e.g. a date like 2027-13-45
        raise BadInput(f"{display_path(path)}: not valid YAML: "
                       f"{' '.join(str(exc).split())[:160]}") from None
    if not isinstance(data, dict):
        raise BadInput(f"{display_path(path)}: not a kustomization (expected a mapping)")
    return data


def helm_charts(kustomize_dir: Path, _seen: frozenset[Path] = frozenset()) -> list[HelmChartRef]:
    """The helmCharts of a kustomization and of every local base or component it pulls in."""
    directory = kustomize_dir.resolve()
    if directory in _seen or kustomization_file(directory) is None:
        return []
    data = _kustomization(directory)
    charts = [HelmChartRef(directory, str(c.get("name")), str(c.get("version", "")),
                           str(c.get("repo", "")))
              for c in data.get("helmCharts") or []]
    for entry in [*(data.get("resources") or []), *(data.get("components") or []),
                  *(data.get("bases") or [])]:
        base = (directory / str(entry)).resolve()
        if "://" not in str(entry) and base.is_dir():
            charts += helm_charts(base, _seen | {directory})
    return charts


def missing_charts(kustomize_dir: Path) -> list[HelmChartRef]:
    return [c for c in helm_charts(kustomize_dir) if not c.is_cached]


def render(kustomize_dir: Path, *, timeout: float = 300, tools_bin: Path | None = None,
           search_path: str | None = None) -> str:
    """``kubectl kustomize --enable-helm DIR`` (the production command), with helm v3 when a
    chart is involved; BadInput (one line) on failure. Tools come from ``tools_bin``
    (default .tools/bin), then PATH (``search_path`` overrides PATH)."""
    tools_bin = tools_bin or kube_tools.TOOLS_BIN
    kubectl = kube_tools.resolve("kubectl", tools_bin, search_path)
    cmd = [str(kubectl), "kustomize", "--enable-helm"]
    if helm_charts(kustomize_dir):
        found = [f for f in kube_tools.find("helm", tools_bin, search_path) if f.ok]
        if not found:
            others = "; ".join(f.describe() for f in kube_tools.find("helm", tools_bin, search_path))
            raise BadInput(f"{display_path(kustomize_dir)} has helmCharts and needs helm v3, but "
                           f"{others or 'no helm is on PATH nor in .tools/bin'} (run `make tools`)")
        cmd += ["--helm-command", str(found[0].path)]
    cmd.append(str(kustomize_dir))
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise BadInput(f"kubectl kustomize {display_path(kustomize_dir)} did not finish in "
                       f"{timeout:.0f}s") from None
    if done.returncode != 0:
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        raise BadInput(f"kubectl kustomize {display_path(kustomize_dir)} failed: "
                       f"{lines[-1] if lines else f'exit {done.returncode}'}")
    return done.stdout


def body(text: str) -> str:
    """The snapshot without its leading comment lines."""
    lines = text.splitlines(keepends=True)
    while lines and lines[0].startswith("#"):
        lines.pop(0)
    return "".join(lines)


def write_snapshot(snapshot: Snapshot) -> Path:
    rendered = render(snapshot.source_path)
    snapshot.output_path.parent.mkdir(parents=True, exist_ok=True)
    snapshot.output_path.write_text(HEADER.format(source=snapshot.source) + rendered)
    return snapshot.output_path
