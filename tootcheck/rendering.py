"""Rendering kustomizations into the committed snapshots the offline gate checks.

Each entry of :data:`SNAPSHOTS` maps a kustomize directory to its snapshot. The
render uses exactly the production command, ``kubectl kustomize --enable-helm``.
A snapshot starts with a header comment; :func:`body` strips it for comparison.

Paths: the operator's kustomizations and snapshots are relative to the project root
(:func:`tootcheck.config_file.project_root`); the kind test infrastructure
(``manifests/infra/*``, ``manifests/kind/*``) comes from the package data
(:mod:`tootcheck.resources`), so an installed tool brings it along.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tootcheck import resources
from tootcheck.config_file import display, project_root
from tootcheck.errors import BadInput
from tootcheck.kube import tools as kube_tools

PACKAGED_PREFIXES = ("manifests/infra/", "manifests/kind/")
ERROR_LINES = 60  # of a failed render's stderr, shown in full up to this many lines


def source_dir(source: str) -> Path:
    """A kustomize directory named as in the repository: the test infrastructure from the
    package data, anything else relative to the project root."""
    for prefix in PACKAGED_PREFIXES:
        if source.startswith(prefix):
            return resources.infra_dir(source.removeprefix("manifests/"))
    return project_root() / source

HEADER = (
    "# Rendered by `make render` from {source} with `kubectl kustomize --enable-helm`."
    " Do not edit.\n"
)


@dataclass(frozen=True)
class Snapshot:
    source: str  # kustomize directory, as named in the repository (see source_dir)
    output: str  # committed snapshot, relative to the project root

    @property
    def source_path(self) -> Path:
        return source_dir(self.source)

    @property
    def output_path(self) -> Path:
        return project_root() / self.output

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
    """Relative to the working directory when below it (stable in messages and reports)."""
    return display(path)


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
        headline, detail = failure_message(kustomize_dir, done.returncode, done.stderr)
        raise BadInput(headline, detail)
    return done.stdout


_FETCH = re.compile(r"(https?://[^\s\"'<>]+|oci://[^\s\"'<>]+)")
_OFFLINE = re.compile(r"dial tcp|no such host|lookup .* on |connection refused|network is "
                      r"unreachable|i/o timeout|temporary failure in name resolution|"
                      r"could not resolve host|tls handshake timeout|context deadline exceeded|"
                      r"failed to fetch|failed to download|could not download|"
                      r"unable to (?:get|download|retrieve)|looks like .* is not a valid chart "
                      r"repository", re.IGNORECASE)


def failure_message(kustomize_dir: Path, code: int, stderr: str) -> tuple[str, str]:
    """The whole error of a failed render (kustomize nests helm's error over several lines,
    the last often just ``>``), and, when it tried the network, what it fetched and how to
    provide it locally."""
    lines = [line.rstrip() for line in stderr.splitlines() if line.strip()]
    shown = lines[:ERROR_LINES]
    if len(lines) > ERROR_LINES:
        shown.append(f"... ({len(lines) - ERROR_LINES} more lines)")
    text = "\n".join(f"  {line}" for line in shown) or f"  (no error output, exit {code})"
    headline = f"kubectl kustomize {display_path(kustomize_dir)} failed (exit {code}):"
    hint = offline_hint(kustomize_dir, stderr)
    return headline, f"{text}\n{hint}" if hint else text


def offline_hint(kustomize_dir: Path, stderr: str) -> str:
    """What a render tried to fetch from the network and how to provide it offline."""
    if not _OFFLINE.search(stderr):
        return ""
    urls = sorted({u.rstrip(".,:;)") for u in _FETCH.findall(stderr)})
    try:
        missing = missing_charts(kustomize_dir)
    except BadInput:
        missing = []
    hints = []
    if urls:
        hints.append("it tried to fetch " + ", ".join(urls))
    for chart in missing:
        hints.append(
            f"chart {chart.name} {chart.version} from {chart.repo or '(no repo)'} is not in "
            f"{display_path(chart.cache)}: pull it once with network (`tootcheck render`), or "
            f"unpack it there (`helm pull {chart.name} --repo {chart.repo} --version "
            f"{chart.version} --untar --untardir {display_path(chart.cache.parent)}`), or point "
            f"helmGlobals.chartHome in {display_path(chart.directory)}'s kustomization at a "
            f"directory that holds {chart.name}-{chart.version}/{chart.name}")
    if not missing:
        hints.append("offline, provide it locally: a chart as an unpacked directory under the "
                      "kustomization's chartHome (default charts/<name>-<version>/<name>), a "
                      "JSON schema or base as a local file the kustomization names instead "
                      "of the URL")
    return "hint: the render needs the network: " + "; ".join(hints)


def body(text: str) -> str:
    """The snapshot without its leading comment lines."""
    lines = text.splitlines(keepends=True)
    while lines and lines[0].startswith("#"):
        lines.pop(0)
    return "".join(lines)


def write_snapshot(snapshot: Snapshot, rendered: str | None = None) -> Path:
    rendered = render(snapshot.source_path) if rendered is None else rendered
    snapshot.output_path.parent.mkdir(parents=True, exist_ok=True)
    snapshot.output_path.write_text(HEADER.format(source=snapshot.source) + rendered)
    return snapshot.output_path
