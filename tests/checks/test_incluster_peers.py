"""The in-cluster peers' manifests: strict schemas, restricted pods, and the suite's names.

manifests/infra/mailpit and manifests/infra/fediverse-peer are rendered with
``kubectl kustomize`` (as the bring-up applies them) and every object is validated
against the strict schemas for the pinned Kubernetes version. The names, ports,
addresses and images the suite and the kind overlay rely on are read from
``tootcheck.peers`` and ``tootcheck.versions`` and compared with the manifests.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tests import REPO_ROOT, load_all
from tootcheck import peers, versions
from tootcheck.errors import BadInput, ToolMissing
from tootcheck.policy.schema import validate_object
from tootcheck.rendering import render
from tootcheck.testing import peer_missing

MANIFESTS = REPO_ROOT / "manifests"
MAILPIT_DIR = MANIFESTS / "infra" / "mailpit"
PEER_DIR = MANIFESTS / "infra" / "fediverse-peer"
ENV_PATCH = MANIFESTS / "overlays" / "kind" / "patches" / "mail-federation-env.yaml"


def rendered(directory: Path) -> list[dict[str, Any]]:
    try:
        text = render(directory, timeout=60)
    except ToolMissing as exc:
        peer_missing("kubectl", str(exc))
    except BadInput as exc:
        pytest.fail(str(exc), pytrace=False)
    return [d for d in load_all(text) if d]


@pytest.fixture(scope="module")
def mailpit() -> dict[tuple[str, str], dict[str, Any]]:
    return {(d["kind"], d["metadata"]["name"]): d for d in rendered(MAILPIT_DIR)}


@pytest.fixture(scope="module")
def peer() -> dict[tuple[str, str], dict[str, Any]]:
    return {(d["kind"], d["metadata"]["name"].rsplit("-", 1)[0] if d["kind"] == "ConfigMap"
             else d["metadata"]["name"]): d for d in rendered(PEER_DIR)}


def test_the_package_runs_the_program_the_configmap_mounts():
    from tootcheck.peers import fediverse_peer

    assert Path(fediverse_peer.__file__).resolve() == (PEER_DIR / "fediverse_peer.py").resolve()
    assert (PEER_DIR / "fediverse_peer.py").resolve() == peers.PEER_PROGRAM.resolve()


@pytest.mark.parametrize("which", ["mailpit", "peer"])
def test_every_object_validates_strictly(which, request):
    objects = request.getfixturevalue(which)
    assert objects
    for (kind, name), obj in objects.items():
        problems = validate_object(obj, versions.KUBERNETES)
        assert not problems, f"{kind}/{name}: " + "; ".join(f"{p.path}: {p.message}" for p in problems)


@pytest.mark.parametrize("which", ["mailpit", "peer"])
def test_pods_meet_the_restricted_profile(which, request):
    objects = request.getfixturevalue(which)
    namespaces = [o for (kind, _), o in objects.items() if kind == "Namespace"]
    enforce = [n["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] for n in namespaces]
    assert enforce == ["restricted"]
    deployments = [o for (kind, _), o in objects.items() if kind == "Deployment"]
    assert len(deployments) == 1
    pod = deployments[0]["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    for container in pod["containers"]:
        context = container["securityContext"]
        assert context["allowPrivilegeEscalation"] is False
        assert context["capabilities"] == {"drop": ["ALL"]}
        assert context["readOnlyRootFilesystem"] is True
        assert container["resources"]["requests"]["cpu"] and container["resources"]["limits"]["memory"]
        assert container["readinessProbe"] and container["livenessProbe"]
        assert ":" in container["image"] and not container["image"].endswith(":latest")


def test_mailpit_matches_the_suite(mailpit):
    service = mailpit[("Service", "mailpit")]
    assert f"{service['metadata']['name']}.{service['metadata']['namespace']}.svc.cluster.local" \
        == peers.MAILPIT_HOST
    assert {p["name"]: p["port"] for p in service["spec"]["ports"]} == {
        "smtp": peers.MAILPIT_SMTP_PORT, "http": peers.MAILPIT_API_PORT}
    deployment = mailpit[("Deployment", "mailpit")]
    assert deployment["metadata"]["namespace"] == peers.MAILPIT_NAMESPACE
    key, _, value = peers.MAILPIT_SELECTOR.partition("=")
    assert deployment["spec"]["template"]["metadata"]["labels"][key] == value
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["image"] == versions.MAILPIT_IMAGE
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["MP_SMTP_AUTH_ACCEPT_ANY"] == env["MP_SMTP_AUTH_ALLOW_INSECURE"] == "true"


def test_fediverse_peer_matches_the_suite(peer):
    service = peer[("Service", "fedi")]
    assert f"{service['metadata']['name']}.{service['metadata']['namespace']}.svc.cluster.local" \
        == peers.PEER_HOST
    assert service["spec"]["clusterIP"] == peers.PEER_CLUSTER_IP
    assert service["spec"]["ports"] == [{"name": "https", "port": 443, "targetPort": "https",
                                         "protocol": "TCP"}]
    deployment = peer[("Deployment", "fediverse-peer")]
    assert deployment["metadata"]["namespace"] == peers.PEER_NAMESPACE
    key, _, value = peers.PEER_SELECTOR.partition("=")
    assert deployment["spec"]["template"]["metadata"]["labels"][key] == value
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["image"] == versions.PEER_PYTHON_IMAGE
    assert {p["name"]: p["containerPort"] for p in container["ports"]} == {
        "https": peers.PEER_PUBLIC_PORT, "admin": peers.PEER_ADMIN_PORT}
    args = container["command"]
    assert f"--public-url={peers.PEER_URL}" in args
    assert f"--port={peers.PEER_PUBLIC_PORT}" in args and f"--admin-port={peers.PEER_ADMIN_PORT}" in args
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    code = peer[("ConfigMap", "fediverse-peer-code")]
    assert volumes["code"]["configMap"]["name"] == code["metadata"]["name"]  # hash suffix followed
    assert code["data"]["fediverse_peer.py"] == (PEER_DIR / "fediverse_peer.py").read_text()
    certificate = peer[("Certificate", "fedi-tls")]
    assert peers.PEER_HOST in certificate["spec"]["dnsNames"]
    assert certificate["spec"]["issuerRef"]["name"] == "kirchner-social-issuer"
    assert volumes["tls"]["secret"]["secretName"] == certificate["spec"]["secretName"]


def test_kind_env_patch_points_mastodon_at_the_peers():
    patch = yaml.safe_load(ENV_PATCH.read_text())
    assert (patch["kind"], patch["metadata"]["name"]) == ("ConfigMap", "mastodon-env")
    data = patch["data"]
    assert data["SMTP_SERVER"] == peers.MAILPIT_HOST
    assert data["SMTP_PORT"] == str(peers.MAILPIT_SMTP_PORT)
    assert data["SMTP_ENABLE_STARTTLS"] == "never"
    assert data["ALLOWED_PRIVATE_ADDRESSES"] == peers.PEER_CLUSTER_IP
    assert "SMTP_FROM_ADDRESS" not in data  # the check verifies the production sender
    assert validate_object(patch, versions.KUBERNETES) == []


def test_reference_deployment_allows_no_private_addresses():
    snapshot = MANIFESTS / "rendered" / "mastodon.yaml"
    configmaps = [d for d in load_all(snapshot.read_text())
                  if d and d.get("kind") == "ConfigMap" and d["metadata"]["name"] == "mastodon-env"]
    assert len(configmaps) == 1
    assert "ALLOWED_PRIVATE_ADDRESSES" not in configmaps[0]["data"]
    assert configmaps[0]["data"]["SMTP_SERVER"] != peers.MAILPIT_HOST
