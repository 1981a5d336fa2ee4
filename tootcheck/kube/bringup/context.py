"""What the phases share: the run's context, the hooks higher layers inject, and helpers.

A phase is a pair of functions (:class:`Impl`) over one :class:`Context`. Phases of
different areas may run at the same time (:mod:`.engine`), so what they write to the
context is written once by one phase, and the shared state ConfigMap and the CA file
are written under a lock.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tootcheck import resources, secretgen
from tootcheck.clients.pinning import PinMap
from tootcheck.errors import BadInput
from tootcheck.kube import images as img
from tootcheck.kube import kindconfig, objects, plan, safety, testca
from tootcheck.kube.apply import apply_documents
from tootcheck.kube.bringup.kind import SuiteKindCluster
from tootcheck.kube.bringup.progress import Progress
from tootcheck.kube.readiness import Readiness
from tootcheck.kube.waits import Watch, wait_ready
from tootcheck.settings import Settings
from tootcheck.target import Account, Target

KIND_CONFIG = resources.kind_config()
BLUEPRINT = resources.blueprint()
OVERLAY = "manifests/overlays/kind"  # Mastodon's kind overlay
MASTODON_POD = "app.kubernetes.io/name=mastodon,app.kubernetes.io/controller=mastodon"
HTTP_TIMEOUT_S = 15.0
BLUEPRINT_NUDGE_S = 20.0


class BringUpFailed(BadInput):
    """A phase failed; the message names the phase and the last state."""


def _no_override(path: str) -> str | None:
    return None


def _no_images() -> list[str]:
    return []


@dataclass(frozen=True)
class BringUpHooks:
    """What a higher layer adds to the bring-up without the bring-up importing it.

    ``render_override(path)`` returns the YAML to apply for a kustomization instead
    of rendering it (None: render it); ``extra_images()`` names images to preload
    besides those of the renders. The rehearsal builds one
    (:func:`tootcheck.rehearsal.run.bringup_hooks`) to deploy the FROM release first.
    """

    render_override: Callable[[str], str | None] = _no_override
    extra_images: Callable[[], Sequence[str]] = _no_images


# Puts the run's values into a render: (the run's secrets, the render's docs) -> final docs.
Finish = Callable[[secretgen.SecretSet, list[dict[str, Any]]], list[dict[str, Any]]]


@dataclass
class Rendered:
    """A kustomization's render. ``finish`` puts the run's values in (the ``secrets`` phase
    calls it; until then the docs are not final and no copy is written); ``secret_values``:
    those values include secrets (APP=DIR), masked in the copy on disk."""

    path: str
    docs: list[dict[str, Any]]
    file: Path
    digest: str
    finish: Finish | None = None
    secret_values: bool = False


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
    ca: testca.TestCA | None = None  # the run's test root CA (phase secrets)
    renders: dict[str, Rendered] = field(default_factory=dict)
    state: dict[str, str] = field(default_factory=dict)
    kind_config: dict[str, Any] = field(default_factory=dict)
    ca_file: Path | None = None
    accounts: dict[str, Account] = field(default_factory=dict)
    image_reports: dict[str, img.PreloadReport] = field(default_factory=dict)  # per image phase
    docker: Path | None = None
    connect: Callable[[Path, str], Any] | None = None  # (kubeconfig, context) -> Kube
    render_fn: Callable[[Path], str] | None = None  # kustomization dir -> YAML (tests swap it)
    last_nudge: float = -BLUEPRINT_NUDGE_S
    # a rehearsal on a production copy: the operator's data keys replace generated ones
    secret_overrides: Mapping[str, str] = field(default_factory=dict)
    hooks: BringUpHooks = field(default_factory=BringUpHooks)
    workers: int = 1  # phases run at the same time when their needs allow (engine)
    failed: set[str] = field(default_factory=set)  # phases that failed this run (engine)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def name(self) -> str:
        return str(self.cluster.name)

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
    """``run`` does a phase and returns a note; ``done`` tells from cluster state that it
    is done already (``--reuse-cluster``); ``after_skip`` loads what a skipped phase still
    provides to later ones."""

    run: Callable[[Context, plan.Phase], str]
    done: Callable[[Context, plan.Phase], bool] | None = None
    after_skip: Callable[[Context, plan.Phase], None] | None = None


def now_utc() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def apply_docs(ctx: Context, docs: Sequence[dict[str, Any]]) -> int:
    from kubernetes.client import ApiException

    return len(apply_documents(ctx.kube, list(docs), api_errors=(ApiException,)))


def record(ctx: Context, phase: plan.Phase, digest: str = "done") -> None:
    """Remember in the cluster that ``phase`` is done (with the render digest)."""
    with ctx.lock:
        ctx.state[plan.STATE_KEY_PREFIX + phase.name] = digest
        ctx.state["last-run"] = ctx.run_id
        ctx.kube.apply(objects.state_configmap(dict(ctx.state)))


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


def same_secret(ctx: Context, expected: Mapping[str, Any]) -> bool:
    """The live Secret holds exactly ``expected``'s data."""
    meta = expected["metadata"]
    live = ctx.kube.get("v1", "Secret", meta["name"], meta["namespace"])
    return bool(live) and (live.get("data") or {}) == expected["data"]


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


def apply_and_wait(ctx: Context, phase: plan.Phase, watches: Sequence[Watch],
                    extra: Callable[[], Readiness] | None = None,
                    stop: Callable[[], str | None] | None = None) -> str:
    count = apply_docs(ctx, ctx.docs(*phase.paths))
    verdict = wait_ready(ctx.kube, watches, what=f"{phase.name}: {phase.ready}", timeout=phase.timeout,
                         extra=extra, stop=stop, retry_on=transient_errors())
    record(ctx, phase, phase_digest(ctx, phase))
    return f"{count} objects applied; {verdict.reason}"


def done_when(watches: Sequence[Watch], extra: Callable[[Context], Readiness] | None = None,
               ) -> Callable[[Context, plan.Phase], bool]:
    def done(ctx: Context, phase: plan.Phase) -> bool:
        if not current(ctx, phase):
            return False
        if not poll_once(lambda: watches_ready(ctx, watches)):
            return False
        return extra is None or poll_once(lambda: extra(ctx))
    return done

