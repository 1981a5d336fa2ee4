"""Rendering kustomizations into the committed snapshots the offline gate checks.

Each entry of :data:`SNAPSHOTS` maps a kustomize directory to its snapshot. The
render uses exactly the production command, ``kubectl kustomize --enable-helm``.
A snapshot starts with a header comment; :func:`body` strips it for comparison.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

import yaml

from tootcheck.errors import BadInput
from tootcheck.settings import REPO_ROOT
from tootcheck.tools import require_helm3, require_kubectl

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


def _kustomization(directory: Path) -> dict:
    path = directory / "kustomization.yaml"
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise BadInput(f"{path}: cannot read kustomization: {exc}") from None
    if not isinstance(data, dict):
        raise BadInput(f"{path}: not a kustomization")
    return data


def helm_charts(kustomize_dir: Path, _seen: frozenset[Path] = frozenset()) -> list[HelmChartRef]:
    """The helmCharts of a kustomization and of every base directory it pulls in."""
    directory = kustomize_dir.resolve()
    if directory in _seen:
        return []
    data = _kustomization(directory)
    charts = [HelmChartRef(directory, str(c.get("name")), str(c.get("version", "")),
                           str(c.get("repo", "")))
              for c in data.get("helmCharts") or []]
    for entry in data.get("resources") or []:
        base = (directory / str(entry)).resolve()
        if base.is_dir():
            charts += helm_charts(base, _seen | {directory})
    return charts


def missing_charts(kustomize_dir: Path) -> list[HelmChartRef]:
    return [c for c in helm_charts(kustomize_dir) if not c.is_cached]


def render(kustomize_dir: Path, *, timeout: float = 300) -> str:
    """``kubectl kustomize --enable-helm DIR`` with helm v3; BadInput on failure."""
    kubectl = require_kubectl()
    cmd = [str(kubectl), "kustomize", "--enable-helm"]
    if helm_charts(kustomize_dir):
        cmd += ["--helm-command", str(require_helm3())]
    cmd.append(str(kustomize_dir))
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise BadInput(f"rendering {kustomize_dir} took longer than {timeout:.0f}s") from None
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise BadInput(f"kubectl kustomize --enable-helm {kustomize_dir} failed: {last}")
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
