"""kind, kubectl and helm: find them, judge their versions, fetch pinned releases.

Standard library only: ``scripts/bootstrap-tools`` runs this with the system
Python before the venv exists. Version parsing and the compatibility rules are
pure functions; :func:`bootstrap` downloads an official release, verifies its
sha256 against the pin in :mod:`tootcheck.versions` *and* against the checksum
file published next to it, and installs it into ``.tools/bin``.
"""

from __future__ import annotations

import hashlib
import io
import os
import platform
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from tootcheck import versions
from tootcheck.errors import BadInput, ToolMissing

# The project's own tools directory, filled by `make tools`; searched before PATH.
TOOLS_BIN = Path(".tools") / "bin"  # `make tools` puts them here (working directory)

VERSION_TIMEOUT_S = 20.0
DOWNLOAD_TIMEOUT_S = 120.0

Version = tuple[int, int, int]
_VERSION = re.compile(r"(?<![\w.])v?(\d+)\.(\d+)\.(\d+)")


def parse_version(text: str) -> Version | None:
    """The first ``[v]MAJOR.MINOR.PATCH`` in a tool's version output.

    >>> parse_version("kind v0.30.0 go1.24.6 linux/amd64")
    (0, 30, 0)
    >>> parse_version("Client Version: v1.32.4-dispatcher")
    (1, 32, 4)
    >>> parse_version("v3.19.0+g3d8990f")
    (3, 19, 0)
    """
    match = _VERSION.search(text or "")
    return tuple(int(g) for g in match.groups()) if match else None  # type: ignore[return-value]


def fmt(version: Version) -> str:
    return "v" + ".".join(str(p) for p in version)


@dataclass(frozen=True)
class ToolSpec:
    name: str
    pinned: str
    url: str  # template: {version} {os} {arch}
    sha_url: str
    version_args: tuple[str, ...]
    archive_member: str | None = None  # path inside a .tar.gz
    hint: str = ""

    @property
    def pinned_version(self) -> Version:
        parsed = parse_version(self.pinned)
        assert parsed is not None
        return parsed


SPECS: dict[str, ToolSpec] = {
    "kind": ToolSpec(
        "kind", versions.KIND,
        "https://github.com/kubernetes-sigs/kind/releases/download/{version}/kind-{os}-{arch}",
        "https://github.com/kubernetes-sigs/kind/releases/download/{version}/kind-{os}-{arch}.sha256sum",
        ("version",)),
    "kubectl": ToolSpec(
        "kubectl", versions.KUBECTL,
        "https://dl.k8s.io/release/{version}/bin/{os}/{arch}/kubectl",
        "https://dl.k8s.io/release/{version}/bin/{os}/{arch}/kubectl.sha256",
        ("version", "--client")),
    "helm": ToolSpec(
        "helm", versions.HELM,
        "https://get.helm.sh/helm-{version}-{os}-{arch}.tar.gz",
        "https://get.helm.sh/helm-{version}-{os}-{arch}.tar.gz.sha256sum",
        ("version", "--short"), archive_member="{os}-{arch}/helm"),
}


def compatibility(tool: str, version: Version | None, kubernetes: str = versions.KUBERNETES) -> str | None:
    """None when ``version`` of ``tool`` works for the bring-up, else why not (one line)."""
    if version is None:
        return f"{tool}: cannot tell its version"
    v = fmt(version)
    if tool == "kind":
        if version < (0, 30, 0):
            return f"kind {v} is older than v0.30.0 (needed for Kubernetes 1.34 node images)"
        if version[0] >= 1:
            return f"kind {v} is a new major version, untested (pinned {versions.KIND})"
        return None
    if tool == "kubectl":
        # The suite talks to the API through the Python client; kubectl only renders
        # (`kubectl kustomize --enable-helm`, kustomize v5 with helmCharts) and is the
        # operator's reconnect command, so the server skew matters less than the
        # embedded kustomize: 1.28 onwards, and no newer than Kubernetes + 1.
        k = parse_version(kubernetes) or (1, 34, 0)
        if version[0] != 1 or version[1] < 28:
            return f"kubectl {v} is older than v1.28.0 (embedded kustomize v5 with helmCharts)"
        if version[1] > k[1] + 1:
            return f"kubectl {v} is newer than Kubernetes {k[0]}.{k[1]} + 1 minor"
        return None
    if tool == "helm":
        if version[0] != 3:
            return f"helm {v}: kubectl kustomize --enable-helm needs helm v3 (pinned {versions.HELM})"
        if version < (3, 14, 0):
            return f"helm {v} is older than v3.14.0"
        return None
    if tool == "docker":
        return None
    raise ValueError(f"unknown tool {tool}")


def host_platform(system: str | None = None, machine: str | None = None) -> tuple[str, str]:
    """(os, arch) as the release URLs spell them."""
    system = (system or platform.system()).lower()
    machine = (machine or platform.machine()).lower()
    arch = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(machine)
    if system not in ("linux", "darwin") or arch is None:
        raise BadInput(f"no pinned tool releases for {system}/{machine}; install kind, kubectl "
                       "and helm v3 yourself")
    return system, arch


# ------------------------------------------------------------------ finding


@dataclass(frozen=True)
class Found:
    tool: str
    path: Path
    version: Version | None
    problem: str | None  # None: compatible

    @property
    def ok(self) -> bool:
        return self.problem is None

    def describe(self) -> str:
        v = fmt(self.version) if self.version else "unknown version"
        return f"{self.tool} {v} at {self.path}" + (f": {self.problem}" if self.problem else "")


# A binary's answer, remembered while the file is the same one (a command resolves kubectl
# more than once; each `kubectl version --client` costs about 60 ms of CPU).
_VERSIONS: dict[tuple[str, tuple[str, ...], tuple[int, int, int, int]], Version | None] = {}


def tool_version(path: Path, args: Sequence[str]) -> Version | None:
    try:
        st = path.stat()
    except OSError:
        return None
    key = (str(path), tuple(args), (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns))
    if key not in _VERSIONS:
        try:
            out = subprocess.run([str(path), *args], capture_output=True, text=True,
                                 timeout=VERSION_TIMEOUT_S, check=False)
        except (OSError, subprocess.TimeoutExpired):
            return None  # not remembered: a timeout may pass on the next try
        _VERSIONS[key] = parse_version(out.stdout + "\n" + out.stderr)
    return _VERSIONS[key]


def candidates(tool: str, tools_bin: Path = TOOLS_BIN, path: str | None = None) -> list[Path]:
    """``.tools/bin/<tool>`` first, then the one on PATH."""
    out: list[Path] = []
    local = tools_bin / tool
    if local.is_file() and os.access(local, os.X_OK):
        out.append(local)
    on_path = shutil.which(tool, path=path)
    if on_path and Path(on_path).resolve() not in {p.resolve() for p in out}:
        out.append(Path(on_path))
    return out


def find(tool: str, tools_bin: Path = TOOLS_BIN, path: str | None = None,
         version_of: Callable[[Path, Sequence[str]], Version | None] = tool_version) -> list[Found]:
    spec = SPECS[tool]
    found = []
    for candidate in candidates(tool, tools_bin, path):
        version = version_of(candidate, spec.version_args)
        found.append(Found(tool, candidate, version, compatibility(tool, version)))
    return found


def resolve(tool: str, tools_bin: Path = TOOLS_BIN, path: str | None = None) -> Path:
    """The path of a compatible ``tool``, or :class:`ToolMissing` (one line)."""
    found = find(tool, tools_bin, path)
    for f in found:
        if f.ok:
            return f.path
    why = "; ".join(f.describe() for f in found) or "not on PATH nor in .tools/bin"
    raise ToolMissing(tool, why, f"run `make tools` to fetch {SPECS[tool].pinned}")


# -------------------------------------------------------------- downloading


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def parse_checksum_file(text: str, filename: str | None = None) -> str:
    """The sha256 in a ``.sha256`` (bare hash) or ``.sha256sum`` (hash  name) file."""
    for line in text.splitlines():
        parts = line.split()
        if not parts:
            continue
        digest = parts[0].lower()
        if not re.fullmatch(r"[0-9a-f]{64}", digest):
            continue
        if filename is None or len(parts) == 1 or parts[-1].lstrip("*").endswith(filename):
            return digest
    raise BadInput(f"no sha256 for {filename or 'the download'} in the published checksum file")


def verify(data: bytes, *, pinned: str | None, official: str | None, what: str) -> str:
    """Accept ``data`` only if it matches every checksum we have (at least one)."""
    actual = sha256_of(data)
    if pinned is None and official is None:
        raise BadInput(f"{what}: no checksum to verify against; refusing to install")
    for label, expected in (("pinned", pinned), ("published", official)):
        if expected is not None and actual != expected:
            raise BadInput(f"{what}: sha256 {actual[:12]}… does not match the {label} checksum "
                           f"{expected[:12]}…; refusing to install")
    return actual


Fetch = Callable[[str], bytes]


def http_fetch(url: str) -> bytes:
    import urllib.error  # here, not at the top: the policy gate imports this module and
    import urllib.request  # never downloads (start-up time)

    try:
        with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as response:
            return bytes(response.read())
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise BadInput(f"cannot download {url}: {reason} (no network? put a compatible "
                       "kind, kubectl and helm v3 on PATH instead)") from None


def bootstrap(tool: str, *, dest: Path = TOOLS_BIN, os_arch: tuple[str, str] | None = None,
              fetch: Fetch = http_fetch, pins: dict[tuple[str, str, str], str] | None = None,
              spec: ToolSpec | None = None) -> tuple[Path, str]:
    """Download the pinned ``tool``, verify it, install it; returns (path, note)."""
    spec = spec or SPECS[tool]
    os_name, arch = os_arch or host_platform()
    pins = versions.TOOL_SHA256 if pins is None else pins
    fields = {"version": spec.pinned, "os": os_name, "arch": arch}
    url = spec.url.format(**fields)
    filename = url.rsplit("/", 1)[-1]
    pinned = pins.get((tool, os_name, arch))
    data = fetch(url)
    notes = []
    try:
        published = fetch(spec.sha_url.format(**fields)).decode("utf-8", "replace")
        official: str | None = parse_checksum_file(published, filename)
    except BadInput as exc:
        if pinned is None:
            raise
        official = None
        notes.append(f"published checksum unavailable ({exc}); verified against the pin only")
    if pinned is None:
        notes.append("no pinned checksum for this platform; verified against the published one")
    verify(data, pinned=pinned, official=official, what=f"{tool} {spec.pinned} ({os_name}/{arch})")
    if spec.archive_member:
        import tarfile

        member = spec.archive_member.format(**fields)
        try:
            with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
                extracted = archive.extractfile(member)
                if extracted is None:
                    raise KeyError(member)
                data = extracted.read()
        except (KeyError, tarfile.TarError) as exc:
            raise BadInput(f"{tool}: {member} not found in {filename}: {exc}") from None
    dest.mkdir(parents=True, exist_ok=True)
    target = dest / tool
    with tempfile.NamedTemporaryFile(dir=dest, prefix=f".{tool}-", delete=False) as tmp:
        tmp.write(data)
    Path(tmp.name).chmod(0o755)
    Path(tmp.name).replace(target)
    return target, "; ".join(notes)


def ensure(tool: str, *, dest: Path = TOOLS_BIN, path: str | None = None, fetch: Fetch = http_fetch,
           version_of: Callable[[Path, Sequence[str]], Version | None] = tool_version) -> str:
    """A one-line report: the compatible tool found, or the one just installed."""
    found = find(tool, dest, path, version_of)
    for f in found:
        if f.ok:
            return f"{f.describe()} (compatible, used as is)"
    target, note = bootstrap(tool, dest=dest, fetch=fetch)
    skipped = "; ".join(f.describe() for f in found)
    line = f"{tool} {SPECS[tool].pinned} installed at {target} (sha256 verified)"
    if skipped:
        line += f"; not used: {skipped}"
    if note:
        line += f"; {note}"
    return line
