"""The kind cluster config and the rendered Ingresses, read as plain data (pure).

From ``manifests/kind/cluster.yaml`` the suite learns which host ports reach the
node's 80/443 (``extraPortMappings``); from the rendered manifests it learns
which host names Traefik serves (Ingress rules and TLS hosts, IngressRoute
``Host(`...`)`` matches). Together they give the :class:`PinMap` that lets the
suite reach ``https://kirchner.social`` at ``127.0.0.1:<mapped port>`` with SNI
and Host kept, without touching /etc/hosts.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tootcheck.clients.pinning import PinMap
from tootcheck.errors import BadInput

KIND_CONFIG_KIND = "Cluster"
KIND_API_PREFIX = "kind.x-k8s.io/"


@dataclass(frozen=True)
class PortMapping:
    container_port: int
    host_port: int
    listen_address: str = "0.0.0.0"
    protocol: str = "TCP"

    @property
    def connect_address(self) -> str:
        """Where a client on the host connects: loopback for wildcard listeners."""
        return "127.0.0.1" if self.listen_address in ("0.0.0.0", "", "::") else self.listen_address


def validate(config: Mapping[str, Any], source: str = "kind config") -> None:
    if config.get("kind") != KIND_CONFIG_KIND or not str(config.get("apiVersion", "")).startswith(
            KIND_API_PREFIX):
        raise BadInput(f"{source}: not a kind cluster config (kind: Cluster, "
                       f"apiVersion: kind.x-k8s.io/v1alpha4)")
    if not config.get("nodes"):
        raise BadInput(f"{source}: no nodes")


def port_mappings(config: Mapping[str, Any]) -> list[PortMapping]:
    """Every ``extraPortMappings`` entry of every node."""
    out = []
    for node in config.get("nodes") or []:
        for m in node.get("extraPortMappings") or []:
            out.append(PortMapping(int(m["containerPort"]), int(m.get("hostPort") or m["containerPort"]),
                                   str(m.get("listenAddress") or "0.0.0.0"),
                                   str(m.get("protocol") or "TCP").upper()))
    return out


def mapping_for(config: Mapping[str, Any], container_port: int, source: str = "kind config") -> PortMapping:
    for m in port_mappings(config):
        if m.container_port == container_port and m.protocol == "TCP":
            return m
    raise BadInput(f"{source}: no extraPortMappings entry for containerPort {container_port}; "
                   "the suite reaches Traefik through it")


def node_image(config: Mapping[str, Any]) -> str | None:
    images = {n.get("image") for n in config.get("nodes") or [] if n.get("image")}
    return images.pop() if len(images) == 1 else None


_HOST_MATCH = re.compile(r"Host(?:SNI)?\(\s*`([^`]+)`")


def served_hosts(docs: Iterable[Mapping[str, Any]]) -> list[str]:
    """Host names the renders route through Traefik, in first-seen order."""
    hosts: list[str] = []

    def add(host: object) -> None:
        if isinstance(host, str) and host and "*" not in host and host.lower() not in hosts:
            hosts.append(host.lower())

    for doc in docs:
        kind = doc.get("kind")
        spec = doc.get("spec") or {}
        if kind == "Ingress":
            for rule in spec.get("rules") or []:
                add(rule.get("host"))
            for tls in spec.get("tls") or []:
                for host in tls.get("hosts") or []:
                    add(host)
        elif kind in ("IngressRoute", "IngressRouteTCP"):
            for route in spec.get("routes") or []:
                for host in _HOST_MATCH.findall(str(route.get("match", ""))):
                    add(host)
    return hosts


def pins(config: Mapping[str, Any], hosts: Sequence[str], *, https_container_port: int = 443,
         http_container_port: int = 80) -> PinMap:
    """Pin every host's 443 and 80 to the host side of the kind port mappings."""
    https = mapping_for(config, https_container_port)
    table: dict[tuple[str, int | None], tuple[str, int]] = {}
    for host in hosts:
        table[(host.lower(), 443)] = (https.connect_address, https.host_port)
    try:
        http = mapping_for(config, http_container_port)
    except BadInput:
        return PinMap(table)  # no plain-HTTP mapping: only https:// is pinned
    for host in hosts:
        table[(host.lower(), 80)] = (http.connect_address, http.host_port)
    return PinMap(table)
