"""Workload hygiene (MSTDN-WL-*): resources, probes, image tags, env, services, schema."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from tootcheck.model import Severity
from tootcheck.policy.k8s import (
    WORKLOAD_KINDS,
    Container,
    iter_probes,
    pod_spec,
    pod_spec_path,
    pod_template_labels,
    probe_port,
    selector_matches,
)
from tootcheck.policy.registry import rule
from tootcheck.policy.rules._common import has_role_container, role_in, serves_port
from tootcheck.policy.schema import validate_object
from tootcheck.policy.types import Context, Hit, Subject

E, W, INFO = Severity.ERROR, Severity.WARN, Severity.INFO


def resolve_port(c: Container, port: Any) -> int | None:
    """A probe port as a number: a number as is, a name through the container's ports."""
    if isinstance(port, int):
        return port
    if isinstance(port, str) and port.isdigit():
        return int(port)
    return c.port_number(port)


@rule("MSTDN-WL-001", E, "Containers set CPU and memory requests and a memory limit",
      profile="hardened", kinds=WORKLOAD_KINDS, scope="container",
      remediation="Set resources.requests.cpu, resources.requests.memory and "
                  "resources.limits.memory on every container, init containers and Jobs "
                  "included.",
      refs=("kube-score container-resources", "Polaris cpuRequestsMissing/memoryRequestsMissing/"
            "memoryLimitsMissing", "kube-linter unset-cpu-requirements/unset-memory-requirements",
            "Kyverno best-practices/require-pod-requests-limits", "Checkov CKV_K8S_10-13"))
def container_resources(s: Subject, ctx: Context) -> Iterator[Hit]:
    """Every container, Jobs and init containers included, requests CPU and memory and
    limits memory, so the scheduler can place the pod and a leak cannot starve the node."""
    c = s.container
    assert c is not None
    res = c.data.get("resources") or {}
    missing = [f"{section}.{what}" for section, what in
               (("requests", "cpu"), ("requests", "memory"), ("limits", "memory"))
               if not (res.get(section) or {}).get(what)]
    if missing:
        yield Hit(f"sets no {', '.join(missing)}", c.field("resources"))


@rule("MSTDN-WL-002", E, "web and streaming have distinct readiness and liveness probes; "
      "sidekiq has a liveness probe",
      profile="hardened", kinds=WORKLOAD_KINDS, scope="container",
      applies=role_in("web", "streaming", "sidekiq"),
      remediation="Give web and streaming a readinessProbe and a livenessProbe that differ "
                  "(e.g. in thresholds), and sidekiq a livenessProbe.",
      refs=("kube-linter no-readiness-probe/no-liveness-probe", "Checkov CKV_K8S_8/CKV_K8S_9",
            "kube-score pod-probes-identical", "Kyverno other/ensure-probes-different"))
def probes_present(s: Subject, ctx: Context) -> Iterator[Hit]:
    """web and streaming need both probes (readiness gates traffic, liveness restarts a
    hung process), and they must not be identical, or a pod that is merely busy is
    killed; sidekiq serves no traffic and needs a liveness probe."""
    c = s.container
    assert c is not None
    wanted = ("readinessProbe", "livenessProbe") if c.role != "sidekiq" else ("livenessProbe",)
    for kind in wanted:
        if not isinstance(c.data.get(kind), dict):
            yield Hit(f"{c.role} container has no {kind}", c.field(kind))
    if c.role != "sidekiq" and c.data.get("readinessProbe") and \
            c.data.get("readinessProbe") == c.data.get("livenessProbe"):
        yield Hit("readinessProbe and livenessProbe are identical", c.field("livenessProbe"))


@rule("MSTDN-WL-003", E, "A probe's port is declared by the same container",
      profile="baseline", kinds=WORKLOAD_KINDS, scope="container",
      remediation="Point each tcpSocket/httpGet/grpc probe at a port the same container "
                  "declares or listens on, or use an exec probe (sidekiq).",
      refs=("kube-linter liveness-port/readiness-port/startup-port",
            "bjw-s app-template common _probes.tpl (default probes use the primary service "
            "port)"))
def probe_port_owned(s: Subject, ctx: Context) -> Iterator[Hit]:
    """In a shared pod a TCP probe on another container's port succeeds for any
    container, so a probe proves nothing unless it targets its own process: a port the
    container declares, or (numeric) the port its Mastodon process listens on (web:
    PORT or 3000, streaming: PORT or 4000). A sidekiq probe on 3000 only sees web, and a
    hung sidekiq is never restarted."""
    c = s.container
    assert c is not None
    for kind, probe in iter_probes(c):
        found = probe_port(probe)
        if found is None:
            continue
        handler, port = found
        if serves_port(c, ctx, port) is None:
            yield Hit(f"{kind} probes port {port}, which container {c.name!r} neither "
                      f"declares nor listens on", c.field(kind, handler, "port"))


_HEALTH = {"web": "/health", "streaming": "/api/v1/streaming/health"}


@rule("MSTDN-WL-004", W, "Probes use Mastodon's health endpoints",
      profile="baseline", kinds=WORKLOAD_KINDS, scope="container",
      applies=role_in("web", "streaming", "sidekiq"),
      remediation="Probe web with httpGet /health on 3000, streaming with httpGet "
                  "/api/v1/streaming/health on 4000 (tcpSocket is acceptable for liveness), "
                  "and sidekiq with an exec command that checks the sidekiq process.",
      refs=("mastodon/mastodon docker-compose.yml healthchecks",
            "mastodon/chart templates/deployment-*.yaml probes"))
def probe_endpoints(s: Subject, ctx: Context) -> Iterator[Hit]:
    """Probes must exercise the process they guard: web answers /health on its PORT,
    streaming /api/v1/streaming/health; sidekiq has no HTTP endpoint and is checked
    with an exec command that looks for the sidekiq process (or its started marker)."""
    c = s.container
    assert c is not None
    role = c.role or ""
    port_wanted = ctx.config.web_port if role == "web" else ctx.config.streaming_port
    for kind, probe in iter_probes(c):
        if role == "sidekiq":
            cmd = " ".join(map(str, (probe.get("exec") or {}).get("command") or []))
            if "sidekiq" not in cmd:
                yield Hit(f"{kind} does not run an exec command that checks sidekiq",
                          c.field(kind))
            continue
        http, tcp = probe.get("httpGet"), probe.get("tcpSocket")
        if isinstance(http, dict):
            path = str(http.get("path", "/"))
            if path != _HEALTH[role]:
                yield Hit(f"{kind} requests {path}, not {_HEALTH[role]}",
                          c.field(kind, "httpGet", "path"))
            if resolve_port(c, http.get("port")) != port_wanted:
                yield Hit(f"{kind} targets port {http.get('port')}, not {port_wanted}",
                          c.field(kind, "httpGet", "port"))
        elif isinstance(tcp, dict) and kind == "livenessProbe":
            if resolve_port(c, tcp.get("port")) != port_wanted:
                yield Hit(f"{kind} targets port {tcp.get('port')}, not {port_wanted}",
                          c.field(kind, "tcpSocket", "port"))
        else:
            yield Hit(f"{kind} does not request {_HEALTH[role]} over HTTP", c.field(kind))


@rule("MSTDN-WL-005", E, "Images carry an explicit tag that is not latest",
      profile="baseline", kinds=WORKLOAD_KINDS, scope="container",
      remediation="Pin every image to an explicit version tag (or a digest), never latest.",
      refs=("kube-score container-image-tag", "Polaris tagNotSpecified", "kube-linter latest-tag",
            "Kyverno best-practices/disallow-latest-tag", "Checkov CKV_K8S_14/CKV_K8S_43"))
def image_tag(s: Subject, ctx: Context) -> Iterator[Hit]:
    """An image without a tag, or tagged latest, changes under the deployment on the
    next pull; upgrades must be explicit edits."""
    c = s.container
    assert c is not None
    img = c.image
    if not img.repo:
        yield Hit("sets no image", c.field("image"))
    elif img.digest:
        return
    elif img.tag is None:
        yield Hit(f"image {img.ref} has no tag", c.field("image"))
    elif img.tag == "latest":
        yield Hit(f"image {img.ref} uses the latest tag", c.field("image"))


@rule("MSTDN-WL-006", E, "No environment variable is defined twice with different values",
      profile="baseline", kinds=WORKLOAD_KINDS, scope="container",
      remediation="Define each variable once: remove the duplicate from env[] or from the "
                  "ConfigMap/Secret it shadows.",
      refs=("kube-score environment-variable-key-duplication", "kube-linter duplicate-env-var"))
def env_duplicates(s: Subject, ctx: Context) -> Iterator[Hit]:
    """A variable defined twice resolves silently to the last definition (env[] wins
    over envFrom, later envFrom wins over earlier), so the value that reaches the
    process is not the one a reader sees first."""
    c = s.container
    assert c is not None
    env = ctx.env(c)
    seen_literal: dict[str, int] = {}
    for i, entry in enumerate(c.data.get("env") or []):
        name = entry.get("name") if isinstance(entry, dict) else None
        if name in seen_literal:
            yield Hit(f"env[] defines {name} twice (env[{seen_literal[name]}] and env[{i}])",
                      c.field("env", i))
        elif name:
            seen_literal[name] = i
    if len(env.vars) == len(env.definitions):
        return  # no name defined twice (the usual case: the loop below is not needed)
    by_name: dict[str, list[Any]] = {}
    for var in env.definitions:
        by_name.setdefault(var.name, []).append(var)
    for name, defs in by_name.items():
        winner = defs[-1]
        for d in defs[:-1]:
            if not (d.via_env_from or winner.via_env_from):
                continue  # env[] twice: reported above
            if d.known_value and winner.known_value and d.value == winner.value:
                continue
            same = "" if d.known_value and winner.known_value else " (values not comparable)"
            yield Hit(f"{name} is set by {d.describe()} and by {winner.describe()}{same}; "
                      f"the latter wins", winner.path)
            break


@rule("MSTDN-WL-007", W, "Services are ClusterIP; exposure is through the Ingress only",
      profile="baseline", kinds=("Service",),
      remediation="Use type ClusterIP (the default) and expose the service through the "
                  "Ingress.",
      refs=("kube-score service-type", "Kyverno best-practices/restrict-node-port"))
def service_type(s: Subject, ctx: Context) -> Iterator[Hit]:
    """NodePort and LoadBalancer services bypass the Ingress, its TLS and its redirect."""
    kind = s.obj.get("spec", "type") or "ClusterIP"
    if kind != "ClusterIP":
        yield Hit(f"Service is type {kind}", ("spec", "type"))


@rule("MSTDN-WL-008", INFO, "A NetworkPolicy restricts who reaches PostgreSQL and Redis",
      profile="hardened", kinds=WORKLOAD_KINDS, applies=has_role_container("postgres", "redis"),
      remediation="Add a NetworkPolicy selecting the pod that runs PostgreSQL/Redis and "
                  "admitting only the Mastodon pod and the migration step.",
      refs=("kube-score pod-networkpolicy", "Polaris missingNetworkPolicy", "Checkov CKV2_K8S_6"))
def network_policy(s: Subject, ctx: Context) -> Iterator[Hit]:
    """The databases hold every account and every queued job; nothing else in the
    cluster needs to reach them, and without a policy any compromised pod can. Depends on
    the cluster: only a CNI that enforces NetworkPolicy applies it."""
    labels = pod_template_labels(s.obj)
    for np in ctx.bundle.in_namespace("NetworkPolicy", s.obj.namespace):
        types = np.get("spec", "policyTypes") or ["Ingress"]
        if "Ingress" in types and selector_matches(np.get("spec", "podSelector") or {}, labels):
            return
    yield Hit("no NetworkPolicy with an Ingress section selects this pod, which runs "
              "PostgreSQL/Redis", (*(pod_spec_path(s.obj) or ())[:-1], "metadata", "labels"))


@rule("MSTDN-WL-009", W, "Pods do not mount a service account token",
      profile="hardened", kinds=WORKLOAD_KINDS,
      remediation="Set automountServiceAccountToken: false in the pod spec (or on its "
                  "ServiceAccount).",
      refs=("Polaris automountServiceAccountToken", "Checkov CKV_K8S_38"))
def sa_token(s: Subject, ctx: Context) -> Iterator[Hit]:
    """Mastodon never talks to the Kubernetes API; a mounted token is only useful to an
    attacker who got code execution in the pod."""
    spec = pod_spec(s.obj) or {}
    path = (*(pod_spec_path(s.obj) or ()), "automountServiceAccountToken")
    value = spec.get("automountServiceAccountToken")
    if value is False:
        return
    if value is None:
        sa_name = spec.get("serviceAccountName") or "default"
        sa = ctx.bundle.find("ServiceAccount", s.obj.namespace, sa_name)
        if sa is not None and sa.data.get("automountServiceAccountToken") is False:
            return
        yield Hit(f"automountServiceAccountToken is not false (ServiceAccount {sa_name} "
                  f"does not disable it either)", path)
    else:
        yield Hit("automountServiceAccountToken is true", path)


@rule("MSTDN-WL-010", E, "Objects validate strictly against the target Kubernetes version",
      profile="baseline", kinds=None,
      remediation="Fix the field named in the message so the object validates strictly for "
                  "the target Kubernetes version; for a custom resource, add or correct its "
                  "schema under manifests/schemas/<group>/<kind>.json.",
      refs=("kube-score stable-version", "kube-linter schema-validation",
            "Kyverno best-practices/check-deprecated-apis", "kubernetes-validate --strict"))
def schema_valid(s: Subject, ctx: Context) -> Iterator[Hit]:
    """Every object is validated strictly (unknown fields are errors, as with kubectl's
    default --validate=strict) against the schemas of the stated Kubernetes version;
    custom resources against the project-written schemas. A kind without any schema
    and an object defined twice in one bundle are findings too. Otherwise the apply is
    refused (or a field silently dropped). Depends on the cluster's Kubernetes version
    (--kube-version)."""
    for first, dup in ctx.bundle.duplicates:
        if dup is s.obj:
            yield Hit(f"defined twice: {dup.source} document {dup.doc + 1} repeats "
                      f"{first.source} document {first.doc + 1}")
    for problem in validate_object(s.obj.data, ctx.kube_version, schema_dir=ctx.schema_dir):
        where = ".".join(str(p) for p in problem.path)
        yield Hit(f"{where + ': ' if where else ''}{problem.message}", problem.path)
