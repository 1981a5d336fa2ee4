"""Name pinning built from the kind config and the rendered Ingresses."""

from __future__ import annotations

import ssl
from collections.abc import Iterator

import pytest
import trustme
import yaml
from pytest_httpserver import HTTPServer

from tootcheck.errors import BadInput
from tootcheck.kube import kindconfig
from tootcheck.target import Target

KIND_CONFIG = yaml.safe_load("""
kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
nodes:
  - role: control-plane
    image: kindest/node:v1.34.0
    extraPortMappings:
      - containerPort: 443
        hostPort: 8443
        listenAddress: 127.0.0.1
        protocol: TCP
      - containerPort: 80
        hostPort: 8080
""")

RENDERED = [
    {"kind": "Ingress", "spec": {"rules": [{"host": "kirchner.social"}],
                                 "tls": [{"hosts": ["kirchner.social"]}]}},
    {"kind": "Ingress", "spec": {"rules": [{"host": "auth.kirchner.social"}, {"host": "*.wild.test"}]}},
    {"kind": "IngressRoute", "spec": {"routes": [
        {"match": "Host(`peer.test`) && PathPrefix(`/`)"}, {"match": "HostSNI(`mail.test`)"}]}},
    {"kind": "Service", "spec": {}},
]


def test_port_mappings():
    https = kindconfig.mapping_for(KIND_CONFIG, 443)
    assert (https.host_port, https.connect_address) == (8443, "127.0.0.1")
    http = kindconfig.mapping_for(KIND_CONFIG, 80)
    assert (http.host_port, http.listen_address, http.connect_address) == (8080, "0.0.0.0", "127.0.0.1")
    assert kindconfig.node_image(KIND_CONFIG) == "kindest/node:v1.34.0"


def test_missing_https_mapping_is_one_line():
    config = {"kind": "Cluster", "apiVersion": "kind.x-k8s.io/v1alpha4", "nodes": [{"role": "control-plane"}]}
    with pytest.raises(BadInput, match="no extraPortMappings entry for containerPort 443"):
        kindconfig.mapping_for(config, 443)


def test_validate():
    kindconfig.validate(KIND_CONFIG)
    with pytest.raises(BadInput, match="not a kind cluster config"):
        kindconfig.validate({"kind": "Deployment"})


def test_served_hosts_from_ingresses_and_ingressroutes():
    assert kindconfig.served_hosts(RENDERED) == [
        "kirchner.social", "auth.kirchner.social", "peer.test", "mail.test"]


def test_pins_map_every_host_to_the_mapped_ports():
    pins = kindconfig.pins(KIND_CONFIG, kindconfig.served_hosts(RENDERED))
    assert pins.resolve("kirchner.social", 443) == ("127.0.0.1", 8443)
    assert pins.resolve("auth.kirchner.social", 80) == ("127.0.0.1", 8080)
    assert pins.resolve("peer.test", 443) == ("127.0.0.1", 8443)
    assert pins.resolve("example.org", 443) == ("example.org", 443)
    ws = pins.websocket_kwargs("wss://kirchner.social/api/v1/streaming")
    assert ws == {"host": "127.0.0.1", "port": 8443, "server_hostname": "kirchner.social"}


def test_pins_without_http_mapping_pin_https_only():
    config = {"kind": "Cluster", "apiVersion": "kind.x-k8s.io/v1alpha4",
              "nodes": [{"extraPortMappings": [{"containerPort": 443, "hostPort": 443}]}]}
    pins = kindconfig.pins(config, ["kirchner.social"])
    assert pins.resolve("kirchner.social", 443) == ("127.0.0.1", 443)
    assert pins.resolve("kirchner.social", 80) == ("kirchner.social", 80)


@pytest.fixture
def tls_server() -> Iterator[tuple[HTTPServer, trustme.CA, list[str]]]:
    """A TLS server on 127.0.0.1 presenting a kirchner.social cert from a test CA,
    recording the SNI names it was asked for."""
    ca = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("kirchner.social", "auth.kirchner.social").configure_cert(context)
    seen: list[str] = []
    context.sni_callback = lambda sock, name, ctx: seen.append(name)  # type: ignore[assignment]
    server = HTTPServer(host="127.0.0.1", port=0, ssl_context=context)
    server.start()
    try:
        yield server, ca, seen
    finally:
        server.stop()


def test_pinned_session_reaches_the_real_host_name_through_the_mapping(tls_server, tmp_path):
    server, ca, seen = tls_server
    config = {"kind": "Cluster", "apiVersion": "kind.x-k8s.io/v1alpha4", "nodes": [
        {"extraPortMappings": [{"containerPort": 443, "hostPort": server.port,
                                "listenAddress": "127.0.0.1"}]}]}
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    server.expect_request("/health", headers={"Host": "kirchner.social"}).respond_with_data("OK")
    target = Target(name="kind://t", ca_file=ca_file,
                    pins=kindconfig.pins(config, ["kirchner.social", "auth.kirchner.social"]))
    response = target.http().get("https://kirchner.social/health", timeout=10)
    assert response.status_code == 200 and response.text == "OK"
    assert seen == ["kirchner.social"]  # SNI carried the real name


def test_pinned_session_trusts_only_the_test_ca(tls_server, tmp_path):
    server, _ca, _seen = tls_server
    other = tmp_path / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(other))
    config = {"kind": "Cluster", "apiVersion": "kind.x-k8s.io/v1alpha4", "nodes": [
        {"extraPortMappings": [{"containerPort": 443, "hostPort": server.port}]}]}
    target = Target(name="kind://t", ca_file=other, pins=kindconfig.pins(config, ["kirchner.social"]))
    import requests

    with pytest.raises(requests.exceptions.SSLError):
        target.http().get("https://kirchner.social/health", timeout=10)
