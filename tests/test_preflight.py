"""``tootcheck preflight``: Docker gate, tools, NFS client, ports, rehearsal versions."""

from __future__ import annotations

import argparse
import errno
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tootcheck.commands import preflight as pf
from tootcheck.errors import BadInput
from tootcheck.kube import kindconfig, tools

DAEMON_DOWN = ("Cannot connect to the Docker daemon at unix:///var/run/docker.sock. "
               "Is the docker daemon running?")
KIND_CONFIG = """
kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
nodes:
  - role: control-plane
    extraPortMappings:
      - {containerPort: 443, hostPort: 8443, listenAddress: 127.0.0.1}
      - {containerPort: 80, hostPort: 8080, listenAddress: 127.0.0.1}
"""


# --------------------------------------------------------------- judgements


def test_docker_cli_missing():
    check = pf.judge_docker(None, None)
    assert not check.ok and check.detail.startswith("docker CLI not found")


def test_docker_daemon_unreachable_names_the_daemon_error():
    check = pf.judge_docker("/usr/bin/docker", pf.Run(1, "", DAEMON_DOWN + "\n"))
    assert not check.ok
    assert check.line() == f"FAIL docker: daemon unreachable: {DAEMON_DOWN}"


def test_docker_ok():
    assert pf.judge_docker("/usr/bin/docker", pf.Run(0, "28.2.2\n", "")).line() == (
        "ok   docker: daemon 28.2.2 reachable")


def found(tool, version, path="/usr/bin"):
    v = tools.parse_version(version)
    return tools.Found(tool, Path(path) / tool, v, tools.compatibility(tool, v))


def test_tool_compatible_on_path():
    check = pf.judge_tool("helm", [found("helm", "v3.19.0")], None)
    assert check.ok and check.detail == "helm v3.19.0 at /usr/bin/helm"


def test_tool_missing_but_bootstrappable():
    check = pf.judge_tool("kind", [], None)
    assert check.ok and "`make tools` fetches v0.30.0" in check.detail


def test_helm_v4_without_network_fails():
    check = pf.judge_tool("helm", [found("helm", "v4.0.1")], "get.helm.sh unreachable (timed out)")
    assert not check.ok
    assert "needs helm v3" in check.detail and "cannot bootstrap v3.19.0" in check.detail


@pytest.mark.parametrize(("proc", "modules", "builtin", "modinfo", "ok", "fragment"), [
    ("nodev\tsysfs\nnodev\tnfs\nnodev\tnfs4\n", [], None, None, True, "nfs4 (/proc/filesystems)"),
    ("nodev\tsysfs\nnodev\tnfs\n", ["/lib/modules/6.8/kernel/fs/nfs/nfsv4.ko.zst"], None, None, True,
     "nfsv4.ko.zst"),
    ("nodev\tsysfs\n", [], "kernel/fs/ext4/ext4.ko\nkernel/fs/nfs/nfsv4.ko\n", None, True, "built into"),
    ("nodev\tsysfs\n", [], None, pf.Run(0, "filename: nfsv4.ko", ""), True, "modinfo nfsv4"),
    ("nodev\tsysfs\nnodev\tnfs\n", [], "kernel/fs/nfs/nfs.ko\n",
     pf.Run(1, "", "modinfo: ERROR: Module nfsv4 not found."), False, "no NFSv4 client"),
    (None, [], None, None, False, "sudo modprobe nfsv4"),
])
def test_nfs_client(proc, modules, builtin, modinfo, ok, fragment):
    check = pf.judge_nfs_client("linux", proc, modules, builtin, modinfo)
    assert check.ok is ok and fragment in check.detail


def test_nfs_client_not_checked_on_macos():
    assert pf.judge_nfs_client("darwin", None, [], None, None).ok


@pytest.mark.parametrize(("bind", "held", "ok", "fragment"), [
    (None, None, True, "free"),
    (errno.EADDRINUSE, None, False, "already in use"),
    (errno.EACCES, None, True, "privileged"),
    (errno.EADDRNOTAVAIL, None, False, "cannot bind"),
    (errno.EADDRINUSE, "tootcheck", True, "held by existing kind cluster tootcheck"),
])
def test_ports(bind, held, ok, fragment):
    mapping = kindconfig.PortMapping(443, 8443, "127.0.0.1")
    check = pf.judge_port(mapping, bind, held)
    assert check.ok is ok and fragment in check.detail
    assert check.name == "port 8443"


# ------------------------------------------------------------ whole command


class FakeProbe(pf.Probe):
    def __init__(self, tmp_path: Path, *, docker: bool = True, daemon: bool = True,
                 busy: set[int] = frozenset(), cluster: str = "", online: bool = True,
                 kind_found: list[tools.Found] | None = None) -> None:
        self.tmp = tmp_path
        self.docker, self.daemon, self.busy, self.cluster, self.online = docker, daemon, busy, cluster, online
        self.kind_found = kind_found

    def which(self, name):
        return f"/usr/bin/{name}" if (name != "docker" or self.docker) else None

    def run(self, argv, timeout=20.0):
        if argv[1:2] == ["info"]:
            return pf.Run(0, "28.2.2\n", "") if self.daemon else pf.Run(1, "", DAEMON_DOWN)
        if argv[1:2] == ["ps"]:
            return pf.Run(0, "tootcheck-control-plane\n" if self.cluster else "", "")
        return pf.Run(1, "", "")

    def read(self, path):
        if path == "/proc/filesystems":
            return "nodev\tnfs4\n"
        return Path(path).read_text() if Path(path).exists() else None

    def glob(self, pattern):
        return []

    def bind_error(self, address, port):
        return errno.EADDRINUSE if port in self.busy else None

    def connect_error(self, host, port):
        return None if self.online else "[Errno -2] Name or service not known"

    def system(self):
        return "linux"

    def found_tools(self, tool):
        if tool == "kind" and self.kind_found is not None:
            return self.kind_found
        return [found(tool, tools.SPECS[tool].pinned)]


def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "cluster.yaml"
    path.write_text(KIND_CONFIG)
    return path


def args(tmp_path, **extra):
    return argparse.Namespace(cluster_name="tootcheck", kind_config=str(config_file(tmp_path)), **extra)


def test_all_checks_pass_one_line_each(tmp_path, capsys):
    assert pf.run_e2e(args(tmp_path), FakeProbe(tmp_path)) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [ln.split(":")[0] for ln in lines] == [
        "ok   docker", "ok   kind", "ok   kubectl", "ok   helm", "ok   nfs-client",
        "ok   port 8443", "ok   port 8080", "preflight e2e"]


def test_daemon_down_is_one_line_and_nothing_else(tmp_path, capsys):
    with pytest.raises(BadInput) as info:
        pf.run_e2e(args(tmp_path), FakeProbe(tmp_path, daemon=False))
    assert str(info.value) == f"preflight e2e: docker: daemon unreachable: {DAEMON_DOWN}"
    assert capsys.readouterr().out == ""


def test_busy_port_and_unbootstrappable_kind_fail_by_name(tmp_path, capsys):
    probe = FakeProbe(tmp_path, busy={8443}, online=False, kind_found=[])
    with pytest.raises(BadInput, match=r"preflight e2e failed: kind, port 8443$"):
        pf.run_e2e(args(tmp_path), probe)
    out = capsys.readouterr().out
    assert "FAIL kind: not on PATH nor in .tools/bin; cannot bootstrap v0.30.0: github.com unreachable" in out


def test_existing_cluster_holds_its_ports(tmp_path, capsys):
    assert pf.run_e2e(args(tmp_path), FakeProbe(tmp_path, busy={8443, 8080}, cluster="tootcheck")) == 0
    assert "held by existing kind cluster tootcheck" in capsys.readouterr().out


def test_missing_kind_config_fails(tmp_path, capsys):
    a = argparse.Namespace(cluster_name="t", kind_config=str(tmp_path / "nope.yaml"))
    with pytest.raises(BadInput, match="failed: ports"):
        pf.run_e2e(a, FakeProbe(tmp_path))


def _cli(env_path: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOOTCHECK_")}
    env["PATH"] = env_path
    return subprocess.run([sys.executable, "-m", "tootcheck.cli", "preflight", "e2e"],
                          capture_output=True, text=True, timeout=60, env=env)


def test_cli_with_docker_cli_but_no_engine_exits_2_with_one_line(tmp_path):
    """The exact situation of a machine with the docker CLI and no engine."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "docker"
    fake.write_text(f"#!/bin/sh\necho '{DAEMON_DOWN}' >&2\nexit 1\n")
    fake.chmod(0o755)
    done = _cli(f"{bin_dir}:/usr/bin:/bin")
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.strip().splitlines() == [
        f"tootcheck: error: preflight e2e: docker: daemon unreachable: {DAEMON_DOWN}"]


def test_cli_without_docker_cli(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    done = _cli(str(empty))
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "tootcheck: error: preflight e2e: docker: docker CLI not found on PATH "
        "(install Docker Engine, or Docker Desktop)"]


def test_this_machine_if_it_has_the_cli_but_no_engine():
    """On this build machine: the real docker CLI, no engine."""
    docker = shutil.which("docker")
    if docker is None:
        pytest.skip("no docker CLI on this machine; covered by the fake-CLI test")
    info = subprocess.run([docker, "info"], capture_output=True, text=True, timeout=30)
    if info.returncode == 0:
        pytest.skip("a Docker engine answers here; the no-engine case is covered by the fake-CLI test")
    done = _cli(os.environ.get("PATH", ""))
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "docker: daemon unreachable:" in lines[0]


# ---------------------------------------------------------------- rehearse


@pytest.mark.parametrize(("source", "target", "why"), [
    ("", "v4.7.2", "--from"),
    ("latest", "v4.7.2", "--from"),
    ("v4.7.2", "4.7.x", "--to"),
    ("4.7.2", "v4.7.2", "v4.7.2"),      # the same release after normalisation
    ("v4.7.2", "v4.6.3", "one-way"),     # no downgrades: migrations are one-way
    ("v4.1.9", "v4.7.2", "v4.2.0"),      # before zero-downtime migrations (4.2 schema)
])
def test_rehearsal_refusals_are_one_line(source, target, why):
    with pytest.raises(BadInput) as info:
        pf.rehearsal_line(source, target)
    assert why in str(info.value) and "\n" not in str(info.value)


def test_rehearsal_line_names_the_plan():
    line = pf.rehearsal_line("v4.6.3", "v4.7.2")
    assert line.startswith("rehearsal: v4.6.3 -> v4.7.2")


def test_rehearse_refuses_before_touching_docker(tmp_path, capsys):
    a = args(tmp_path, from_version="v4.7.2", to_version="v4.7.2", chart_from="", chart_to="")
    with pytest.raises(BadInput, match=r"v4\.7\.2"):
        pf.run_rehearse(a, FakeProbe(tmp_path, daemon=False))
