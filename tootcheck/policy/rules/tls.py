"""Ingress TLS and Traefik (MSTDN-TLS-*): hosts, certificates, HTTPS-only routing."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from tootcheck.model import Severity
from tootcheck.policy.bundle import K8sObject
from tootcheck.policy.registry import rule
from tootcheck.policy.rules._common import (
    is_https_redirect,
    is_mastodon_ingress,
    is_mastodon_serving_ingress,
    is_serving_ingress,
    router_entrypoints,
    router_middlewares,
    traefik_middlewares,
    web_container,
)
from tootcheck.policy.types import Context, Hit, Subject

E, W, INFO = Severity.ERROR, Severity.WARN, Severity.INFO

TRAEFIK_KINDS = ("Middleware", "MiddlewareTCP", "IngressRoute", "IngressRouteTCP",
                 "IngressRouteUDP", "TLSOption", "TLSStore", "TraefikService",
                 "ServersTransport", "ServersTransportTCP")
ANN = "traefik.ingress.kubernetes.io/router."
CM_CLUSTER_ISSUER = "cert-manager.io/cluster-issuer"
CM_ISSUER = "cert-manager.io/issuer"


def rule_hosts(ing: K8sObject) -> list[tuple[int, str]]:
    return [(i, str(r.get("host") or "")) for i, r in enumerate(ing.get("spec", "rules") or [])
            if isinstance(r, dict)]


def tls_entries(ing: K8sObject) -> list[dict[str, Any]]:
    return [t for t in ing.get("spec", "tls") or [] if isinstance(t, dict)]


def expected_web_host(ctx: Context, namespace: str | None) -> str:
    """WEB_DOMAIN, else LOCAL_DOMAIN, of the web container; the configured domain if unknown."""
    web = web_container(ctx, namespace)
    if web is not None:
        env = ctx.env(web)
        for key in ("WEB_DOMAIN", "LOCAL_DOMAIN"):
            if env.value(key):
                return str(env.value(key))
    return ctx.config.web_host


def is_traefik_ingress(s: Subject, ctx: Context) -> bool:
    obj = s.obj
    return (obj.get("spec", "ingressClassName") == "traefik"
            or obj.annotations.get("kubernetes.io/ingress.class") == "traefik"
            or any(k.startswith(ANN) for k in obj.annotations))


is_traefik_ingress.text = "Traefik Ingresses"  # type: ignore[attr-defined]


@rule("MSTDN-TLS-001", E, "Ingress hosts are explicit; Mastodon's is its web domain",
      profile="baseline", kinds=("Ingress",),
      remediation="Set every rule host explicitly (no empty or wildcard host); Mastodon's "
                  "Ingress serves exactly WEB_DOMAIN, or LOCAL_DOMAIN when WEB_DOMAIN is unset.",
      refs=("Kyverno best-practices/disallow-empty-ingress-host",
            "Kyverno other/restrict-ingress-wildcard", "mastodon config/initializers/1_hosts.rb "
            "(any other Host header gets 403)"))
def ingress_hosts(s: Subject, ctx: Context) -> Iterator[Hit]:
    """An empty or wildcard host captures traffic for names the instance does not own;
    Mastodon answers 403 to any Host other than its own domain."""
    mastodon = is_mastodon_ingress(s, ctx)
    expected = expected_web_host(ctx, s.obj.namespace) if mastodon else None
    for i, host in rule_hosts(s.obj):
        if not host:
            yield Hit("rule has no host", ("spec", "rules", i))
        elif "*" in host:
            yield Hit(f"rule host {host} is a wildcard", ("spec", "rules", i, "host"))
        elif expected and host != expected:
            yield Hit(f"Mastodon rule host {host} is not the web domain {expected}",
                      ("spec", "rules", i, "host"))


@rule("MSTDN-TLS-002", E, "TLS covers every Ingress host and names a secret",
      profile="baseline", kinds=("Ingress",), applies=is_serving_ingress,
      remediation="Add a spec.tls entry listing every rule host with the certificate's "
                  "secretName.",
      refs=("Polaris tlsSettingsMissing", "Kyverno other/ingress-host-match-tls"))
def tls_covers_hosts(s: Subject, ctx: Context) -> Iterator[Hit]:
    """A host missing from spec.tls is served with the controller's default certificate.
    A Traefik Ingress that only redirects plain HTTP to https (router on the web
    entrypoint with a redirectScheme middleware) serves nothing and is exempt."""
    entries = tls_entries(s.obj)
    covered = {str(h) for t in entries if t.get("secretName") for h in t.get("hosts") or []}
    for j, t in enumerate(entries):
        if not t.get("secretName"):
            yield Hit("spec.tls entry has no secretName", ("spec", "tls", j))
    for i, host in rule_hosts(s.obj):
        if host and host not in covered:
            yield Hit(f"host {host} is not covered by spec.tls", ("spec", "rules", i, "host"))


def _certificates_for(ctx: Context, ns: str | None, secret: str) -> list[K8sObject]:
    return [c for c in ctx.bundle.in_namespace("Certificate", ns)
            if c.get("spec", "secretName") == secret]


@rule("MSTDN-TLS-003", E, "Each TLS secret has exactly one cert-manager issuance path",
      profile="baseline", kinds=("Ingress", "Certificate"),
      applies=lambda s, ctx: s.obj.kind == "Certificate" or is_serving_ingress(s, ctx),
      remediation="Either annotate the Ingress with cert-manager.io/cluster-issuer: <your "
                  "issuer> (one of allowed_issuers when configured), or render a Certificate "
                  "for the same secretName (dnsNames covering the hosts, an allowed issuerRef), not both.",
      refs=("cert-manager/website content/docs/usage/ingress.md",
            "Kyverno cert-manager/restrict-issuer", "Kyverno cert-manager/limit-dnsnames"))
def issuance_path(s: Subject, ctx: Context) -> Iterator[Hit]:
    """The ingress-shim annotation and a hand-written Certificate for the same secret
    fight over it; with neither, nothing renews the certificate and the site goes down
    when it expires. With allowed_issuers in the policy config only those may sign
    serving certificates (CA certificates that back an issuer are exempt); without,
    any cert-manager issuer is accepted. Depends on the cluster: the issuer must
    exist there (checked live by the https certificate check)."""
    allowed = set(ctx.config.allowed_issuers)
    obj = s.obj
    if obj.kind == "Certificate":
        if obj.get("spec", "isCA") is True:
            return  # a CA bootstrap certificate backs an issuer; it serves no host
        name = obj.get("spec", "issuerRef", "name")
        if allowed and name not in allowed:
            yield Hit(f"issuerRef {name} is not an allowed issuer ({', '.join(sorted(allowed))})",
                      ("spec", "issuerRef", "name"))
        return
    ann = obj.annotations
    annotated = ann.get(CM_CLUSTER_ISSUER) or ann.get(CM_ISSUER)
    ann_key = CM_CLUSTER_ISSUER if ann.get(CM_CLUSTER_ISSUER) else CM_ISSUER
    if annotated and allowed and annotated not in allowed:
        yield Hit(f"annotation {ann_key} names {annotated}, not an allowed issuer "
                  f"({', '.join(sorted(allowed))})", ("metadata", "annotations"))
    for j, t in enumerate(tls_entries(obj)):
        secret = t.get("secretName")
        if not secret:
            continue
        certs = _certificates_for(ctx, obj.namespace, str(secret))
        if annotated and certs:
            yield Hit(f"secret {secret} is issued twice: by the {ann_key} annotation and by "
                      f"Certificate {certs[0].name}", ("spec", "tls", j, "secretName"))
        elif not annotated and not certs:
            yield Hit(f"nothing issues secret {secret}: no cert-manager annotation and no "
                      f"Certificate with that secretName", ("spec", "tls", j, "secretName"))
        for cert in certs:
            names = set(cert.get("spec", "dnsNames") or [])
            missing = sorted(set(map(str, t.get("hosts") or [])) - names)
            if missing:
                yield Hit(f"Certificate {cert.name} does not cover {', '.join(missing)}",
                          ("spec", "tls", j, "hosts"))


@rule("MSTDN-TLS-004", E, "Traefik routes over TLS and redirects plain HTTP",
      profile="hardened", kinds=("Ingress",), applies=is_traefik_ingress,
      remediation="Annotate router.entrypoints explicitly; a websecure router needs "
                  "router.tls: \"true\", a web router needs router.middlewares naming a "
                  "rendered Middleware with redirectScheme {scheme: https, permanent: true} "
                  "(<namespace>-<name>@kubernetescrd).",
      refs=("Traefik docs: Kubernetes Ingress annotations, RedirectScheme middleware",
            "Kyverno other/require-ingress-https"))
def traefik_https(s: Subject, ctx: Context) -> Iterator[Hit]:
    """Without router.tls the websecure router serves no certificate; a router on the
    web entrypoint (or on every entrypoint, when none is named) without a permanent
    https redirect serves Mastodon over plain HTTP. Hardened: the manifests must show
    it; when Traefik's entrypoints do TLS and the redirect (cluster configuration),
    baseline reports it as MSTDN-TLS-006 for the live check to verify."""
    ann = s.obj.annotations
    entrypoints = router_entrypoints(s.obj)
    if not entrypoints:
        yield Hit("router.entrypoints is not set, so the router listens on every entrypoint "
                  "(plain HTTP included)", ("metadata", "annotations"))
    elif not {"web", "websecure"} & set(entrypoints):
        yield Hit(f"router.entrypoints is {','.join(entrypoints)}: neither websecure nor web",
                  ("metadata", "annotations"))
    if (not entrypoints or "websecure" in entrypoints) and \
            str(ann.get(ANN + "tls", "")).lower() != "true":
        yield Hit('router.tls is not "true" on a websecure router', ("metadata", "annotations"))
    if (not entrypoints or "web" in entrypoints) and not ctx.config.entrypoint_redirect:
        known = traefik_middlewares(ctx)
        refs = router_middlewares(s.obj)
        for ref in refs:
            if ref not in known:
                yield Hit(f"router.middlewares names {ref}, which is not a rendered traefik.io "
                          f"Middleware", ("metadata", "annotations"))
        if not any(is_https_redirect(known.get(ref)) for ref in refs):
            yield Hit("the router listens on the web entrypoint without a permanent "
                      "redirectScheme https middleware", ("metadata", "annotations"))


@rule("MSTDN-TLS-005", W, "Ingresses name the traefik class; Traefik CRDs use traefik.io",
      profile="baseline", kinds=("Ingress", *TRAEFIK_KINDS),
      remediation="Set spec.ingressClassName: traefik (not the deprecated annotation) and use "
                  "apiVersion traefik.io/v1alpha1 for Traefik resources.",
      refs=("Kyverno other/restrict-ingress-classes",
            "fluxcd/flagger#1641 (Traefik v3 no longer serves traefik.containo.us)"))
def traefik_class(s: Subject, ctx: Context) -> Iterator[Hit]:
    """Without a class the Ingress is served by whatever controller is the default (or
    none); Traefik v3 ignores resources in the old traefik.containo.us group. Depends on
    the cluster's default IngressClass."""
    obj = s.obj
    if obj.kind == "Ingress":
        cls = obj.get("spec", "ingressClassName")
        if cls != ctx.config.ingress_class:
            yield Hit(f"spec.ingressClassName is {cls or 'unset'}, not "
                      f"{ctx.config.ingress_class}", ("spec", "ingressClassName"))
        if "kubernetes.io/ingress.class" in obj.annotations:
            yield Hit("uses the deprecated kubernetes.io/ingress.class annotation",
                      ("metadata", "annotations"))
    elif obj.group != "traefik.io":
        yield Hit(f"{obj.kind} uses apiVersion {obj.api_version}; Traefik v3 reads traefik.io",
                  ("apiVersion",))


def _is_mastodon_traefik(s: Subject, ctx: Context) -> bool:
    return is_traefik_ingress(s, ctx) and is_mastodon_serving_ingress(s, ctx)


_is_mastodon_traefik.text = "Mastodon's Traefik Ingresses"  # type: ignore[attr-defined]
LIVE_HTTPS_CHECK = "https.http_semantics"


@rule("MSTDN-TLS-006", INFO, "TLS and the HTTP redirect not visible in the manifests are "
      "verified live", profile="baseline", kinds=("Ingress",), applies=_is_mastodon_traefik,
      remediation=f"Nothing to fix offline when Traefik's entrypoints terminate TLS and "
                  f"redirect web to websecure: run the live check {LIVE_HTTPS_CHECK} (make "
                  f"e2e, or nightly) to prove it; or make them visible with the router "
                  f"annotations MSTDN-TLS-004 asks for.",
      refs=("Traefik docs: entryPoints.web.http.redirections, entryPoints.websecure.http.tls",
            f"tootcheck/checks/https.py {LIVE_HTTPS_CHECK}"))
def tls_assumed(s: Subject, ctx: Context) -> Iterator[Hit]:
    """Traefik can terminate TLS and redirect plain HTTP on its entrypoints, outside the
    Mastodon manifests; then the Ingress shows neither, and only the live check can
    tell whether Mastodon is served over plain HTTP. Depends on the cluster (Traefik's
    static configuration)."""
    problems = [h.message for h in traefik_https(s, ctx)]
    if problems:
        hosts = ", ".join(h for _, h in rule_hosts(s.obj) if h) or "its hosts"
        yield Hit(f"TLS and the HTTP->HTTPS redirect for {hosts} are not visible in the "
                  f"manifests ({problems[0]}); assumed on Traefik's entrypoints: the live "
                  f"check {LIVE_HTTPS_CHECK} verifies them", ("metadata", "annotations"))
