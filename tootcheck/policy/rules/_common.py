"""Predicates and lookups the rule modules share."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

from tootcheck.policy.bundle import K8sObject, NamespaceSlice, OutsideSlice
from tootcheck.policy.k8s import (
    Container,
    containers_of,
    mastodon_containers,
    pods_selected_by,
)
from tootcheck.policy.types import Context, Subject

Predicate = Callable[[Subject, Context], bool]


def role_in(*roles: str) -> Predicate:
    wanted = frozenset(roles)

    def applies(s: Subject, ctx: Context) -> bool:
        return s.container is not None and s.container.role in wanted

    applies.text = f"{'/'.join(roles)} containers"  # type: ignore[attr-defined]
    return applies


def has_role_container(*roles: str) -> Predicate:
    wanted = frozenset(roles)

    def applies(s: Subject, ctx: Context) -> bool:
        return any(c.role in wanted for c in ctx.containers(s.obj))

    applies.text = f"workloads running {'/'.join(roles)}"  # type: ignore[attr-defined]
    return applies


def _port_value(text: str | None) -> int | None:
    return int(text) if text and text.strip().isdigit() else None


def listen_port(c: Container, ctx: Context) -> int | None:
    """The port the process in ``c`` really listens on, declared or not: web reads PORT
    (default 3000), streaming PORT (default 4000), PostgreSQL PGPORT (5432), Redis
    --port (6379). None for anything else (sidekiq listens on nothing)."""
    env = ctx.env(c)
    if c.role == "web":
        return _port_value(env.value("PORT")) or ctx.config.web_port
    if c.role == "streaming":
        return _port_value(env.value("PORT")) or ctx.config.streaming_port
    if c.role == "postgres":
        return _port_value(env.value("PGPORT")) or 5432
    if c.role == "redis":
        words = c.command_line.split()
        given = words[words.index("--port") + 1] if "--port" in words[:-1] else None
        return _port_value(given) or 6379
    return None


def serves_port(c: Container, ctx: Context, port: object) -> int | None:
    """The number of ``port`` (name or number) if ``c`` declares it, or if it is the
    number its process listens on (a numeric port need not be declared to route)."""
    declared = c.port_number(port)
    if declared is not None:
        return declared
    number = port if isinstance(port, int) else \
        _port_value(port) if isinstance(port, str) else None
    if number is not None and number == listen_port(c, ctx):
        return number
    return None


def web_container(ctx: Context, namespace: str | None) -> Container | None:
    """The web container of the Mastodon in ``namespace`` (else of any namespace)."""
    found = mastodon_containers(ctx.bundle, "web", namespace=namespace)
    return found[0] if found else None


def instance_domain(ctx: Context, namespace: str | None) -> str:
    """The configured domain, else LOCAL_DOMAIN of the Mastodon in ``namespace`` ("" if
    neither is known)."""
    if ctx.config.domain:
        return ctx.config.domain
    web = web_container(ctx, namespace)
    return (ctx.env(web).value("LOCAL_DOMAIN") or "") if web is not None else ""


def mastodon_services(ctx: Context) -> set[int]:
    """ids of Services that select a pod running a Mastodon container."""
    key = ("mastodon-services",)
    if key not in ctx.bundle.cache:
        ids: set[int] = set()
        for svc in ctx.bundle.of_kind("Service"):
            for w in pods_selected_by(ctx.bundle, svc):
                if any(c.is_mastodon for c in containers_of(ctx.bundle, w)):
                    ids.add(id(svc))
                    break
        ctx.bundle.cache[key] = ids
    return cast("set[int]", ctx.bundle.cache[key])


def ingress_backends(ing: K8sObject) -> list[tuple[tuple[Any, ...], str, str, str | int | None]]:
    """(path-in-object, http path, service name, service port) for every rule path."""
    out = []
    for i, rule in enumerate(ing.get("spec", "rules") or []):
        if not isinstance(rule, dict):
            continue
        for j, p in enumerate((rule.get("http") or {}).get("paths") or []):
            svc = ((p.get("backend") or {}).get("service") or {})
            port = svc.get("port") or {}
            port_value = port.get("number", port.get("name"))
            out.append((("spec", "rules", i, "http", "paths", j), str(p.get("path", "/")),
                        str(svc.get("name", "")), port_value))
    return out


def is_mastodon_ingress(s: Subject, ctx: Context) -> bool:
    svc_ids = mastodon_services(ctx)
    for _, _, name, _ in ingress_backends(s.obj):
        svc = ctx.bundle.find("Service", s.obj.namespace, name)
        if svc is not None and id(svc) in svc_ids:
            return True
    hosts = {r.get("host") for r in s.obj.get("spec", "rules") or [] if isinstance(r, dict)}
    return bool(ctx.config.web_host) and ctx.config.web_host in hosts


TRAEFIK_ANN = "traefik.ingress.kubernetes.io/router."


def router_entrypoints(ing: K8sObject) -> list[str]:
    raw = str(ing.annotations.get(TRAEFIK_ANN + "entrypoints", ""))
    return [e.strip() for e in raw.split(",") if e.strip()]


def router_middlewares(ing: K8sObject) -> list[str]:
    raw = str(ing.annotations.get(TRAEFIK_ANN + "middlewares", ""))
    return [m.strip() for m in raw.split(",") if m.strip()]


def traefik_middlewares(ctx: Context) -> dict[str, K8sObject]:
    """Rendered traefik.io Middlewares by the name Traefik's Ingress provider uses."""
    key = ("traefik-middlewares",)
    if key not in ctx.bundle.cache:
        known = {f"{m.namespace}-{m.name}@kubernetescrd": m
                 for m in ctx.bundle.of_kind("Middleware") if m.group == "traefik.io"}
        part = ctx.bundle.slice
        ctx.bundle.cache[key] = known if part is None else _SliceMiddlewares(known, part)
    return cast("dict[str, K8sObject]", ctx.bundle.cache[key])


class _SliceMiddlewares(dict[str, K8sObject]):
    """The Middlewares of a namespace slice: a name that a Middleware of a namespace
    outside it could take (``<namespace>-<name>@kubernetescrd``) cannot be answered."""

    def __init__(self, known: dict[str, K8sObject], part: NamespaceSlice) -> None:
        super().__init__(known)
        self.part = part

    def _check(self, ref: object) -> None:
        name = ref if isinstance(ref, str) else ""
        at = name.find("-")
        while at >= 0:
            if name[:at] in self.part.known and name[:at] not in self.part.held:
                raise OutsideSlice(f"Middleware {ref} may be in namespace {name[:at]}")
            at = name.find("-", at + 1)

    def __contains__(self, ref: object) -> bool:
        self._check(ref)
        return super().__contains__(ref)

    def get(self, ref: str, default: Any = None) -> Any:
        self._check(ref)
        return super().get(ref, default)

    def __getitem__(self, ref: str) -> K8sObject:
        self._check(ref)
        return super().__getitem__(ref)


def is_https_redirect(mw: K8sObject | None) -> bool:
    rs = (mw.get("spec", "redirectScheme") or {}) if mw is not None else {}
    return rs.get("scheme") == "https" and rs.get("permanent") is True


def is_redirect_only(ing: K8sObject, ctx: Context) -> bool:
    """A Traefik Ingress whose only router is on the plain-HTTP `web` entrypoint and
    redirects to https: it serves no content, so TLS and routing rules skip it."""
    known = traefik_middlewares(ctx)
    return router_entrypoints(ing) == ["web"] and any(
        is_https_redirect(known.get(ref)) for ref in router_middlewares(ing))


def is_serving_ingress(s: Subject, ctx: Context) -> bool:
    return not is_redirect_only(s.obj, ctx)


def is_mastodon_serving_ingress(s: Subject, ctx: Context) -> bool:
    return is_mastodon_ingress(s, ctx) and not is_redirect_only(s.obj, ctx)


is_mastodon_serving_ingress.text = "Mastodon Ingresses (not redirect-only)"  # type: ignore[attr-defined]
is_serving_ingress.text = "Ingresses (not redirect-only)"  # type: ignore[attr-defined]
