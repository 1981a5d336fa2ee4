"""The kind cluster config: strictly valid, pinned to versions.KUBERNETES by tag and digest,
one node labelled for Traefik, ports 80/443 mapped to the host (the Python side substitutes
the host ports), and readable by the bring-up's own parser (tootcheck.kube.kindconfig)."""

from __future__ import annotations

import copy
import json
import re

import jsonschema
import pytest
import yaml

from tests.e2e_manifests.manifests import KIND_CONFIG, OWN_SCHEMAS, find, load_docs, rendered
from tootcheck import versions
from tootcheck.kube import kindconfig

SCHEMA = json.loads((OWN_SCHEMAS / "kind-cluster-v1alpha4.json").read_text())
NODE_IMAGE = re.compile(r"^kindest/node:v(?P<version>\d+\.\d+\.\d+)@sha256:[0-9a-f]{64}$")


def config() -> dict:
    (doc,) = load_docs(KIND_CONFIG)
    return doc


def test_config_is_strictly_valid():
    errors = [e.message for e in jsonschema.Draft202012Validator(SCHEMA).iter_errors(config())]
    assert errors == []


def test_schema_rejects_an_unknown_field():
    bad = copy.deepcopy(config())
    bad["nodes"][0]["extraPortMapping"] = []
    assert list(jsonschema.Draft202012Validator(SCHEMA).iter_errors(bad))


def test_node_image_is_pinned_to_the_kubernetes_version_by_tag_and_digest():
    (node,) = config()["nodes"]
    m = NODE_IMAGE.match(node["image"])
    assert m, f"node image {node['image']!r} is not kindest/node:vX.Y.Z@sha256:<digest>"
    assert m["version"] == versions.KUBERNETES
    assert node["image"] == versions.KIND_NODE_IMAGE
    # kind v0.30.0's own default image is exactly this one (pkg/apis/config/defaults/image.go),
    # so the pinned kind binary and node image are a supported pair.
    assert versions.KIND == "v0.30.0"


def test_one_control_plane_node_labelled_ingress_ready():
    (node,) = config()["nodes"]
    assert node["role"] == "control-plane"
    patches = [yaml.safe_load(p) for p in node["kubeadmConfigPatches"]]
    init = next(p for p in patches if p["kind"] == "InitConfiguration")
    labels = init["nodeRegistration"]["kubeletExtraArgs"]["node-labels"]
    assert "ingress-ready=true" in labels.split(",")


def test_traefik_runs_on_the_labelled_node():
    traefik = find(rendered("infra-traefik"), "Deployment", "traefik", "traefik")
    spec = traefik["spec"]["template"]["spec"]
    assert spec["nodeSelector"] == {"ingress-ready": "true"}
    assert any(t.get("key") == "node-role.kubernetes.io/control-plane" for t in spec["tolerations"])


def test_ports_80_and_443_reach_traefiks_host_ports():
    cfg = config()
    kindconfig.validate(cfg, str(KIND_CONFIG))
    traefik = find(rendered("infra-traefik"), "Deployment", "traefik", "traefik")
    host_ports = {p["hostPort"] for c in traefik["spec"]["template"]["spec"]["containers"]
                  for p in c["ports"] if "hostPort" in p}
    for port in (80, 443):
        mapping = kindconfig.mapping_for(cfg, port)
        assert mapping.container_port in host_ports
        assert mapping.host_port == port  # defaults; the bring-up substitutes settings' ports
        assert mapping.listen_address == "127.0.0.1"


@pytest.mark.parametrize(("https", "http"), [(8443, 8080), (443, 80)])
def test_substituting_host_ports_keeps_the_config_valid(https, http):
    """What fixtures/cluster.py does with settings.https_port / http_port."""
    cfg = copy.deepcopy(config())
    for m in cfg["nodes"][0]["extraPortMappings"]:
        m["hostPort"] = {443: https, 80: http}[m["containerPort"]]
    jsonschema.Draft202012Validator(SCHEMA).validate(cfg)
    assert kindconfig.mapping_for(cfg, 443).host_port == https
    assert kindconfig.mapping_for(cfg, 80).host_port == http
