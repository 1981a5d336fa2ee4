"""kind itself: pytest-kind's cluster with bounded calls, and the run's kind config."""

from __future__ import annotations

import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pytest_kind import KindCluster

from tootcheck.errors import BadInput, ToolMissing

KIND_TIMEOUT_S = 900.0


class SuiteKindCluster(KindCluster):
    """pytest-kind's KindCluster with bounded subprocesses and one-line errors.

    It never downloads kind or kubectl (scripts/bootstrap-tools does, verified),
    creates the cluster only through :meth:`create`, and can export the
    kubeconfig of an existing cluster for ``--reuse-cluster``.
    """

    def __init__(self, name: str, kubeconfig: Path, kind_path: Path, kubectl_path: Path) -> None:
        super().__init__(name, kubeconfig=kubeconfig, kind_path=kind_path, kubectl_path=kubectl_path)

    def ensure_kind(self) -> None:
        if not Path(self.kind_path).exists():
            raise ToolMissing("kind", f"{self.kind_path} does not exist", "run `make tools`")

    def _kind(self, *args: str, timeout: float = KIND_TIMEOUT_S) -> str:
        self.ensure_kind()
        cmd = [str(self.kind_path), *args]
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
        except subprocess.TimeoutExpired:
            raise BadInput(f"`kind {args[0]} {args[1] if len(args) > 1 else ''}` took longer than "
                           f"{timeout:.0f}s") from None
        if done.returncode != 0:
            lines = [ln.strip() for ln in (done.stderr or done.stdout).splitlines() if ln.strip()]
            raise BadInput(f"`kind {' '.join(args[:2])}` failed: {lines[-1] if lines else done.returncode}")
        return done.stdout

    def clusters(self) -> list[str]:
        return [ln.strip() for ln in self._kind("get", "clusters", timeout=60).splitlines() if ln.strip()]

    def exists(self) -> bool:
        return self.name in self.clusters()

    def create(self, config_file: str | Path | None = None) -> None:
        self.kubeconfig_path.parent.mkdir(parents=True, exist_ok=True)
        args = ["create", "cluster", f"--name={self.name}", f"--kubeconfig={self.kubeconfig_path}"]
        if config_file:
            args += ["--config", str(config_file)]
        self._kind(*args)

    def export_kubeconfig(self) -> None:
        self.kubeconfig_path.parent.mkdir(parents=True, exist_ok=True)
        self._kind("export", "kubeconfig", f"--name={self.name}", f"--kubeconfig={self.kubeconfig_path}",
                   timeout=60)

    def delete(self) -> None:
        self._kind("delete", "cluster", f"--name={self.name}", f"--kubeconfig={self.kubeconfig_path}",
                   timeout=300)


def run_kind_config(config: Mapping[str, Any], https_port: int, http_port: int) -> dict[str, Any]:
    """The kind config with the host ports of the 443/80 mappings substituted (pure);
    manifests/kind/cluster.yaml names exactly these two substitution points."""
    out: dict[str, Any] = yaml.safe_load(yaml.safe_dump(dict(config)))
    for node in out.get("nodes") or []:
        for mapping in node.get("extraPortMappings") or []:
            if mapping.get("containerPort") == 443:
                mapping["hostPort"] = https_port
            elif mapping.get("containerPort") == 80:
                mapping["hostPort"] = http_port
    return out

