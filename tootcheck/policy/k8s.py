"""Pure helpers over Kubernetes object dicts: pod templates, containers, images,
label selectors, ports, and the roles of Mastodon's containers."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, cast

from tootcheck.policy.bundle import Bundle, FieldPath, K8sObject, OutsideSlice, cached_property

WORKLOAD_KINDS = frozenset({
    "Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob", "Pod"})
CONTROLLER_KINDS = frozenset({"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet"})

_POD_SPEC_PATH: dict[str, FieldPath] = {
    "Pod": ("spec",),
    "CronJob": ("spec", "jobTemplate", "spec", "template", "spec"),
    **{k: ("spec", "template", "spec") for k in
       ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job")},
}

POSTGRES_IMAGE_NAMES = frozenset({"postgres", "postgresql"})
REDIS_IMAGE_NAMES = frozenset({"redis", "valkey"})
RAILS_ROLES = frozenset({"web", "sidekiq", "migrate"})
MASTODON_ROLES = RAILS_ROLES | {"streaming", "mastodon"}


def pod_spec_path(obj: K8sObject) -> FieldPath | None:
    return _POD_SPEC_PATH.get(obj.kind)


def pod_spec(obj: K8sObject) -> dict[str, Any] | None:
    path = pod_spec_path(obj)
    spec = obj.get(*path) if path else None
    return spec if isinstance(spec, dict) else None


def pod_template_labels(obj: K8sObject) -> dict[str, str]:
    if obj.kind == "Pod":
        return obj.labels
    path = pod_spec_path(obj)
    if not path:
        return {}
    labels = obj.get(*path[:-1], "metadata", "labels")
    return labels if isinstance(labels, dict) else {}


def pod_annotations(obj: K8sObject) -> dict[str, str]:
    if obj.kind == "Pod":
        return obj.annotations
    path = pod_spec_path(obj)
    ann = obj.get(*path[:-1], "metadata", "annotations") if path else None
    return ann if isinstance(ann, dict) else {}


# ---------------------------------------------------------------- images


@dataclass(frozen=True)
class Image:
    ref: str
    repo: str  # registry/path/name without tag or digest
    tag: str | None
    digest: str | None

    @property
    def name(self) -> str:
        return self.repo.rsplit("/", 1)[-1]

    @property
    def version(self) -> tuple[int, ...] | None:
        return parse_version(self.tag)


def parse_image(ref: str) -> Image:
    rest, _, digest = ref.partition("@")
    slash = rest.rfind("/")
    colon = rest.rfind(":")
    if colon > slash:
        repo, tag = rest[:colon], rest[colon + 1:]
    else:
        repo, tag = rest, None
    return Image(ref=ref, repo=repo, tag=tag or None, digest=digest or None)


_VERSION = re.compile(r"^v?(\d+)(?:\.(\d+))?(?:\.(\d+))?")


def parse_version(tag: str | None) -> tuple[int, ...] | None:
    """``v4.7.2`` -> (4, 7, 2); ``17.2-alpine`` -> (17, 2); ``latest`` -> None."""
    if not tag:
        return None
    m = _VERSION.match(tag)
    if not m:
        return None
    return tuple(int(g) for g in m.groups() if g is not None)


# ---------------------------------------------------------------- containers


@dataclass(eq=False)
class Container:
    obj: K8sObject
    data: dict[str, Any]
    path: FieldPath  # path of the container dict inside the object
    init: bool

    @cached_property  # read by most rules, for every container
    def name(self) -> str:
        return str(self.data.get("name", "?"))

    @property
    def sidecar(self) -> bool:
        """A native sidecar: an init container with restartPolicy Always."""
        return self.init and self.data.get("restartPolicy") == "Always"

    @cached_property
    def image(self) -> Image:
        return parse_image(str(self.data.get("image", "")))

    @property
    def command_line(self) -> str:
        parts = [*(self.data.get("command") or []), *(self.data.get("args") or [])]
        return " ".join(str(p) for p in parts)

    @cached_property
    def role(self) -> str | None:
        return container_role(self)

    @property
    def is_mastodon(self) -> bool:
        return self.role in MASTODON_ROLES

    def ports(self) -> list[dict[str, Any]]:
        ports = self.data.get("ports") or []
        return [p for p in ports if isinstance(p, dict)]

    def port_number(self, port: Any) -> int | None:
        """A probe/Service port (number or name) as a number this container declares."""
        for p in self.ports():
            if (isinstance(port, str) and p.get("name") == port) or p.get("containerPort") == port:
                return int(p["containerPort"]) if isinstance(p.get("containerPort"), int) else None
        return None

    def mounts(self) -> list[dict[str, Any]]:
        return [m for m in (self.data.get("volumeMounts") or []) if isinstance(m, dict)]

    def field(self, *path: str | int) -> FieldPath:
        return (*self.path, *path)


def containers(obj: K8sObject) -> list[Container]:
    """Init containers (in order) then containers of a workload's pod template."""
    path = pod_spec_path(obj)
    spec = pod_spec(obj)
    if path is None or spec is None:
        return []
    out: list[Container] = []
    for key, init in (("initContainers", True), ("containers", False)):
        for i, c in enumerate(spec.get(key) or []):
            if isinstance(c, dict):
                out.append(Container(obj, c, (*path, key, i), init))
    return out


def workloads(bundle: Bundle) -> list[K8sObject]:
    """Workloads whose pods the bundle describes (Pods owned by a controller excluded)."""
    key = ("workloads",)
    if key not in bundle.cache:
        found = [o for o in bundle.objects if o.kind in WORKLOAD_KINDS
                 and not (o.kind == "Pod" and o.meta.get("ownerReferences"))
                 and not (o.kind == "Job" and _owned_by_cronjob(o))]
        bundle.cache[key] = found
    return cast("list[K8sObject]", bundle.cache[key])


def _owned_by_cronjob(obj: K8sObject) -> bool:
    refs = obj.meta.get("ownerReferences") or []
    return any(isinstance(r, dict) and r.get("kind") == "CronJob" for r in refs)


def all_containers(bundle: Bundle) -> list[Container]:
    key = ("containers",)
    if key not in bundle.cache:
        bundle.cache[key] = [c for w in workloads(bundle) for c in containers_of(bundle, w)]
    return cast("list[Container]", bundle.cache[key])


def containers_of(bundle: Bundle, obj: K8sObject) -> list[Container]:
    key = ("containers-of", id(obj))
    if key not in bundle.cache:
        bundle.cache[key] = containers(obj)
    return cast("list[Container]", bundle.cache[key])


# ---------------------------------------------------------------- roles


def container_role(c: Container) -> str | None:
    """web, streaming, sidekiq, migrate, mastodon (other Mastodon task), postgres, redis."""
    name = c.image.name
    cmd = c.command_line
    if name == "mastodon-streaming":
        return "streaming"
    if name == "mastodon":
        web = "puma" in cmd or re.search(r"rails\s+(s|server)\b", cmd)
        if re.search(r"db:(migrate|prepare|setup)", cmd) and not web:
            return "migrate"  # web's own `rails db:migrate && exec puma` stays web
        if "sidekiq" in cmd:
            return "sidekiq"
        if "streaming" in cmd:
            return "streaming"
        if "puma" in cmd or re.search(r"rails\s+(s|server)\b", cmd):
            return "web"
        if c.name in ("web", "sidekiq", "streaming"):
            return c.name
        return "mastodon"
    if name in POSTGRES_IMAGE_NAMES:
        return "postgres"
    if name in REDIS_IMAGE_NAMES:
        return "redis"
    return None


def mastodon_containers(bundle: Bundle, *roles: str, namespace: str | None = None,
                        any_namespace: bool = True) -> list[Container]:
    """Containers with one of ``roles`` (all Mastodon roles if none) in ``namespace``; with
    ``any_namespace``, those of other namespaces follow."""
    key = ("by-role",)
    index = bundle.cache.get(key)
    if index is None:
        index = {}
        for c in all_containers(bundle):
            if c.role:
                index.setdefault((c.role, c.obj.namespace), []).append(c)
                index.setdefault((c.role, "*"), []).append(c)
        bundle.cache[key] = index
    wanted = roles or tuple(sorted(MASTODON_ROLES))
    local = [c for role in wanted for c in index.get((role, namespace), [])]
    if not any_namespace:
        return local
    if local and len(wanted) == 1:
        return local  # callers that allow any namespace want the local one first
    if bundle.slice is not None:
        raise OutsideSlice(f"{'/'.join(wanted)} containers of other namespaces than "
                           f"{namespace}")
    return local + [c for role in wanted for c in index.get((role, "*"), [])
                    if c.obj.namespace != namespace]


# ---------------------------------------------------------------- selectors


def selector_matches(selector: Mapping[str, Any] | None, labels: Mapping[str, str]) -> bool:
    """A LabelSelector (matchLabels + matchExpressions) against labels; empty matches all."""
    if not selector:
        return True
    for k, v in (selector.get("matchLabels") or {}).items():
        if labels.get(k) != v:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op = expr.get("key"), expr.get("operator")
        values = expr.get("values") or []
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and labels.get(key) in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def service_selects(service: K8sObject, labels: Mapping[str, str]) -> bool:
    selector = service.get("spec", "selector")
    if not isinstance(selector, dict) or not selector:
        return False
    return all(labels.get(k) == v for k, v in selector.items())


def workloads_in(bundle: Bundle, namespace: str | None) -> list[K8sObject]:
    key = ("workloads-by-namespace",)
    index = bundle.cache.get(key)
    if index is None:
        index = {}
        for w in workloads(bundle):
            index.setdefault(w.namespace, []).append(w)
        bundle.cache[key] = index
    return cast("list[K8sObject]", index.get(namespace, []))


def pods_selected_by(bundle: Bundle, service: K8sObject) -> list[K8sObject]:
    """The workloads whose pods ``service`` selects (once per Service: several rules
    follow each route)."""
    key = ("pods-selected-by", id(service))
    found = bundle.cache.get(key)
    if found is None:
        found = bundle.cache[key] = [w for w in workloads_in(bundle, service.namespace)
                                     if service_selects(service, pod_template_labels(w))]
    return cast("list[K8sObject]", found)


def iter_probes(c: Container) -> Iterator[tuple[str, dict[str, Any]]]:
    for kind in ("readinessProbe", "livenessProbe", "startupProbe"):
        probe = c.data.get(kind)
        if isinstance(probe, dict):
            yield kind, probe


def probe_port(probe: Mapping[str, Any]) -> tuple[str, Any] | None:
    for handler in ("httpGet", "tcpSocket", "grpc"):
        h = probe.get(handler)
        if isinstance(h, dict) and "port" in h:
            return handler, h["port"]
    return None


def volumes_by_name(obj: K8sObject) -> dict[str, dict[str, Any]]:
    """Pod volumes by name; a StatefulSet's volumeClaimTemplates count as PVC volumes."""
    spec = pod_spec(obj) or {}
    out = {str(v.get("name")): v for v in spec.get("volumes") or [] if isinstance(v, dict)}
    if obj.kind == "StatefulSet":
        for t in obj.get("spec", "volumeClaimTemplates") or []:
            name = str(((t or {}).get("metadata") or {}).get("name", ""))
            if name and name not in out:
                out[name] = {"name": name, "persistentVolumeClaim": {
                    "claimName": f"{name}-{obj.name}-N", "template": True}}
    return out


def mount_for_path(c: Container, path: str) -> dict[str, Any] | None:
    """The volume mount that holds ``path`` (the longest mountPath prefix)."""
    best: dict[str, Any] | None = None
    for m in c.mounts():
        mp = str(m.get("mountPath", "")).rstrip("/") or "/"
        holds = path == mp or path.startswith(mp + "/") or mp == "/"
        if holds and (best is None
                      or len(mp) > len(str(best.get("mountPath", "")).rstrip("/"))):
            best = m
    return best


def replicas(obj: K8sObject) -> int:
    value = obj.get("spec", "replicas")
    return value if isinstance(value, int) else 1
