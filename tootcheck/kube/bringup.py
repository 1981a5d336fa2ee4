"""The kind bring-up: run :data:`tootcheck.kube.plan.KIND_PLAN` phase by phase.

Each phase has a ``run`` (do it, then wait for its readiness condition through
:func:`tootcheck.kube.waits.wait_ready`) and, where state can tell, a ``done``
check used with ``--reuse-cluster`` to skip work already done. A line per phase
is printed as it runs; timings go to ``reports/timings.json``. Every external
call is bounded; every failure is one line naming the phase and what was seen.

The logic worth testing without Docker lives in the pure modules this one
calls (plan, readiness, objects, kindconfig, images, accounts, safety); the
phase functions here are thin glue, exercised against a fake cluster in
``tests/kube/test_bringup.py``.
"""

from __future__ import annotations

import datetime as dt
import shutil
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pytest_kind import KindCluster

from tootcheck import secretgen
from tootcheck.clients.pinning import PinMap
from tootcheck.errors import BadInput, ToolMissing
from tootcheck.kube import accounts as acct
from tootcheck.kube import images as img
from tootcheck.kube import kindconfig, objects, plan, safety
from tootcheck.kube import timings as timing_file
from tootcheck.kube.apply import SAFE_DUMPER, ApplyError, apply_documents, images, split_documents
from tootcheck.kube.readiness import Readiness, endpoints_readiness
from tootcheck.kube.waits import Watch, wait_for, wait_ready
from tootcheck.redaction import Secret, redact
from tootcheck.settings import REPO_ROOT, Settings
from tootcheck.target import Account, Target
from tootcheck.waiting import wait_until

KIND_CONFIG = REPO_ROOT / "manifests" / "kind" / "cluster.yaml"
BLUEPRINT = REPO_ROOT / "manifests" / "infra" / "authentik" / "blueprints" / "mastodon.yaml"
KIND_TIMEOUT_S = 900.0
MASTODON_POD = "app.kubernetes.io/name=mastodon,app.kubernetes.io/controller=mastodon"
HTTP_TIMEOUT_S = 15.0
BLUEPRINT_NUDGE_S = 20.0


class BringUpFailed(BadInput):
    """A phase failed; the message names the phase and the last state."""


# ------------------------------------------------------------------ kind


class SuiteKindCluster(KindCluster):
    """pytest-kind's KindCluster with bounded subprocesses and one-line errors.

    It never downloads kind or kubectl (scripts/bootstrap-tools does, verified),
    creates the cluster only through :meth:`create`, and can export the
    kubeconfig of an existing cluster for ``--reuse-cluster``.
    """

    def __init__(self, name: str, kubeconfig: Path, kind_path: Path, kubectl_path: Path) -> None:
        super().__init__(name, kubeconfig=kubeconfig, kind_path=kind_path, kubectl_path=kubectl_path)

    def ensure_kind(self) -> None:
        if not Path(self.kind_path).exists():
            raise ToolMissing("kind", f"{self.kind_path} does not exist", "run `make tools`")

    def _kind(self, *args: str, timeout: float = KIND_TIMEOUT_S) -> str:
        self.ensure_kind()
        cmd = [str(self.kind_path), *args]
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
        except subprocess.TimeoutExpired:
            raise BadInput(f"`kind {args[0]} {args[1] if len(args) > 1 else ''}` took longer than "
                           f"{timeout:.0f}s") from None
        if done.returncode != 0:
            lines = [ln.strip() for ln in (done.stderr or done.stdout).splitlines() if ln.strip()]
            raise BadInput(f"`kind {' '.join(args[:2])}` failed: {lines[-1] if lines else done.returncode}")
        return done.stdout

    def clusters(self) -> list[str]:
        return [ln.strip() for ln in self._kind("get", "clusters", timeout=60).splitlines() if ln.strip()]

    def exists(self) -> bool:
        return self.name in self.clusters()

    def create(self, config_file: str | Path | None = None) -> None:
        self.kubeconfig_path.parent.mkdir(parents=True, exist_ok=True)
        args = ["create", "cluster", f"--name={self.name}", f"--kubeconfig={self.kubeconfig_path}"]
        if config_file:
            args += ["--config", str(config_file)]
        self._kind(*args)

    def export_kubeconfig(self) -> None:
        self.kubeconfig_path.parent.mkdir(parents=True, exist_ok=True)
        self._kind("export", "kubeconfig", f"--name={self.name}", f"--kubeconfig={self.kubeconfig_path}",
                   timeout=60)

    def delete(self) -> None:
        self._kind("delete", "cluster", f"--name={self.name}", f"--kubeconfig={self.kubeconfig_path}",
                   timeout=300)


def run_kind_config(config: Mapping[str, Any], https_port: int, http_port: int) -> dict[str, Any]:
    """The kind config with the host ports of the 443/80 mappings substituted (pure);
    manifests/kind/cluster.yaml names exactly these two substitution points."""
    out = yaml.safe_load(yaml.safe_dump(dict(config)))
    for node in out.get("nodes") or []:
        for mapping in node.get("extraPortMappings") or []:
            if mapping.get("containerPort") == 443:
                mapping["hostPort"] = https_port
            elif mapping.get("containerPort") == 80:
                mapping["hostPort"] = http_port
    return out


# ------------------------------------------------------------------ progress


class Progress:
    """One line per phase: the name when it starts, the outcome when it ends."""

    def __init__(self, write: Callable[[str], None], newline: Callable[[], None] = lambda: None,
                 finish: Callable[[], None] = lambda: None) -> None:
        self._write = write
        self._newline = newline
        self.finish = finish  # called once the phases of a fixture are through

    def start(self, index: int, total: int, name: str) -> None:
        self._newline()
        self._write(f"bring-up [{index:2}/{total}] {name:18} ")

    def end(self, seconds: float, action: str, note: str) -> None:
        self._write(f"{seconds:7.1f}s {action}{': ' + note if note else ''}\n")


class LineProgress(Progress):
    """For tests and plain output: each phase as one complete line."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self._pending = ""
        super().__init__(self._collect)

    def _collect(self, text: str) -> None:
        self._pending += text
        if self._pending.endswith("\n"):
            self.lines.append(self._pending.rstrip("\n"))
            self._pending = ""


# ------------------------------------------------------------------ context


@dataclass
class Rendered:
    path: str
    docs: list[dict[str, Any]]
    file: Path
    digest: str


@dataclass
class Context:
    settings: Settings
    cluster: SuiteKindCluster
    progress: Progress
    out_dir: Path  # reports/bringup
    cache_dir: Path  # .cache/kind/<cluster>
    run_id: str
    timings: plan.Timings = field(default_factory=plan.Timings)
    kube: Any = None
    reused: bool = False
    created: bool = False
    secrets: secretgen.SecretSet | None = None
    renders: dict[str, Rendered] = field(default_factory=dict)
    state: dict[str, str] = field(default_factory=dict)
    kind_config: dict[str, Any] = field(default_factory=dict)
    ca_file: Path | None = None
    accounts: dict[str, Account] = field(default_factory=dict)
    image_report: img.PreloadReport | None = None
    docker: Path | None = None
    connect: Callable[[Path, str], Any] | None = None  # (kubeconfig, context) -> Kube
    render_fn: Callable[[Path], str] | None = None  # kustomization dir -> YAML (tests swap it)
    last_nudge: float = -BLUEPRINT_NUDGE_S
    # a rehearsal on a production copy: the operator's data keys replace generated ones
    secret_overrides: Mapping[str, str] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.cluster.name

    @property
    def context_name(self) -> str:
        return safety.kind_context(self.cluster.name)

    @property
    def kubeconfig(self) -> Path:
        return Path(self.cluster.kubeconfig_path)

    def render(self, path: str) -> Rendered:
        try:
            return self.renders[path]
        except KeyError:
            raise BringUpFailed(f"no render of {path} (the render phase did not run?)") from None

    def docs(self, *paths: str) -> list[dict[str, Any]]:
        return [d for p in paths for d in self.render(p).docs]

    def target(self, created_by_suite: bool = False) -> Target:
        """The Target as far as the bring-up knows it now."""
        hosts = [self.settings.domain, self.settings.auth_host]
        hosts += [h for h in kindconfig.served_hosts(d for r in self.renders.values() for d in r.docs)
                  if h not in hosts]
        pins = kindconfig.pins(self.kind_config, hosts) if self.kind_config else PinMap()
        return Target(
            name=f"kind://{self.name}", domain=self.settings.domain, ca_file=self.ca_file, pins=pins,
            auth_host=self.settings.auth_host, oidc_issuer=self.settings.oidc_issuer,
            accounts=dict(self.accounts), kubeconfig=self.kubeconfig, kube_context=self.context_name,
            namespace=self.settings.namespace, created_by_suite=created_by_suite)


@dataclass(frozen=True)
class Impl:
    run: Callable[[Context, plan.Phase], str]
    done: Callable[[Context, plan.Phase], bool] | None = None


# ------------------------------------------------------------------ helpers


def now_utc() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def apply_docs(ctx: Context, docs: Sequence[dict[str, Any]]) -> int:
    from kubernetes.client import ApiException

    return len(apply_documents(ctx.kube, list(docs), api_errors=(ApiException,)))


def record(ctx: Context, phase: plan.Phase, digest: str = "done") -> None:
    """Remember in the cluster that ``phase`` is done (with the render digest)."""
    ctx.state[plan.STATE_KEY_PREFIX + phase.name] = digest
    ctx.state["last-run"] = ctx.run_id
    ctx.kube.apply(objects.state_configmap(ctx.state))


def phase_digest(ctx: Context, phase: plan.Phase) -> str:
    return plan.render_digest(ctx.render(p).digest for p in phase.paths)


def current(ctx: Context, phase: plan.Phase) -> bool:
    return plan.is_phase_current(ctx.state, phase.name, phase_digest(ctx, phase) if phase.paths else None)


def transient_errors() -> tuple[type[BaseException], ...]:
    """API errors a wait polls through (a busy API server on a 2-core runner answers
    5xx or drops a connection now and then); the bound and the last state still hold."""
    from kubernetes.client import ApiException
    from urllib3.exceptions import HTTPError

    return (ApiException, HTTPError)


def poll_once(condition: Callable[[], Readiness]) -> bool:
    try:
        return condition().ready
    except Exception:
        return False


def watches_ready(ctx: Context, watches: Sequence[Watch]) -> Readiness:
    from tootcheck.kube.readiness import all_ready

    objs = []
    for watch in watches:
        found = watch.fetch(ctx.kube)
        if not found:
            return Readiness(False, f"{watch.describe()}: not found")
        objs.extend(found)
    return all_ready(objs, what="objects")


def http_readiness(ctx: Context, url: str, *, expect: Callable[[Any], str | None],
                   headers: Mapping[str, str] | None = None) -> Readiness:
    """GET ``url`` through the pinned, CA-scoped session; ``expect`` names a problem."""
    import requests

    try:
        with ctx.target().http() as session:
            response = session.get(url, headers=dict(headers or {}), timeout=HTTP_TIMEOUT_S,
                                   allow_redirects=False)
    except requests.RequestException as exc:
        return Readiness(False, f"GET {url}: {type(exc).__name__}: {str(exc)[:160]}")
    problem = expect(response)
    return Readiness(problem is None, problem or f"GET {url}: {response.status_code}")


# ------------------------------------------------------------------ phases


def run_cluster(ctx: Context, phase: plan.Phase) -> str:
    settings = ctx.settings
    exists = ctx.cluster.exists()
    if exists and not settings.reuse_cluster:
        raise BringUpFailed(f"kind cluster {ctx.name!r} already exists: pass --reuse-cluster to use "
                            f"it, or delete it with `kind delete cluster --name {ctx.name}`")
    try:
        base = yaml.safe_load(KIND_CONFIG.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise BringUpFailed(f"{KIND_CONFIG}: {exc}") from None
    kindconfig.validate(base, str(KIND_CONFIG))
    ctx.kind_config = run_kind_config(base, settings.https_port, settings.http_port)
    config_file = ctx.cache_dir / "kind-config.yaml"
    if exists:
        if config_file.is_file():  # the ports this cluster was created with win
            ctx.kind_config = yaml.safe_load(config_file.read_text())
        ctx.cluster.export_kubeconfig()
        ctx.reused = True
        note = "reused the existing cluster"
    else:
        config_file.parent.mkdir(parents=True, exist_ok=True)
        config_file.write_text(yaml.safe_dump(ctx.kind_config, sort_keys=False))
        ctx.cluster.create(config_file)
        ctx.created = True
        note = f"created ({kindconfig.node_image(ctx.kind_config) or 'default node image'})"
    assert ctx.connect is not None
    ctx.kube = wait_until(lambda: ctx.connect(ctx.kubeconfig, ctx.context_name),
                          what=f"API server of kind cluster {ctx.name}", timeout=120, interval=2.0,
                          retry_on=(BadInput,))
    if ctx.created:
        ctx.kube.apply(safety.marker(ctx.name, ctx.run_id, now_utc()))
    state = ctx.kube.get("v1", "ConfigMap", objects.STATE, objects.SUITE_NAMESPACE)
    ctx.state = dict((state or {}).get("data") or {})
    return f"{note}; kubeconfig {ctx.kubeconfig}"


def run_secrets(ctx: Context, phase: plan.Phase) -> str:
    stored = objects.decode_data(ctx.kube.get("v1", "Secret", objects.RUN_SECRETS, objects.SUITE_NAMESPACE))
    values, generated = secretgen.complete(stored)
    if generated:
        ctx.kube.apply(objects.run_secrets(values))
    if ctx.secret_overrides:  # never stored: the run's Secret keeps the generated values
        values = secretgen.SecretSet({**values.values, **{
            k: Secret(v, k) for k, v in ctx.secret_overrides.items()}})
    ctx.secrets = values
    kept = len(values) - len(generated)
    return f"{len(generated)} generated, {kept} read back" if kept else f"{len(generated)} generated"


def run_render(ctx: Context, phase: plan.Phase) -> str:
    from tootcheck.rehearsal.run import mastodon_render
    from tootcheck.rendering import render

    assert ctx.secrets is not None
    render_fn = ctx.render_fn or (lambda directory: render(directory, timeout=600))
    total = 0
    for path in phase.paths:
        # A rehearsal deploys the overlay at FROM first (images, and the chart if it changes).
        rehearsal = mastodon_render(ctx.settings) if path == "manifests/overlays/kind" else None
        text = rehearsal if rehearsal is not None else render_fn(REPO_ROOT / path)
        docs = split_documents(text, path)
        if path == "manifests/overlays/kind":
            docs = objects.with_env(docs, {"VAPID_PUBLIC_KEY": ctx.secrets.vapid_public_key})
        applied = yaml.dump_all(docs, Dumper=SAFE_DUMPER, sort_keys=False)
        out = ctx.out_dir / "render" / (path.removeprefix("manifests/").replace("/", "-") + ".yaml")
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(applied)
        ctx.renders[path] = Rendered(path, docs, out, plan.render_digest([applied]))
        total += len(docs)
    return f"{len(phase.paths)} kustomizations, {total} objects (applied copies in {ctx.out_dir / 'render'})"


def wanted_images(ctx: Context) -> list[str]:
    from tootcheck.rehearsal.run import rehearsal_images

    wanted = images([d for r in ctx.renders.values() for d in r.docs])
    # A rehearsal also preloads TO's images, so the measured downtime excludes pulling them.
    return wanted + [i for i in rehearsal_images(ctx.settings) if i not in wanted]


def missing_images(ctx: Context) -> list[str]:
    present = img.node_image_names(ctx.kube.list("v1", "Node"))
    return img.missing_on_node(wanted_images(ctx), present)


def run_images(ctx: Context, phase: plan.Phase) -> str:
    wanted = wanted_images(ctx)
    missing = missing_images(ctx)
    report = img.PreloadReport(wanted=len(wanted), already_on_node=len(wanted) - len(missing),
                               images=list(wanted))
    ctx.image_report = report
    if missing:
        docker = ctx.docker or shutil.which("docker")
        if docker is None:
            raise ToolMissing("docker", "needed to pull and load images")
        img.preload(missing, docker=Path(docker), kind=Path(ctx.cluster.kind_path), cluster=ctx.name,
                    report=report)
    return report.summary()


def done_images(ctx: Context, phase: plan.Phase) -> bool:
    return not missing_images(ctx)


NODE_WATCHES = (Watch("v1", "Node"), Watch("apps/v1", "DaemonSet", "kube-system"))


def run_nodes(ctx: Context, phase: plan.Phase) -> str:
    return wait_ready(ctx.kube, NODE_WATCHES, what="nodes and kube-system DaemonSets",
                      timeout=phase.timeout, retry_on=transient_errors()).reason


def done_nodes(ctx: Context, phase: plan.Phase) -> bool:
    return poll_once(lambda: watches_ready(ctx, NODE_WATCHES))


def _apply_and_wait(ctx: Context, phase: plan.Phase, watches: Sequence[Watch],
                    extra: Callable[[], Readiness] | None = None) -> str:
    count = apply_docs(ctx, ctx.docs(*phase.paths))
    verdict = wait_ready(ctx.kube, watches, what=f"{phase.name}: {phase.ready}", timeout=phase.timeout,
                         extra=extra, retry_on=transient_errors())
    record(ctx, phase, phase_digest(ctx, phase))
    return f"{count} objects applied; {verdict.reason}"


def _done_when(watches: Sequence[Watch], extra: Callable[[Context], Readiness] | None = None,
               ) -> Callable[[Context, plan.Phase], bool]:
    def done(ctx: Context, phase: plan.Phase) -> bool:
        if not current(ctx, phase):
            return False
        if not poll_once(lambda: watches_ready(ctx, watches)):
            return False
        return extra is None or poll_once(lambda: extra(ctx))
    return done


COREDNS_WATCHES = (Watch("apps/v1", "Deployment", "kube-system", "coredns"),)


def run_coredns(ctx: Context, phase: plan.Phase) -> str:
    count = apply_docs(ctx, ctx.docs(*phase.paths))
    # Restart now instead of waiting for the reload plugin (~30 s): a template annotation.
    ctx.kube.apply({"apiVersion": "apps/v1", "kind": "Deployment",
                    "metadata": {"name": "coredns", "namespace": "kube-system"},
                    "spec": {"template": {"metadata": {"annotations": {
                        "tootcheck/restarted-at": now_utc()}}}}})
    verdict = wait_ready(ctx.kube, COREDNS_WATCHES, what="CoreDNS rollout", timeout=phase.timeout,
                         retry_on=transient_errors())
    record(ctx, phase, phase_digest(ctx, phase))
    return f"{count} objects applied, restarted; {verdict.reason}"


def webhook_endpoints(ctx: Context) -> Readiness:
    slices = ctx.kube.list("discovery.k8s.io/v1", "EndpointSlice", "cert-manager",
                           label_selector="kubernetes.io/service-name=cert-manager-webhook")
    verdict = endpoints_readiness(slices)
    return Readiness(verdict.ready, f"webhook: {verdict.reason}")


CERT_MANAGER_WATCHES = (Watch("apps/v1", "Deployment", "cert-manager"),)


def run_cert_manager(ctx: Context, phase: plan.Phase) -> str:
    return _apply_and_wait(ctx, phase, CERT_MANAGER_WATCHES, extra=lambda: webhook_endpoints(ctx))


ISSUER_WATCHES = (
    Watch("cert-manager.io/v1", "ClusterIssuer", name="tootcheck-selfsigned"),
    Watch("cert-manager.io/v1", "Certificate", "cert-manager", "tootcheck-root-ca"),
    Watch("cert-manager.io/v1", "ClusterIssuer", name="kirchner-social-issuer"),
)


def run_issuers(ctx: Context, phase: plan.Phase) -> str:
    docs = ctx.docs(*phase.paths)
    # The webhook may refuse for a short while after its endpoint appears (its CA is
    # injected by cainjector): retry the apply, bounded.
    def applied() -> Readiness:
        try:
            return Readiness(True, f"{apply_docs(ctx, docs)} objects applied")
        except ApplyError as exc:
            return Readiness(False, str(exc))

    note = wait_for(applied, what="issuers accepted by the cert-manager webhook", timeout=180,
                    interval=3.0).reason
    verdict = wait_ready(ctx.kube, ISSUER_WATCHES, what="issuers and the root CA", timeout=phase.timeout,
                         retry_on=transient_errors())
    ensure_ca(ctx)
    record(ctx, phase, phase_digest(ctx, phase))
    return f"{note}; {verdict.reason}; CA in {ctx.ca_file}"


def ensure_ca(ctx: Context) -> Path:
    """Copy ca.crt (never tls.key) of the test root CA into the run's CA file."""
    namespace, name = objects.CA_SOURCE
    data = (ctx.kube.get("v1", "Secret", name, namespace) or {}).get("data") or {}
    if "ca.crt" not in data:
        raise BringUpFailed(f"Secret {namespace}/{name} has no ca.crt yet")
    pem = objects.decode_data({"data": {"ca.crt": data["ca.crt"]}})["ca.crt"]
    path = ctx.cache_dir / "ca.crt"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(pem)
    ctx.ca_file = path
    return path


STORAGE_WATCHES = (Watch("apps/v1", "Deployment", "nfs", "nfs-server"),
                   Watch("storage.k8s.io/v1", "StorageClass", name="nfs-csi"))
TRAEFIK_WATCHES = (Watch("apps/v1", "Deployment", "traefik"),)


def run_storage(ctx: Context, phase: plan.Phase) -> str:
    return _apply_and_wait(ctx, phase, STORAGE_WATCHES)


def run_traefik(ctx: Context, phase: plan.Phase) -> str:
    return _apply_and_wait(ctx, phase, TRAEFIK_WATCHES)


def _same_secret(ctx: Context, expected: Mapping[str, Any]) -> bool:
    meta = expected["metadata"]
    live = ctx.kube.get("v1", "Secret", meta["name"], meta["namespace"])
    return bool(live) and (live.get("data") or {}) == expected["data"]


def authentik_secret(ctx: Context) -> dict[str, Any]:
    assert ctx.secrets is not None
    return objects.authentik_bootstrap(ctx.secrets, ctx.settings.domain)


def run_authentik_secrets(ctx: Context, phase: plan.Phase) -> str:
    namespaces = objects.namespace_docs(ctx.docs("manifests/infra/authentik"), "authentik")
    count = apply_docs(ctx, [*namespaces, authentik_secret(ctx)])
    return f"{count} objects applied (Secret authentik/{objects.AUTHENTIK_SECRET})"


def done_authentik_secrets(ctx: Context, phase: plan.Phase) -> bool:
    return _same_secret(ctx, authentik_secret(ctx))


AUTHENTIK_WATCHES = (
    Watch("apps/v1", "StatefulSet", "authentik", "authentik-postgresql"),
    Watch("apps/v1", "Deployment", "authentik"),
    Watch("cert-manager.io/v1", "Certificate", "authentik", "auth-kirchner-social-tls"),
)


def blueprint_name(text: str) -> str:
    """metadata.name of an Authentik blueprint, whose custom tags (!Env, !Find...) a
    plain YAML loader refuses; they are read as plain values here."""
    class Loader(yaml.SafeLoader):
        pass

    Loader.add_multi_constructor("!", lambda loader, suffix, node: None)
    data = yaml.load(text, Loader=Loader)
    return str(((data or {}).get("metadata") or {}).get("name") or "")


def nudge_blueprint(ctx: Context) -> str:
    """Ask Authentik to apply the Mastodon blueprint again (bounded, best effort):
    on a fresh instance its first apply can precede the default flows it finds."""
    now = time.monotonic()
    if now - ctx.last_nudge < BLUEPRINT_NUDGE_S:
        return ""
    ctx.last_nudge = now
    assert ctx.secrets is not None
    token = ctx.secrets["AUTHENTIK_BOOTSTRAP_TOKEN"].reveal()
    base = f"https://{ctx.settings.auth_host}/api/v3/managed/blueprints/"
    headers = {"Authorization": f"Bearer {token}"}
    try:
        with ctx.target().http() as session:
            listed = session.get(base, params={"name": blueprint_name(BLUEPRINT.read_text())},
                                 headers=headers, timeout=HTTP_TIMEOUT_S)
            results = (listed.json().get("results") or []) if listed.status_code == 200 else []
            if not results:
                return f"blueprint not discovered yet ({listed.status_code})"
            instance = results[0]
            applied = session.post(f"{base}{instance['pk']}/apply/", headers=headers,
                                   timeout=HTTP_TIMEOUT_S)
        return f"blueprint status {instance.get('status')}, re-apply {applied.status_code}"
    except Exception as exc:  # a nudge is best effort; the discovery check decides
        return f"blueprint nudge failed: {type(exc).__name__}"


def oidc_discovery(ctx: Context, nudge: bool = True) -> Readiness:
    issuer = ctx.settings.oidc_issuer
    url = issuer.rstrip("/") + "/.well-known/openid-configuration"

    def expect(response: Any) -> str | None:
        if response.status_code != 200:
            return f"discovery {response.status_code}"
        try:
            got = response.json().get("issuer")
        except ValueError:
            return "discovery answered non-JSON"
        return None if got == issuer else f"discovery issuer {got!r}, expected {issuer!r}"

    verdict = http_readiness(ctx, url, expect=expect)
    if not verdict.ready and nudge:
        note = nudge_blueprint(ctx)
        if note:
            return Readiness(False, f"{verdict.reason}; {note}")
    return verdict


def run_authentik(ctx: Context, phase: plan.Phase) -> str:
    ensure_ca(ctx)
    return _apply_and_wait(ctx, phase, AUTHENTIK_WATCHES, extra=lambda: oidc_discovery(ctx))


def mastodon_inputs(ctx: Context) -> list[dict[str, Any]]:
    assert ctx.secrets is not None
    ca = ensure_ca(ctx).read_text()
    return [*objects.namespace_docs(ctx.docs("manifests/overlays/kind"), "mastodon"),
            objects.mastodon_secrets(ctx.secrets), objects.ca_configmap(ca)]


def run_mastodon_secrets(ctx: Context, phase: plan.Phase) -> str:
    count = apply_docs(ctx, mastodon_inputs(ctx))
    return f"{count} objects applied (Secret {objects.MASTODON_SECRET}, ConfigMap {objects.CA_CONFIGMAP})"


def done_mastodon_secrets(ctx: Context, phase: plan.Phase) -> bool:
    docs = mastodon_inputs(ctx)
    secret = next(d for d in docs if d["kind"] == "Secret")
    ca = next(d for d in docs if d["kind"] == "ConfigMap")
    live_ca = ctx.kube.get("v1", "ConfigMap", ca["metadata"]["name"], "mastodon")
    return _same_secret(ctx, secret) and bool(live_ca) and live_ca.get("data") == ca["data"]


def mastodon_watches(ctx: Context) -> tuple[Watch, ...]:
    ns = ctx.settings.namespace
    return (Watch("apps/v1", "Deployment", ns, "mastodon"),
            Watch("v1", "Pod", ns, selector=MASTODON_POD),
            Watch("v1", "PersistentVolumeClaim", ns),
            Watch("cert-manager.io/v1", "Certificate", ns, "kirchner-social-tls"))


def mastodon_health(ctx: Context) -> Readiness:
    def expect(response: Any) -> str | None:
        return None if response.status_code == 200 else f"/health answered {response.status_code}"

    return http_readiness(ctx, f"https://{ctx.settings.domain}/health", expect=expect)


def run_mastodon(ctx: Context, phase: plan.Phase) -> str:
    return _apply_and_wait(ctx, phase, mastodon_watches(ctx), extra=lambda: mastodon_health(ctx))


def done_mastodon(ctx: Context, phase: plan.Phase) -> bool:
    return _done_when(mastodon_watches(ctx), mastodon_health)(ctx, phase)


def verify_token(ctx: Context, token: Secret, username: str) -> str | None:
    """None when the token authenticates as ``username``, else the problem."""
    import requests

    url = f"https://{ctx.settings.domain}/api/v1/accounts/verify_credentials"
    try:
        with ctx.target().http() as session:
            response = session.get(url, headers={"Authorization": f"Bearer {token.reveal()}"},
                                   timeout=HTTP_TIMEOUT_S)
    except requests.RequestException as exc:
        return f"{username}: verify_credentials: {type(exc).__name__}"
    if response.status_code != 200:
        return f"{username}: verify_credentials answered {response.status_code}"
    got = (response.json() or {}).get("username")
    return None if got == username else f"token authenticates as {got!r}, not {username!r}"


def load_accounts(ctx: Context) -> dict[str, Account]:
    stored = objects.decode_data(
        ctx.kube.get("v1", "Secret", objects.ACCOUNTS_SECRET, ctx.settings.namespace))
    out: dict[str, Account] = {}
    for spec in acct.account_specs(ctx.settings.domain):
        fields = acct.stored_accounts(stored).get(spec.role) or {}
        if fields.get("username") != spec.username or not fields.get("token"):
            continue
        password = fields.get("password")
        out[spec.role] = Account(
            spec.username, Secret(fields["token"], f"token:{spec.username}"), spec.email,
            Secret(password, f"password:{spec.username}") if password else None)
    return out


def oidc_account(ctx: Context) -> Account:
    assert ctx.secrets is not None
    return Account(objects.OIDC_USERNAME, None, f"{objects.OIDC_USERNAME}@{ctx.settings.domain}",
                   ctx.secrets["OIDC_TEST_USER_PASSWORD"])


def done_accounts(ctx: Context, phase: plan.Phase) -> bool:
    found = load_accounts(ctx)
    if set(found) != {s.role for s in acct.account_specs(ctx.settings.domain)}:
        return False
    if any(verify_token(ctx, a.token, a.username) for a in found.values() if a.token):
        return False
    ctx.accounts = {**found, "oidc": oidc_account(ctx)}
    return True


def run_accounts(ctx: Context, phase: plan.Phase) -> str:
    from tootcheck.kube.pods import ready_pod

    ns = ctx.settings.namespace
    specs = acct.account_specs(ctx.settings.domain)
    pod = ready_pod(ctx.kube, ns, MASTODON_POD)
    previous = load_accounts(ctx)
    created, existing = [], []
    passwords: dict[str, Secret] = {}
    for spec in specs:
        done = ctx.kube.exec(ns, pod, "web", acct.tootctl_create(spec), timeout=300)
        outcome = acct.parse_create(spec.username, done.rc, done.stdout, done.stderr)
        if outcome.created and outcome.password is not None:
            created.append(spec.username)
            passwords[spec.role] = outcome.password
        elif outcome.exists:
            existing.append(spec.username)
            if spec.role in previous and previous[spec.role].password is not None:
                passwords[spec.role] = previous[spec.role].password  # type: ignore[assignment]
        else:
            raise BringUpFailed(f"tootctl accounts create {spec.username}: {outcome.problem}")
    contact = next((s.email for s in specs if s.owner), None)
    minted = ctx.kube.exec(ns, pod, "web", acct.mint_tokens_argv(specs, contact), timeout=600)
    tokens, missing = acct.parse_tokens(minted.stdout, [s.username for s in specs])
    if missing:
        last = (minted.stderr.strip().splitlines() or [f"exit {minted.rc}"])[-1]
        raise BringUpFailed(f"token minting gave no token for {', '.join(missing)}: "
                            f"{redact(last)[:200]}")
    problems = [p for s in specs if (p := verify_token(ctx, tokens[s.username], s.username))]
    if problems:
        raise BringUpFailed(f"minted tokens do not verify: {'; '.join(problems)}")
    fields: dict[str, str] = {}
    for spec in specs:
        fields[f"{spec.role}.username"] = spec.username
        fields[f"{spec.role}.token"] = tokens[spec.username].reveal()
        if spec.role in passwords:
            fields[f"{spec.role}.password"] = passwords[spec.role].reveal()
        ctx.accounts[spec.role] = Account(spec.username, tokens[spec.username], spec.email,
                                          passwords.get(spec.role))
    ctx.accounts["oidc"] = oidc_account(ctx)
    ctx.kube.apply(objects.accounts_secret(fields))
    record(ctx, phase)
    return (f"{len(created)} created, {len(existing)} existed; {len(tokens)} tokens minted and "
            "verified")


PEER_WATCHES = (Watch("apps/v1", "Deployment", "mailpit"),
                Watch("apps/v1", "Deployment", "fediverse-peer"),
                Watch("cert-manager.io/v1", "Certificate", "fediverse-peer", "fedi-tls"))


def run_peers(ctx: Context, phase: plan.Phase) -> str:
    return _apply_and_wait(ctx, phase, PEER_WATCHES)


IMPLS: dict[str, Impl] = {
    "cluster": Impl(run_cluster),
    "secrets": Impl(run_secrets),
    "render": Impl(run_render),
    "images": Impl(run_images, done_images),
    "nodes": Impl(run_nodes, done_nodes),
    "coredns": Impl(run_coredns, _done_when(COREDNS_WATCHES)),
    "cert-manager": Impl(run_cert_manager, _done_when(CERT_MANAGER_WATCHES, webhook_endpoints)),
    "issuers": Impl(run_issuers, _done_when(ISSUER_WATCHES)),
    "storage": Impl(run_storage, _done_when(STORAGE_WATCHES)),
    "traefik": Impl(run_traefik, _done_when(TRAEFIK_WATCHES)),
    "authentik-secrets": Impl(run_authentik_secrets, done_authentik_secrets),
    "authentik": Impl(run_authentik, _done_when(AUTHENTIK_WATCHES, lambda c: oidc_discovery(c, False))),
    "mastodon-secrets": Impl(run_mastodon_secrets, done_mastodon_secrets),
    "mastodon": Impl(run_mastodon, done_mastodon),
    "accounts": Impl(run_accounts, done_accounts),
    "peers": Impl(run_peers, _done_when(PEER_WATCHES)),
}


# ------------------------------------------------------------------ engine


def execute(ctx: Context, phases: Sequence[plan.Phase], *, offset: int = 0,
            total: int | None = None) -> None:
    """Run ``phases`` (in plan order) with one progress line each. Raises
    :class:`BringUpFailed` naming the phase on the first failure."""
    index = {p.name: i for i, p in enumerate(plan.order(plan.KIND_PLAN))}
    ordered = sorted(phases, key=lambda p: index.get(p.name, len(index)))
    total = total or len(ordered)
    by_name = {p.name: p for p in ordered}

    def is_done(name: str) -> bool:
        impl = IMPLS[name]
        return ctx.kube is not None and _safe_done(ctx, by_name[name], impl)

    for index, step in enumerate(plan.steps(ordered, is_done, reuse=ctx.settings.reuse_cluster),
                                 start=offset + 1):
        phase = step.phase
        ctx.progress.start(index, total, phase.name)
        started = time.monotonic()
        if step.action == "skip":
            _after_skip(ctx, phase)
            ctx.timings.record(phase.name, time.monotonic() - started, "skipped", step.reason)
            ctx.progress.end(time.monotonic() - started, "skipped", step.reason)
            continue
        try:
            note = IMPLS[phase.name].run(ctx, phase)
        except Exception as exc:
            seconds = time.monotonic() - started
            message = redact(" ".join(str(exc).split()) or type(exc).__name__)
            ctx.timings.record(phase.name, seconds, "failed", message[:300])
            ctx.progress.end(seconds, "FAILED", message[:300])
            raise BringUpFailed(f"bring-up phase {phase.name} failed: {message}") from exc
        seconds = time.monotonic() - started
        ctx.timings.record(phase.name, seconds, "ran", note)
        ctx.progress.end(seconds, "ran", note)


def _safe_done(ctx: Context, phase: plan.Phase, impl: Impl) -> bool:
    try:
        return bool(impl.done and impl.done(ctx, phase))
    except Exception:
        return False


def _after_skip(ctx: Context, phase: plan.Phase) -> None:
    """What a skipped phase still provides to later ones."""
    if phase.name == "images":
        wanted = wanted_images(ctx)
        ctx.image_report = img.PreloadReport(wanted=len(wanted), already_on_node=len(wanted),
                                             images=list(wanted))
    if phase.name in ("issuers", "authentik", "mastodon-secrets", "mastodon"):
        ensure_ca(ctx)


def write_timings(ctx: Context, outcome: str) -> Path:
    data = timing_file.document(ctx.timings, cluster=ctx.name, reused=ctx.reused, outcome=outcome,
                                images=ctx.image_report.to_json() if ctx.image_report else None)
    return timing_file.write(ctx.settings.reports_dir / "timings.json", data)


def created_verdict(ctx: Context) -> safety.Verdict:
    try:
        clusters: list[str] | None = ctx.cluster.clusters()
    except BadInput:
        clusters = None
    marker = ctx.kube.get("v1", "ConfigMap", safety.MARKER_NAME, safety.MARKER_NAMESPACE)
    return safety.verdict(cluster=ctx.name, context=ctx.kube.context, server=ctx.kube.server,
                          marker_configmap=marker, kind_clusters=clusters)


# ------------------------------------------------------------ keep-cluster


@dataclass(frozen=True)
class KeepDecision:
    keep: bool
    reason: str


def keep_decision(policy: str, *, failed: bool, reused: bool, foreign: bool = False) -> KeepDecision:
    """Whether to keep the kind cluster at the end of the session (pure).

    ``always`` keeps it, ``never`` deletes it, ``on-failure`` keeps it when any test
    or the bring-up failed. A cluster that existed before this run (reused) is
    kept under ``on-failure`` even when all passed: the operator brought it. A
    ``foreign`` cluster (reused, without the suite's marker) is never deleted.
    """
    if foreign:
        return KeepDecision(True, "the suite did not create it (no marker ConfigMap), so it "
                                  "never deletes it")
    if policy == "always":
        return KeepDecision(True, "--keep-cluster=always")
    if policy == "never":
        return KeepDecision(False, "--keep-cluster=never")
    if failed:
        return KeepDecision(True, "a test or the bring-up failed (--keep-cluster=on-failure)")
    if reused:
        return KeepDecision(True, "the cluster existed before this run (--reuse-cluster)")
    return KeepDecision(False, "all passed (--keep-cluster=on-failure)")


def reconnect_lines(cluster: str, kubeconfig: Path, namespace: str, reason: str) -> list[str]:
    context = safety.kind_context(cluster)
    return [
        f"kind cluster {cluster!r} kept: {reason}",
        f"  export KUBECONFIG={kubeconfig}",
        f"  kubectl --context {context} -n {namespace} get pods",
        f"  rerun against it: make e2e PYTEST_ARGS='--reuse-cluster --cluster-name {cluster}'",
        f"  delete it: kind delete cluster --name {cluster}",
    ]
