"""The in-cluster NFS: a userspace Ganesha server that keeps its data and client state on a
node hostPath across restarts, recovers clients quickly, writes owners numerically and hands
out directories writable by uid 991 and 999 (docs/e2e.md "NFS")."""

from __future__ import annotations

import re

from tests.e2e_manifests.manifests import configmap_value, find, rendered

# pkg/volume/provision.go getServer(): exactly these port/protocol pairs, or no PV is made.
UPSTREAM_PORTS = {(p, proto) for p in (2049, 32803, 20048, 875, 111, 662) for proto in ("TCP", "UDP")}


def objects() -> list[dict]:
    return rendered("infra-nfs")


def server() -> dict:
    return find(objects(), "Deployment", "nfs-server", "nfs")


def pod() -> dict:
    return server()["spec"]["template"]["spec"]


def container(name: str) -> dict:
    spec = pod()
    return next(c for c in spec.get("initContainers", []) + spec["containers"] if c["name"] == name)


def ganesha_option(name: str) -> str:
    m = re.search(rf"^\s*{name}\s*=\s*([^;]+);", configmap_value(objects(), "nfs-ganesha-seed",
                                                                  "vfs.conf"), re.MULTILINE)
    assert m, f"{name} is not set in vfs.conf"
    return m.group(1).strip()


def arg(name: str) -> str:
    prefix = f"-{name}="
    return next(a[len(prefix):] for a in container("nfs-server")["args"] if a.startswith(prefix))


def test_service_has_exactly_the_ports_the_provisioner_validates():
    service = find(objects(), "Service", "nfs-server", "nfs")
    assert {(p["port"], p["protocol"]) for p in service["spec"]["ports"]} == UPSTREAM_PORTS
    assert {"name": "SERVICE_NAME", "value": "nfs-server"} in container("nfs-server")["env"]
    assert service["spec"]["selector"] == server()["spec"]["selector"]["matchLabels"]


def test_data_survives_a_restart_of_the_server():
    assert server()["spec"]["strategy"] == {"type": "Recreate"}
    (export,) = [v for v in pod()["volumes"] if v["name"] == "export"]
    # Under /var: kind mounts the node's /var as a Docker volume (host filesystem, file handles).
    assert export["hostPath"]["path"].startswith("/var/")
    assert {"name": "export", "mountPath": "/export"} in container("nfs-server")["volumeMounts"]
    assert pod()["nodeSelector"] == {"ingress-ready": "true"}


def test_seed_config_is_copied_only_once():
    command = " ".join(container("seed-config")["command"])
    assert "test -e /export/vfs.conf ||" in command


def test_grace_period_is_short_and_at_least_the_lease():
    grace, lease = int(arg("grace-period")), int(ganesha_option("Lease_Lifetime"))
    assert 0 < lease <= grace <= 30, "clients must recover within seconds"
    assert grace <= 180  # the provisioner's limit (cmd/nfs-provisioner/main.go)


def test_owners_go_over_the_wire_numerically():
    assert ganesha_option("Only_Numeric_Owners") == "true"


def test_provisioned_directories_are_writable_by_991_and_999():
    """gid parameter unset = "none": createDirectory() makes 0777|setgid directories."""
    (sc,) = [o for o in objects() if o["kind"] == "StorageClass"]
    assert not sc.get("parameters"), "a gid parameter would make directories 0071"
    assert sc["reclaimPolicy"] == "Retain"
    assert "nfsvers=4.1" in sc["mountOptions"] and "hard" in sc["mountOptions"]


def test_namespace_is_privileged_and_holds_only_the_server():
    ns = find(objects(), "Namespace", "nfs")
    assert ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "privileged"
    workloads = [o for o in objects() if o["kind"] in ("Deployment", "StatefulSet", "DaemonSet")]
    assert workloads == [server()]
