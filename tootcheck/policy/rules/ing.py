"""Ingress routing (MSTDN-ING-*): Ingress path -> Service port -> container port."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from tootcheck.model import Severity
from tootcheck.policy.bundle import FieldPath, K8sObject
from tootcheck.policy.k8s import (
    CONTROLLER_KINDS,
    Container,
    pod_template_labels,
    pods_selected_by,
    selector_matches,
)
from tootcheck.policy.registry import rule
from tootcheck.policy.rules._common import (
    ingress_backends,
    is_mastodon_serving_ingress,
    serves_port,
)
from tootcheck.policy.types import Context, Hit, Subject

E = Severity.ERROR
STREAMING_PATH = "/api/v1/streaming"


@dataclass
class Route:
    """Where one Ingress backend leads."""

    service_name: str
    port_ref: str | int | None
    service: K8sObject | None = None
    target_port: str | int | None = None
    targets: list[tuple[Container, int]] = field(default_factory=list)
    problem: str | None = None


def resolve_backend(ctx: Context, namespace: str | None, service_name: str,
                    port_ref: str | int | None) -> Route:
    route = Route(service_name, port_ref)
    svc = ctx.bundle.find("Service", namespace, service_name)
    if svc is None:
        route.problem = f"Service {service_name} does not exist"
        return route
    route.service = svc
    ports = [p for p in svc.get("spec", "ports") or [] if isinstance(p, dict)]
    match = next((p for p in ports if (isinstance(port_ref, int) and p.get("port") == port_ref)
                  or (isinstance(port_ref, str) and p.get("name") == port_ref)), None)
    if match is None:
        route.problem = f"Service {service_name} has no port {port_ref}"
        return route
    route.target_port = match.get("targetPort", match.get("port"))
    return _targets(ctx, svc, route)


def _targets(ctx: Context, svc: K8sObject, route: Route) -> Route:
    pods = pods_selected_by(ctx.bundle, svc)
    if not pods:
        route.problem = f"Service {svc.name} selects no rendered pod"
        return route
    tp = route.target_port
    for pod in pods:
        for c in ctx.containers(pod):
            if c.init and not c.sidecar:
                continue
            number = serves_port(c, ctx, tp)
            if number is not None:
                route.targets.append((c, number))
    if not route.targets:
        route.problem = (f"targetPort {tp} of Service {svc.name} is neither declared nor "
                         f"listened on by any container it selects")
    return route


def _paths(ing: K8sObject, wanted: str) -> list[tuple[FieldPath, str, str | int | None, str]]:
    out: list[tuple[FieldPath, str, str | int | None, str]] = []
    for i, rule_ in enumerate(ing.get("spec", "rules") or []):
        if not isinstance(rule_, dict):
            continue
        for j, p in enumerate((rule_.get("http") or {}).get("paths") or []):
            if str(p.get("path", "/")).rstrip("/") == wanted.rstrip("/"):
                svc = (p.get("backend") or {}).get("service") or {}
                port = svc.get("port") or {}
                out.append((("spec", "rules", i, "http", "paths", j), str(svc.get("name", "")),
                            port.get("number", port.get("name")), str(p.get("pathType", ""))))
    return out


def _route_hits(ctx: Context, ing: K8sObject, path: str, role: str, port: int) -> Iterator[Hit]:
    found = _paths(ing, path)
    if not found:
        yield Hit(f"Ingress has no {path} path (it must reach the {role} container on {port})",
                  ("spec", "rules"))
        return
    for fpath, svc, port_ref, path_type in found:
        if path_type != "Prefix":
            yield Hit(f"path {path} has pathType {path_type or 'unset'}, not Prefix",
                      (*fpath, "pathType"))
        route = resolve_backend(ctx, ing.namespace, svc, port_ref)
        if route.problem:
            yield Hit(f"path {path} -> {svc}:{port_ref}: {route.problem}", (*fpath, "backend"))
            continue
        for c, cport in route.targets:
            if c.role != role or cport != port:
                yield Hit(f"path {path} -> Service {svc}:{port_ref} -> container {c.name!r} "
                          f"port {cport}, not the {role} container on {port}",
                          (*fpath, "backend"), None)


@rule("MSTDN-ING-001", E, "/ reaches the web container on port 3000",
      profile="baseline", kinds=("Ingress",), applies=is_mastodon_serving_ingress,
      remediation="Route the Prefix path / to the Service port whose targetPort is the web "
                  "container's port 3000.",
      refs=("mastodon/chart templates/ingress.yaml", "mastodon/documentation config.md PORT"))
def root_to_web(s: Subject, ctx: Context) -> Iterator[Hit]:
    """Everything but streaming is served by Puma; the route is followed from the
    Ingress path through the Service port and targetPort to the container that
    declares it or (numeric) listens on it; a wrong hop serves 404/502 or the wrong
    process."""
    yield from _route_hits(ctx, s.obj, "/", "web", ctx.config.web_port)


@rule("MSTDN-ING-002", E, "/api/v1/streaming reaches the streaming container on port 4000",
      profile="baseline", kinds=("Ingress",), applies=is_mastodon_serving_ingress,
      remediation="Add a Prefix path /api/v1/streaming routed to the Service port whose "
                  "targetPort is the streaming container's port 4000.",
      refs=("mastodon/chart templates/ingress.yaml",
            "mastodon/documentation content/en/methods/streaming.md"))
def streaming_route(s: Subject, ctx: Context) -> Iterator[Hit]:
    """Without the streaming path, WebSocket upgrades reach Puma, which does not speak
    the streaming API; in a shared pod a targetPort of 3000 silently lands on web."""
    yield from _route_hits(ctx, s.obj, STREAMING_PATH, "streaming", ctx.config.streaming_port)


@rule("MSTDN-ING-003", E, "Backends, selectors and target ports resolve",
      profile="baseline", kinds=("Ingress", "Service", *sorted(CONTROLLER_KINDS)),
      remediation="Make the Ingress name an existing Service port, the Service selector match "
                  "the pod template labels, its targetPort a declared container port, and each "
                  "workload selector match its own template.",
      refs=("kube-score ingress-targets-service/service-targets-pod",
            "kube-linter dangling-service/dangling-ingress/invalid-target-ports/"
            "mismatching-selector",
            "kube-score deployment-pod-selector-labels-match-template-metadata-labels"))
def wiring(s: Subject, ctx: Context) -> Iterator[Hit]:
    """A dangling backend or selector renders and applies cleanly and then serves
    nothing (503 at the Ingress, a Service with no endpoints). A numeric targetPort
    routes to a container that listens on it whether or not it declares the port
    (web: PORT or 3000, streaming: PORT or 4000); a named one must be declared."""
    obj = s.obj
    if obj.kind == "Ingress":
        for fpath, _http_path, name, port in ingress_backends(obj):
            if not name:
                continue
            route = resolve_backend(ctx, obj.namespace, name, port)
            if route.problem:
                yield Hit(route.problem, (*fpath, "backend"))
        default = obj.get("spec", "defaultBackend", "service")
        if isinstance(default, dict):
            default_port = (default.get("port") or {})
            route = resolve_backend(ctx, obj.namespace, str(default.get("name", "")),
                                    default_port.get("number", default_port.get("name")))
            if route.problem:
                yield Hit(route.problem, ("spec", "defaultBackend"))
    elif obj.kind == "Service":
        if obj.get("spec", "type") == "ExternalName" or not obj.get("spec", "selector"):
            return
        for i, p in enumerate(obj.get("spec", "ports") or []):
            if not isinstance(p, dict):
                continue
            route = Route(obj.name, p.get("port"), obj, p.get("targetPort", p.get("port")))
            route = _targets(ctx, obj, route)
            if route.problem:
                yield Hit(route.problem, ("spec", "ports", i))
                if "selects no" in route.problem:
                    return
    else:
        selector = obj.get("spec", "selector")
        labels = pod_template_labels(obj)
        if not isinstance(selector, dict) or not selector:
            yield Hit("workload has no selector", ("spec", "selector"))
        elif not selector_matches(selector, labels):
            yield Hit("spec.selector does not match the pod template labels",
                      ("spec", "selector"))
