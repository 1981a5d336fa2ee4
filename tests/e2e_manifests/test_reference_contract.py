"""The kind infrastructure provides exactly the names the reference deployment uses, so the
reference is applied unchanged: issuer, StorageClass, IngressClass, Traefik's CRD provider
and entrypoints, and the redirect Middleware's API."""

from __future__ import annotations

import re

import pytest

from tests.e2e_manifests.manifests import find, of_kind, reference, rendered
from tootcheck.kube import objects

ISSUER_ANNOTATION = "cert-manager.io/cluster-issuer"


def traefik_args() -> list[str]:
    deployment = find(rendered("infra-traefik"), "Deployment", "traefik", "traefik")
    return [str(a) for a in deployment["spec"]["template"]["spec"]["containers"][0]["args"]]


def arg(name: str) -> str | None:
    prefix = f"--{name}="
    return next((a[len(prefix):] for a in traefik_args() if a.startswith(prefix)), None)


def reference_ingresses() -> list[dict]:
    return of_kind(reference(), "Ingress")


def test_cluster_issuer_is_the_one_the_reference_names():
    wanted = {i["metadata"]["annotations"][ISSUER_ANNOTATION] for i in reference_ingresses()
              if ISSUER_ANNOTATION in i["metadata"].get("annotations", {})}
    assert wanted == {"kirchner-social-issuer"}
    issuers = rendered("infra-issuers")
    ca_issuer = find(issuers, "ClusterIssuer", "kirchner-social-issuer")
    # The CA is the run's (tootcheck/kube/testca.py): the bring-up stores it as this Secret in
    # the cluster resource namespace (cert-manager), where a CA ClusterIssuer reads it.
    namespace, name = objects.ROOT_CA_SECRET
    assert ca_issuer["spec"] == {"ca": {"secretName": name}} and namespace == "cert-manager"
    assert [o["kind"] for o in issuers] == ["ClusterIssuer"]  # no cert-manager-made CA any more
    secret = objects.root_ca_secret("-----BEGIN CERTIFICATE-----\n", "-----BEGIN PRIVATE KEY-----\n")
    assert secret["type"] == "kubernetes.io/tls" and secret["metadata"]["namespace"] == namespace
    assert set(secret["data"]) == {"tls.crt", "tls.key", "ca.crt"}


def test_authentik_ingress_uses_the_same_issuer_and_class():
    ingress = find(rendered("infra-authentik"), "Ingress", "authentik-server", "authentik")
    assert ingress["metadata"]["annotations"][ISSUER_ANNOTATION] == "kirchner-social-issuer"
    assert ingress["spec"]["ingressClassName"] == "traefik"
    assert ingress["spec"]["tls"] == [{"hosts": ["auth.kirchner.social"],
                                       "secretName": "auth-kirchner-social-tls"}]
    assert ingress["metadata"]["annotations"]["traefik.ingress.kubernetes.io/router.tls"] == "true"


def test_storage_class_is_the_one_the_reference_claims_use():
    claims = of_kind(reference(), "PersistentVolumeClaim")
    assert len(claims) == 3
    (sc,) = of_kind(rendered("infra-nfs"), "StorageClass")
    assert {c["spec"]["storageClassName"] for c in claims} == {sc["metadata"]["name"]} == {"nfs-csi"}
    assert sc["reclaimPolicy"] == "Retain"
    server = find(rendered("infra-nfs"), "Deployment", "nfs-server", "nfs")
    args = server["spec"]["template"]["spec"]["containers"][0]["args"]
    assert f"-provisioner={sc['provisioner']}" in args


def test_ingress_class_is_the_one_the_reference_uses():
    classes = {i["spec"]["ingressClassName"] for i in reference_ingresses()}
    (ic,) = of_kind(rendered("infra-traefik"), "IngressClass")
    assert classes == {ic["metadata"]["name"]} == {"traefik"}
    assert ic["spec"]["controller"] == "traefik.io/ingress-controller"


def test_traefik_serves_the_reference_middleware_api():
    (middleware,) = of_kind(reference(), "Middleware")
    group, version = middleware["apiVersion"].split("/")
    crds = [c for c in of_kind(rendered("infra-traefik"), "CustomResourceDefinition")
            if c["spec"]["group"] == group and c["spec"]["names"]["kind"] == "Middleware"]
    assert crds and any(v["name"] == version and v["served"] for v in crds[0]["spec"]["versions"])
    assert "--providers.kubernetescrd" in traefik_args()
    # Referenced from the redirect Ingress as <namespace>-<name>@kubernetescrd, same namespace.
    ref = f"{middleware['metadata']['namespace']}-{middleware['metadata']['name']}@kubernetescrd"
    used = {i["metadata"]["annotations"].get("traefik.ingress.kubernetes.io/router.middlewares")
            for i in reference_ingresses()}
    assert ref in used
    assert arg("providers.kubernetescrd.allowCrossNamespace") in (None, "false")


def test_reference_entrypoints_exist():
    entrypoints = {m.group(1) for a in traefik_args()
                   if (m := re.match(r"--entryPoints\.([a-z]+)\.address=", a))}
    for ingress in reference_ingresses():
        wanted = ingress["metadata"]["annotations"]["traefik.ingress.kubernetes.io/router.entrypoints"]
        assert set(wanted.split(",")) <= entrypoints


def test_entrypoint_redirect_yields_to_the_reference_middleware():
    """HTTP->HTTPS at the entrypoint as a lowest-priority catch-all, distinguishable (302)
    from the reference Middleware's permanent redirect (301), which keeps serving
    http://kirchner.social through the `mastodon-redirect` Ingress."""
    assert arg("entryPoints.web.http.redirections.entryPoint.to") == ":443"
    assert arg("entryPoints.web.http.redirections.entryPoint.scheme") == "https"
    assert arg("entryPoints.web.http.redirections.entryPoint.priority") == "1"
    assert arg("entryPoints.web.http.redirections.entryPoint.permanent") == "false"
    (middleware,) = of_kind(reference(), "Middleware")
    assert middleware["spec"]["redirectScheme"] == {"scheme": "https", "permanent": True}


@pytest.mark.parametrize("port", [80, 443])
def test_traefik_entrypoints_are_bound_to_node_ports(port):
    deployment = find(rendered("infra-traefik"), "Deployment", "traefik", "traefik")
    ports = deployment["spec"]["template"]["spec"]["containers"][0]["ports"]
    assert any(p.get("hostPort") == port for p in ports)
    strategy = deployment["spec"]["strategy"]
    assert strategy["rollingUpdate"]["maxSurge"] == 0, "a second hostPort pod cannot schedule"
