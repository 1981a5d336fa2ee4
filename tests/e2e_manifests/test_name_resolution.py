"""In-cluster name resolution: the CoreDNS Corefile is kubeadm's default plus one rewrite per
host Traefik serves, each pointing at the rendered Traefik Service and rewriting the answer
back to the asked name."""

from __future__ import annotations

import re

import pytest

from tests.e2e_manifests.manifests import configmap_value, find, of_kind, reference, rendered
from tootcheck.kube import kindconfig

# kubeadm's CoreDNSConfigMap for DNSDomain cluster.local (kubernetes/kubernetes
# cmd/kubeadm/app/phases/addons/dns/manifests.go, with the cache block of #128359).
KUBEADM_COREFILE = """\
.:53 {
    errors
    health {
       lameduck 5s
    }
    ready
    kubernetes cluster.local in-addr.arpa ip6.arpa {
       pods insecure
       fallthrough in-addr.arpa ip6.arpa
       ttl 30
    }
    prometheus :9153
    forward . /etc/resolv.conf {
       max_concurrent 1000
    }
    cache 30 {
       disable success cluster.local
       disable denial cluster.local
    }
    loop
    reload
    loadbalance
}
"""
REWRITE_BLOCK = re.compile(
    r"^    rewrite stop \{\n"
    r"        name regex (?P<name>\S+) (?P<target>\S+)\n"
    r"        answer name (?P<answer>\S+) (?P<back>\S+)\n"
    r"    \}\n", re.MULTILINE)


def corefile() -> str:
    return configmap_value(rendered("infra-coredns"), "coredns", "Corefile")


def rewrites() -> list[re.Match]:
    return list(REWRITE_BLOCK.finditer(corefile()))


def traefik_fqdn() -> str:
    service = find(rendered("infra-traefik"), "Service", "traefik", "traefik")
    return f"{service['metadata']['name']}.{service['metadata']['namespace']}.svc.cluster.local."


def served_hosts() -> list[str]:
    return kindconfig.served_hosts(of_kind(reference(), "Ingress")
                                   + of_kind(rendered("infra-authentik"), "Ingress"))


def test_corefile_is_kubeadms_plus_rewrites():
    cm = find(rendered("infra-coredns"), "ConfigMap", "coredns", "kube-system")
    assert set(cm["data"]) == {"Corefile"}
    assert REWRITE_BLOCK.sub("", corefile()) == KUBEADM_COREFILE


def test_every_served_host_is_rewritten_to_traefik():
    hosts = served_hosts()
    assert hosts == ["kirchner.social", "auth.kirchner.social"]
    by_host = {m["back"]: m for m in rewrites()}
    assert sorted(by_host) == sorted(f"{h}." for h in hosts)
    for host, m in by_host.items():
        assert m["target"] == traefik_fqdn()
        assert re.fullmatch(m["name"], host), f"{m['name']} does not match {host}"
        assert re.fullmatch(m["answer"], traefik_fqdn())


@pytest.mark.parametrize("other", ["xkirchner.social.", "kirchner.social.evil.", "kirchner.socia.",
                                   "www.kirchner.social.", "kirchnerXsocial."])
def test_rewrites_match_nothing_else(other):
    for m in rewrites():
        assert not re.fullmatch(m["name"], other), f"{m['name']} also rewrites {other}"


def test_in_cluster_peers_need_no_rewrite():
    """Peers are reached by Service names, which the kubernetes plugin answers."""
    for name in ("infra-fediverse-peer", "infra-mailpit"):
        for cert in of_kind(rendered(name), "Certificate"):
            for dns in cert["spec"]["dnsNames"]:
                assert dns.endswith((".svc", ".svc.cluster.local")), dns
