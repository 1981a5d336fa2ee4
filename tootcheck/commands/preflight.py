"""``tootcheck preflight e2e`` and ``tootcheck preflight rehearse --from X --to Y``.

``make e2e`` runs ``preflight e2e`` first. Docker is the gate: without the CLI or
without a reachable daemon the command prints one line and exits 2, because
nothing else matters then. Otherwise it prints one line per check (tools, the
host's NFS client, the host ports of the kind port mappings) and exits 2 naming
the failed checks. The judgements are pure functions over what a :class:`Probe`
observed, so every verdict is unit-tested without Docker.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import glob
import platform
import shutil
import socket
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from tootcheck import resources
from tootcheck.errors import BadInput
from tootcheck.kube import kindconfig, tools
from tootcheck.settings import active

KIND_CONFIG = resources.kind_config()
DOCKER_TIMEOUT_S = 20.0
CONNECT_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str

    def line(self) -> str:
        return f"{'ok  ' if self.ok else 'FAIL'} {self.name}: {self.detail}"


@dataclass(frozen=True)
class Run:
    rc: int
    out: str
    err: str

    @property
    def first_error_line(self) -> str:
        lines = [ln.strip() for ln in (self.err or self.out).splitlines() if ln.strip()]
        return lines[0] if lines else f"exit status {self.rc}"


class Probe:
    """What the checks observe about this machine (replaced by a fake in tests)."""

    def which(self, name: str) -> str | None:
        return shutil.which(name)

    def run(self, argv: Sequence[str], timeout: float = DOCKER_TIMEOUT_S) -> Run:
        try:
            done = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout,
                                  check=False)
        except subprocess.TimeoutExpired:
            return Run(124, "", f"{argv[0]} did not answer within {timeout:.0f}s")
        except OSError as exc:
            return Run(127, "", str(exc))
        return Run(done.returncode, done.stdout, done.stderr)

    def read(self, path: str) -> str | None:
        try:
            return Path(path).read_text()
        except OSError:
            return None

    def glob(self, pattern: str) -> list[str]:
        return sorted(glob.glob(pattern))

    def bind_error(self, address: str, port: int) -> int | None:
        """errno of binding ``address:port`` (None when free)."""
        with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
            try:
                sock.bind((address, port))
            except OSError as exc:
                return exc.errno or -1
        return None

    def connect_error(self, host: str, port: int) -> str | None:
        try:
            with socket.create_connection((host, port), timeout=CONNECT_TIMEOUT_S):
                return None
        except OSError as exc:
            return str(exc)

    def system(self) -> str:
        return platform.system().lower()

    def kernel_release(self) -> str:
        return platform.release()

    def found_tools(self, tool: str) -> list[tools.Found]:
        return tools.find(tool)


# ------------------------------------------------------------ judgements


def judge_docker(cli: str | None, info: Run | None) -> Check:
    if cli is None:
        return Check("docker", False, "docker CLI not found on PATH (install Docker Engine, "
                                      "or Docker Desktop)")
    assert info is not None
    if info.rc != 0:
        return Check("docker", False, f"daemon unreachable: {info.first_error_line}")
    version = info.out.strip() or "unknown version"
    return Check("docker", True, f"daemon {version} reachable")


def judge_tool(tool: str, found: Sequence[tools.Found], download_error: str | None) -> Check:
    for f in found:
        if f.ok:
            return Check(tool, True, f.describe())
    seen = "; ".join(f.describe() for f in found) or "not on PATH nor in .tools/bin"
    pinned = tools.SPECS[tool].pinned
    if download_error is None:
        return Check(tool, True, f"{seen}; bootstrappable: `make tools` fetches {pinned}")
    return Check(tool, False, f"{seen}; cannot bootstrap {pinned}: {download_error}")


NFS_FAILURE = ("the host kernel has no NFSv4 client: install the kernel's extra modules "
               "(Ubuntu: linux-modules-extra-$(uname -r)) and run `sudo modprobe nfsv4`")


def judge_nfs_client(system: str, proc_filesystems: str | None, module_files: Sequence[str],
                     builtin: str | None, modinfo: Run | None) -> Check:
    """The kind node mounts the PVs (nfsvers=4.1) with the *host* kernel's NFSv4
    client: nodes share the host kernel. nfsd is not needed (the server is
    userspace NFS-Ganesha). Checked in the order docs/e2e.md "NFS" gives."""
    if system != "linux":
        return Check("nfs-client", True, f"not checked on {system}: Docker Desktop's Linux VM "
                                         "provides the NFS client")
    registered = {line.split()[-1] for line in (proc_filesystems or "").splitlines() if line.strip()}
    if "nfs4" in registered:
        return Check("nfs-client", True, "host kernel has nfs4 (/proc/filesystems)")
    if module_files:
        return Check("nfs-client", True, f"nfsv4 module available ({module_files[0]}); "
                                         "the kernel loads it on the first mount")
    if builtin and any(line.strip().endswith("kernel/fs/nfs/nfsv4.ko") for line in builtin.splitlines()):
        return Check("nfs-client", True, "nfsv4 built into the kernel (modules.builtin)")
    if modinfo is not None and modinfo.rc == 0:
        return Check("nfs-client", True, "nfsv4 module available (modinfo nfsv4)")
    return Check("nfs-client", False, NFS_FAILURE)


def judge_port(mapping: kindconfig.PortMapping, bind_errno: int | None,
               held_by_cluster: str | None) -> Check:
    name = f"port {mapping.host_port}"
    where = f"{mapping.listen_address}:{mapping.host_port} -> node {mapping.container_port}"
    if held_by_cluster:
        return Check(name, True, f"{where} held by existing kind cluster {held_by_cluster} "
                                 "(use --reuse-cluster)")
    if bind_errno is None:
        return Check(name, True, f"{where} free")
    if bind_errno == errno.EACCES:
        return Check(name, True, f"{where}: privileged port, not testable without root "
                                 "(Docker binds it)")
    if bind_errno == errno.EADDRINUSE:
        return Check(name, False, f"{where} already in use: free it or change hostPort "
                                  "in manifests/kind/cluster.yaml")
    return Check(name, False, f"{where}: cannot bind ({errno.errorcode.get(bind_errno, bind_errno)})")


# ---------------------------------------------------------------- checks


def docker_gate(probe: Probe) -> Check:
    cli = probe.which("docker")
    info = probe.run([cli, "info", "--format", "{{.ServerVersion}}"]) if cli else None
    return judge_docker(cli, info)


def tool_checks(probe: Probe) -> list[Check]:
    checks = []
    reachability: dict[str, str | None] = {}
    for tool, spec in tools.SPECS.items():
        found = probe.found_tools(tool)
        error = None
        if not any(f.ok for f in found):
            host = urlsplit(spec.url).hostname or ""
            if host not in reachability:
                problem = probe.connect_error(host, 443)
                reachability[host] = None if problem is None else f"{host} unreachable ({problem})"
            error = reachability[host]
        checks.append(judge_tool(tool, found, error))
    return checks


def nfs_check(probe: Probe) -> Check:
    system = probe.system()
    if system != "linux":
        return judge_nfs_client(system, None, [], None, None)
    release = probe.kernel_release()
    modules = probe.glob(f"/lib/modules/{release}/kernel/fs/nfs/nfsv4.ko*")
    builtin = probe.read(f"/lib/modules/{release}/modules.builtin")
    modinfo = None
    if not modules and probe.which("modinfo"):
        modinfo = probe.run(["modinfo", "nfsv4"], timeout=10)
    return judge_nfs_client(system, probe.read("/proc/filesystems"), modules, builtin, modinfo)


def existing_cluster(probe: Probe, cluster: str) -> str | None:
    docker = probe.which("docker")
    if not docker:
        return None
    out = probe.run([docker, "ps", "--filter", f"label=io.x-k8s.kind.cluster={cluster}",
                     "--format", "{{.Names}}"])
    return cluster if out.rc == 0 and out.out.strip() else None


def port_checks(probe: Probe, config_path: Path, cluster: str) -> list[Check]:
    text = probe.read(str(config_path))
    if text is None:
        return [Check("ports", False, f"{config_path} not found (the kind cluster config)")]
    try:
        config = yaml.safe_load(text) or {}
        kindconfig.validate(config, str(config_path))
    except (yaml.YAMLError, BadInput) as exc:
        return [Check("ports", False, " ".join(str(exc).split()))]
    held = existing_cluster(probe, cluster)
    checks = []
    for mapping in kindconfig.port_mappings(config):
        bind = None if held else probe.bind_error(mapping.listen_address, mapping.host_port)
        checks.append(judge_port(mapping, bind, held))
    return checks or [Check("ports", False, f"{config_path}: no extraPortMappings")]


def e2e_checks(probe: Probe, *, cluster: str, config_path: Path,
               emit: Callable[[str], None] = print) -> list[Check]:
    """Run every check, emitting one line each; raises BadInput on the Docker gate."""
    gate = docker_gate(probe)
    if not gate.ok:
        raise BadInput(f"preflight e2e: {gate.name}: {gate.detail}")
    checks = [gate, *tool_checks(probe), nfs_check(probe), *port_checks(probe, config_path, cluster)]
    for check in checks:
        emit(check.line())
    return checks


def run_e2e(args: argparse.Namespace, probe: Probe | None = None) -> int:
    if getattr(args, "app", None):
        from tootcheck.kube.overlay import check_app_dir

        print(f"app: {check_app_dir(Path(args.app))} (kind overlay composed around it)")
    if getattr(args, "plan", False):  # the time on paper; needs no Docker
        from tootcheck.kube.timeline import lines, timeline

        print("\n".join(lines(timeline())))
        return 0
    cluster = args.cluster_name or active().cluster_name
    checks = e2e_checks(probe or Probe(), cluster=cluster, config_path=Path(args.kind_config))
    failed = [c.name for c in checks if not c.ok]
    if failed:
        raise BadInput(f"preflight e2e failed: {', '.join(failed)}")
    print("preflight e2e: ready")
    return 0


# -------------------------------------------------------------- rehearse

PREFLIGHT_FLAGS = {"from": "--from", "to": "--to", "chart_from": "--chart-from",
                   "chart_to": "--chart-to"}


def rehearsal_plan(source: str, target: str, chart_from: str = "", chart_to: str = "") -> Any:
    """The rehearsal's plan, or BadInput (one line) for what it refuses: equal versions,
    downgrades, releases before the table's first line, malformed input."""
    from tootcheck.rehearsal.plan import make_plan

    return make_plan(source, target, chart_from, chart_to, flags=PREFLIGHT_FLAGS)


def rehearsal_line(source: str, target: str, chart_from: str = "", chart_to: str = "") -> str:
    """The rehearsal's plan in one line (refusals as for :func:`rehearsal_plan`)."""
    return f"rehearsal: {rehearsal_plan(source, target, chart_from, chart_to).describe()}"


def rehearsal_warnings(plan: Any) -> list[str]:
    """The plan's warnings (skip v4.4.0, TO newer than the table, chart majors), one
    line each, so the operator sees them before anything starts."""
    return [f"warning: {w}" for w in plan.warnings]


def run_rehearse(args: argparse.Namespace, probe: Probe | None = None) -> int:
    plan = rehearsal_plan(args.from_version, args.to_version, args.chart_from, args.chart_to)
    if getattr(args, "plan", False):
        from tootcheck.rehearsal.plan import plan_text

        print(plan_text(plan))
        return 0
    print(f"rehearsal: {plan.describe()}")
    for line in rehearsal_warnings(plan):
        print(line)
    return run_e2e(args, probe)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "preflight", help="check that this machine can run the kind suites (make e2e, make rehearse)")
    sub = parser.add_subparsers(dest="preflight", metavar="WHAT")
    sub.required = True

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--cluster-name", default=None,
                       help="kind cluster name (default: settings, tootcheck)")
        p.add_argument("--kind-config", default=str(KIND_CONFIG),
                       help="kind cluster config whose port mappings must be free")

    e2e = sub.add_parser("e2e", help="Docker, kind/kubectl/helm, host NFS client, free ports")
    e2e.add_argument("--app", default="", help="the apps/mastodon directory to bring up (make e2e "
                     "APP=DIR); checked first")
    common(e2e)
    e2e.add_argument("--plan", action="store_true",
                     help="print the bring-up phases, their needs, the critical path and the "
                          "expected time (no checks run)")
    e2e.set_defaults(func=run_e2e)
    rehearse = sub.add_parser("rehearse", help="validate FROM/TO, then the e2e checks")
    rehearse.add_argument("--from", dest="from_version", default="", help="release deployed first")
    rehearse.add_argument("--to", dest="to_version", default="", help="release to upgrade to")
    rehearse.add_argument("--chart-from", default="", help="app-template version deployed first")
    rehearse.add_argument("--chart-to", default="", help="app-template version upgraded to")
    rehearse.add_argument("--plan", action="store_true",
                          help="print the whole plan step by step (cited), with its warnings, "
                               "and exit 0; needs no Docker")
    common(rehearse)
    rehearse.set_defaults(func=run_rehearse)

