"""Image preload: pull once on the host, ``kind load docker-image`` into the node.

A fresh kind node has an empty containerd store, so without a preload every
cluster downloads every image again. With it, the host's Docker store is the
cache: an image is pulled once per machine and copied into each new node. What
is missing where is decided by pure functions over the render's image list and
the node's ``status.images``; the docker/kind calls are bounded subprocesses.
Preloading is an optimisation: an image that cannot be loaded is left to the
node's own pull (imagePullPolicy IfNotPresent), and the timings say so.

``kind load docker-image`` fails with "content digest ... not found" when Docker
keeps images in the containerd image store (the default of a fresh Docker 29):
``docker save`` then writes an index naming every platform, or an attestation,
whose blobs the host never pulled (kubernetes-sigs/kind#3795). The fallback is the
one kind documents for it (kubernetes-sigs/kind#4247): ``docker image save
--platform <the daemon's os/arch>`` into a temporary archive, then ``kind load
image-archive``; only when that fails too is the image left to the node. A load that
timed out, or a kind that could not be started, goes straight to the node: the archive
would wait, or fail, the same way.
"""

from __future__ import annotations

import subprocess
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PULL_TIMEOUT_S = 900.0
LOAD_TIMEOUT_S = 900.0
INSPECT_TIMEOUT_S = 30.0


def normalize(image: str) -> str:
    """The fully qualified reference containerd lists: ``redis:7`` ->
    ``docker.io/library/redis:7``; a missing tag means ``latest``."""
    name, digest = [*image.split("@", 1), ""][:2]
    first = name.split("/", 1)[0]
    if "/" not in name:
        name = f"docker.io/library/{name}"
    elif not ("." in first or ":" in first or first == "localhost"):
        name = f"docker.io/{name}"
    elif first == "docker.io" and name.count("/") == 1:
        name = name.replace("docker.io/", "docker.io/library/", 1)
    last = name.rsplit("/", 1)[-1]
    if ":" not in last and not digest:
        name += ":latest"
    return f"{name}@{digest}" if digest else name


def node_image_names(nodes: Iterable[Mapping[str, Any]]) -> set[str]:
    """Every name (tag or digest reference) a node reports in ``status.images``,
    intersected over nodes: an image counts as present only if every node has it."""
    sets = []
    for node in nodes:
        names: set[str] = set()
        for entry in (node.get("status") or {}).get("images") or []:
            names.update(normalize(n) for n in entry.get("names") or [])
        sets.append(names)
    return set.intersection(*sets) if sets else set()


def missing_on_node(wanted: Sequence[str], present: set[str]) -> list[str]:
    """The wanted images (as written in the render) a node does not have. A digest
    pin counts as present when the node lists ``repo@digest``."""
    missing = []
    for image in wanted:
        ref = normalize(image)
        if ref in present:
            continue
        if "@" in ref:
            repo, digest = ref.split("@", 1)
            repo = repo.rsplit(":", 1)[0] if ":" in repo.rsplit("/", 1)[-1] else repo
            if f"{repo}@{digest}" in present:
                continue
        missing.append(image)
    return missing


@dataclass
class PreloadReport:
    """What the image phase did, for timings.json (the measuring hook)."""

    wanted: int = 0
    already_on_node: int = 0
    images: list[str] = field(default_factory=list)
    host_hits: int = 0
    pulled: list[str] = field(default_factory=list)
    loaded: list[str] = field(default_factory=list)
    left_to_node: list[str] = field(default_factory=list)
    via_archive: list[str] = field(default_factory=list)  # loaded by the fallback (kind#3795)
    seconds: dict[str, float] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @classmethod
    def combined(cls, reports: Sequence[PreloadReport]) -> PreloadReport:
        """One report for several image phases (they load disjoint renders; an image
        two renders share counts once per phase)."""
        out = cls()
        for r in reports:
            out.wanted += r.wanted
            out.already_on_node += r.already_on_node
            out.host_hits += r.host_hits
            out.images += [i for i in r.images if i not in out.images]
            out.pulled += r.pulled
            out.loaded += r.loaded
            out.left_to_node += r.left_to_node
            out.via_archive += r.via_archive
            out.problems += r.problems
            for key, seconds in r.seconds.items():
                out.seconds[key] = round(out.seconds.get(key, 0.0) + seconds, 2)
        return out

    def summary(self) -> str:
        parts = [f"{self.wanted} images: {self.already_on_node} already on the node",
                 f"{self.host_hits} from the host cache", f"{len(self.pulled)} pulled"]
        if self.left_to_node:
            parts.append(f"{len(self.left_to_node)} left to the node's own pull")
        return ", ".join(parts)

    def to_json(self) -> dict[str, Any]:
        return {"wanted": self.wanted, "images": self.images, "already_on_node": self.already_on_node,
                "host_hits": self.host_hits, "pulled": self.pulled, "loaded": self.loaded,
                "left_to_node": self.left_to_node, "via_archive": self.via_archive,
                "seconds": self.seconds,
                "problems": self.problems}


Runner = Callable[[Sequence[str], float], "subprocess.CompletedProcess[str]"]


TIMED_OUT, NOT_STARTED = 124, 127  # run's exit statuses for a command it stopped or never ran
NOT_TRIED = (TIMED_OUT, NOT_STARTED)


def run(argv: Sequence[str], timeout: float) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return subprocess.CompletedProcess(list(argv), TIMED_OUT, "", f"timed out after {timeout:.0f}s")
    except OSError as exc:
        return subprocess.CompletedProcess(list(argv), NOT_STARTED, "", str(exc))


def _last_line(done: subprocess.CompletedProcess[str]) -> str:
    lines = [ln.strip() for ln in (done.stderr or done.stdout or "").splitlines() if ln.strip()]
    return lines[-1][:200] if lines else f"exit {done.returncode}"


def preload(missing: Sequence[str], *, docker: Path, kind: Path, cluster: str,
            report: PreloadReport, runner: Runner = run,
            clock: Callable[[], float] = time.monotonic) -> PreloadReport:
    """Pull what the host lacks, then load everything missing into the node."""
    started = clock()
    loadable = []
    for image in missing:
        have = runner([str(docker), "image", "inspect", "--format", "{{.Id}}", image],
                      INSPECT_TIMEOUT_S)
        if have.returncode == 0:
            report.host_hits += 1
            loadable.append(image)
            continue
        pulled = runner([str(docker), "pull", image], PULL_TIMEOUT_S)
        if pulled.returncode == 0:
            report.pulled.append(image)
            loadable.append(image)
        else:
            report.problems.append(f"pull {image}: {_last_line(pulled)}")
            report.left_to_node.append(image)
    report.seconds["host"] = round(clock() - started, 2)
    started = clock()
    platform: str | None = None  # the daemon's os/arch, asked once, when the fallback needs it
    for image in loadable:  # one at a time: a failure affects only that image
        loaded = runner([str(kind), "load", "docker-image", "--name", cluster, image], LOAD_TIMEOUT_S)
        if loaded.returncode == 0:
            report.loaded.append(image)
            continue
        problem = f"kind load {image}: {_last_line(loaded)}"
        if loaded.returncode in NOT_TRIED:  # the archive would wait or fail the same way
            report.problems.append(problem)
            report.left_to_node.append(image)
            continue
        if platform is None:
            platform = _platform(docker, runner)
        fallback = load_archive(image, docker=docker, kind=kind, cluster=cluster,
                                platform=platform, runner=runner)
        if fallback is None:
            report.loaded.append(image)
            report.via_archive.append(image)
        else:
            report.problems += [problem, fallback]
            report.left_to_node.append(image)
    report.seconds["load"] = round(clock() - started, 2)
    return report


def _platform(docker: Path, runner: Runner) -> str:
    """The daemon's ``os/arch`` (what the node runs: kind nodes are containers of the
    daemon), or "" when docker cannot say."""
    done = runner([str(docker), "version", "--format", "{{.Server.Os}}/{{.Server.Arch}}"],
                  INSPECT_TIMEOUT_S)
    value = done.stdout.strip() if done.returncode == 0 else ""
    return value if value.count("/") == 1 and " " not in value else ""


def load_archive(image: str, *, docker: Path, kind: Path, cluster: str, platform: str,
                 runner: Runner = run) -> str | None:
    """Load ``image`` through a one-platform archive; None when loaded, else the problem."""
    if not platform:
        return f"archive fallback {image}: the Docker daemon's platform is unknown"
    with tempfile.TemporaryDirectory(prefix="tootcheck-image-") as tmp:
        archive = str(Path(tmp) / "image.tar")
        saved = runner([str(docker), "image", "save", "--platform", platform, "-o", archive, image],
                       LOAD_TIMEOUT_S)
        if saved.returncode != 0:
            return f"docker image save --platform {platform} {image}: {_last_line(saved)}"
        loaded = runner([str(kind), "load", "image-archive", "--name", cluster, archive],
                        LOAD_TIMEOUT_S)
        if loaded.returncode != 0:
            return f"kind load image-archive {image}: {_last_line(loaded)}"
    return None
