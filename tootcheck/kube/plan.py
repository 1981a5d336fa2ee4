"""The bring-up plan as data: phases, what each needs, and what "done" means.

The plan is a list of :class:`Phase` records. :func:`order` sorts it
topologically (declaration order breaks ties, so the plan reads top to bottom the
way it runs), refusing unknown dependencies and cycles. :func:`schedule` decides,
per phase, whether to run it or skip it because ``--reuse-cluster`` found it
already done. What "done" means for a phase is judged by the bring-up from
cluster state (:mod:`tootcheck.kube.bringup`); for phases that apply a render,
"done" also requires that the digest recorded in the cluster's state ConfigMap
matches the render of this run, so an edited manifest is re-applied.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from tootcheck.errors import BadInput


class PlanError(BadInput):
    """The plan itself is wrong: an unknown dependency, a duplicate, a cycle."""


@dataclass(frozen=True)
class Phase:
    """One step of the bring-up.

    ``needs`` names the phases that must be complete first; ``ready`` says in one
    line what the phase waits for; ``timeout`` is seconds or a key of
    :data:`tootcheck.waiting.TIMEOUTS` (the wait's budget, the worst case);
    ``paths`` are the kustomizations (relative to the repository) the phase renders
    and applies, in order (for an image phase: whose images it loads); ``expected``
    is the seconds it is expected to take on a 2-core runner with a warm image cache
    (an estimate for ``tootcheck preflight e2e --plan``; reports/timings.json has the
    measured figures of a run).
    """

    name: str
    needs: tuple[str, ...] = ()
    ready: str = ""
    timeout: float | str = "rollout"
    paths: tuple[str, ...] = ()
    # Runs every time: host-only work, or cheap and idempotent (it also loads what
    # later phases need, so it cannot be skipped).
    always: bool = False
    # Whether running this phase again invalidates the phases that need it. False
    # for phases whose effect dependents do not consume (image preload, render).
    cascade: bool = True
    expected: float = 0.0


def order(phases: Sequence[Phase]) -> list[Phase]:
    """Topological order; ties keep declaration order. Raises :class:`PlanError`."""
    by_name: dict[str, Phase] = {}
    for phase in phases:
        if phase.name in by_name:
            raise PlanError(f"bring-up plan: phase {phase.name!r} declared twice")
        by_name[phase.name] = phase
    for phase in phases:
        unknown = [n for n in phase.needs if n not in by_name]
        if unknown:
            raise PlanError(f"bring-up plan: phase {phase.name!r} needs unknown phase(s) "
                            f"{', '.join(unknown)}")
    index = {p.name: i for i, p in enumerate(phases)}
    remaining = {p.name: set(p.needs) for p in phases}
    done: list[Phase] = []
    while remaining:
        ready = sorted((n for n, deps in remaining.items() if not deps), key=index.__getitem__)
        if not ready:
            raise PlanError(f"bring-up plan: dependency cycle {' -> '.join(find_cycle(remaining))}")
        name = ready[0]
        done.append(by_name[name])
        del remaining[name]
        for deps in remaining.values():
            deps.discard(name)
    return done


def find_cycle(graph: Mapping[str, Iterable[str]]) -> list[str]:
    """One cycle in ``graph`` (name -> dependencies), first node repeated at the end."""
    state: dict[str, int] = {}  # 1 on the stack, 2 finished
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for dep in sorted(graph.get(node, ())):
            if state.get(dep) == 1:
                return [*stack[stack.index(dep):], dep]
            if dep not in state and dep in graph:
                found = visit(dep)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return []


def closure(phases: Sequence[Phase], targets: Iterable[str]) -> list[Phase]:
    """The phases ``targets`` need (transitively), themselves included, in order."""
    by_name = {p.name: p for p in phases}
    wanted: set[str] = set()
    todo = list(targets)
    while todo:
        name = todo.pop()
        if name in wanted:
            continue
        if name not in by_name:
            raise PlanError(f"bring-up plan: no phase named {name!r}")
        wanted.add(name)
        todo.extend(by_name[name].needs)
    return [p for p in order(phases) if p.name in wanted]


@dataclass(frozen=True)
class Step:
    phase: Phase
    action: str  # "run" | "skip"
    reason: str = ""


def decide(phase: Phase, ran: Iterable[str], cascading: Iterable[str], is_done: Callable[[str], bool],
           *, reuse: bool) -> Step:
    """Run or skip ``phase`` once its needs are through; ``ran`` holds the phases that
    ran in this bring-up. Without ``reuse`` everything runs. With ``reuse`` a phase
    found done is skipped, unless a cascading phase it needs ran (its inputs changed,
    so its state cannot be trusted). ``always`` phases run every time. ``is_done``
    is asked last, after the phases before it ran, so it sees their effects."""
    ran_set, cascading_set = set(ran), set(cascading)
    rerun_deps = [n for n in phase.needs if n in ran_set and n in cascading_set]
    if phase.always:
        return Step(phase, "run", "runs every time")
    if not reuse:
        return Step(phase, "run")
    if rerun_deps:
        return Step(phase, "run", f"{', '.join(rerun_deps)} ran again")
    if is_done(phase.name):
        return Step(phase, "skip", "already done")
    return Step(phase, "run", "not done yet")


def steps(ordered: Sequence[Phase], is_done: Callable[[str], bool], *, reuse: bool) -> Iterator[Step]:
    """:func:`decide` for each phase in order, lazily (one at a time)."""
    running: set[str] = set()
    cascading = {p.name for p in ordered if p.cascade}
    for phase in ordered:
        step = decide(phase, running, cascading, is_done, reuse=reuse)
        if step.action == "run":
            running.add(phase.name)
        yield step


def ready(ordered: Sequence[Phase], finished: Iterable[str], started: Iterable[str]) -> list[Phase]:
    """The phases that may start now, in plan order: not started, and every need that is
    part of ``ordered`` finished (needs outside it were done by an earlier call)."""
    names = {p.name for p in ordered}
    done, begun = set(finished), set(started)
    return [p for p in ordered if p.name not in begun
            and all(n in done for n in p.needs if n in names)]


def simulate(phases: Sequence[Phase], durations: Mapping[str, float], *,
             workers: int) -> dict[str, tuple[float, float]]:
    """(start, end) of each phase when ``workers`` phases may run at once and each takes
    ``durations[name]`` seconds: the engine's scheduling (:func:`ready`, plan order first)
    on a simulated clock (pure)."""
    ordered = order(phases)
    finished: list[str] = []
    started: set[str] = set()
    running: dict[str, float] = {}  # name -> end time
    times: dict[str, tuple[float, float]] = {}
    now = 0.0
    while len(finished) < len(ordered):
        for phase in ready(ordered, finished, started):
            if len(running) >= max(1, workers):
                break
            started.add(phase.name)
            end = now + max(0.0, durations.get(phase.name, 0.0))
            running[phase.name] = end
            times[phase.name] = (now, end)
        name = min(running, key=lambda n: (running[n], n))
        now = running.pop(name)
        finished.append(name)
    return times


def critical_path(phases: Sequence[Phase], durations: Mapping[str, float]) -> tuple[list[str], float]:
    """The chain of needs with the longest total duration, and that total (pure)."""
    best: dict[str, tuple[float, list[str]]] = {}
    for phase in order(phases):
        before = max((best[n] for n in phase.needs), default=(0.0, []), key=lambda b: b[0])
        best[phase.name] = (before[0] + durations.get(phase.name, 0.0), [*before[1], phase.name])
    total, path = max(best.values(), key=lambda b: b[0], default=(0.0, []))
    return path, total


def budget(phase: Phase, timeouts: Mapping[str, float]) -> float:
    """The phase's wait budget in seconds (its timeout, a number or a TIMEOUTS key)."""
    return timeouts[phase.timeout] if isinstance(phase.timeout, str) else float(phase.timeout)


def schedule(ordered: Sequence[Phase], done: Mapping[str, bool], *, reuse: bool) -> list[Step]:
    """:func:`steps` with the done-state known up front (for tests and dry runs)."""
    return list(steps(ordered, lambda name: bool(done.get(name)), reuse=reuse))


def render_digest(texts: Iterable[str]) -> str:
    """A stable digest of the rendered manifests a phase applies."""
    h = hashlib.sha256()
    for text in texts:
        h.update(text.encode())
        h.update(b"\0")
    return h.hexdigest()[:16]


STATE_KEY_PREFIX = "phase."
# Phases at once: they mostly wait on the cluster, so more than the 2 cores of a CI
# runner; the cluster's own work is what the cores are for.
WORKERS = 4


def is_phase_current(state: Mapping[str, str], phase: str, digest: str | None) -> bool:
    """The cluster's state ConfigMap records ``phase`` as done with this digest
    (or with any digest for phases that apply nothing)."""
    recorded = state.get(STATE_KEY_PREFIX + phase)
    if recorded is None:
        return False
    return digest is None or recorded == digest


@dataclass
class Timings:
    """Wall-clock seconds per phase, when each started (seconds after ``origin``: phases
    run concurrently, so the report draws them on one time axis), and what each reported."""

    phases: dict[str, float] = field(default_factory=dict)
    actions: dict[str, str] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)
    starts: dict[str, float] = field(default_factory=dict)
    origin: float = field(default_factory=time.monotonic)

    def record(self, name: str, seconds: float, action: str, note: str = "",
               started: float | None = None) -> None:
        self.phases[name] = round(seconds, 2)
        self.actions[name] = action
        if note:
            self.notes[name] = note
        if started is not None:
            self.starts[name] = round(max(0.0, started - self.origin), 2)

    @property
    def total(self) -> float:
        """Wall-clock seconds from the first start to the last end (the sum without starts)."""
        if self.starts and set(self.starts) == set(self.phases):
            return round(max(self.starts[n] + s for n, s in self.phases.items()), 2)
        return round(sum(self.phases.values()), 2)


# ------------------------------------------------------------------ the plan
# Paths are kustomization directories relative to the repository root; the
# manifests themselves are documented in docs/kind.md (manifests helper) and the
# bring-up in docs/bringup.md.

INFRA = ("manifests/kind/coredns", "manifests/infra/cert-manager", "manifests/infra/issuers",
         "manifests/infra/nfs", "manifests/infra/traefik", "manifests/infra/authentik")
APP = ("manifests/overlays/kind", "manifests/infra/mailpit", "manifests/infra/fediverse-peer")

KIND_PLAN: tuple[Phase, ...] = (
    Phase("cluster", always=True, cascade=False, timeout=900, expected=60,
          ready="kind cluster exists (created, or reused with --reuse-cluster), its kubeconfig "
                "is exported and the API server answers"),
    # Needs no cluster: kustomize and helm run on the host, from 0:00 beside `cluster`. The run's
    # values (VAPID public key, APP=DIR's secrets) go in later, in `secrets`.
    Phase("render", always=True, cascade=False, timeout=600, expected=25,
          ready="every kustomization renders (kubectl kustomize --enable-helm) and parses",
          paths=(*INFRA, *APP)),
    Phase("secrets", ("cluster", "render"), always=True, cascade=False, timeout="apply", expected=2,
          ready="the run's secrets and test root CA are in kube-system/tootcheck-run-secrets "
                "(generated now, or read back from a reused cluster), the CA in the run's CA file, "
                "and the run's values in the renders that carry them"),
    # Two image phases: the infrastructure's images load while the app's still load,
    # and Traefik, cert-manager and the NFS server start on the first.
    Phase("images", ("render", "cluster"), cascade=False, timeout=3600, expected=45, paths=INFRA,
          ready="every image of the infrastructure renders is on the node (Node.status.images), "
                "loaded from the host's Docker store"),
    # expected was 75 s while PostgreSQL (about a fifth of these images' bytes) was loaded here
    # as well as in `images`, both at once; an image both renders use is now loaded once, by
    # `images` (an estimate, like the rest: no Docker engine where this was written).
    Phase("app-images", ("render", "cluster"), cascade=False, timeout=3600, expected=60, paths=APP,
          ready="every image of Mastodon's render and the peers' is on the node, loaded from the "
                "host's Docker store (a rehearsal adds TO's images); those the infrastructure also "
                "runs come with `images`"),
    Phase("nodes", ("cluster",), timeout="pod-ready", expected=15,
          ready="every Node Ready, kube-system DaemonSets (kindnet CNI, kube-proxy) rolled out"),
    Phase("coredns", ("nodes", "render"), timeout="rollout", paths=("manifests/kind/coredns",),
          expected=15,
          ready="CoreDNS rewrites kirchner.social and auth.kirchner.social to Traefik; restarted"),
    Phase("cert-manager", ("nodes", "images"), timeout="rollout", expected=45,
          paths=("manifests/infra/cert-manager",),
          ready="CRDs Established, Deployments rolled out, the webhook Service has a ready endpoint"),
    # expected was 15 s when cert-manager also had to issue the root CA Certificate; now the
    # root is the run's (`secrets`) and only the CA ClusterIssuer is verified.
    Phase("issuers", ("cert-manager", "secrets"), timeout="certificate",
          paths=("manifests/infra/issuers",), expected=10,
          ready="Secret cert-manager/tootcheck-root-ca holds the run's test CA, ClusterIssuer "
                "kirchner-social-issuer Ready"),
    Phase("storage", ("nodes", "images"), timeout="rollout", paths=("manifests/infra/nfs",),
          expected=30, ready="NFS-Ganesha server/provisioner rolled out, StorageClass nfs-csi exists"),
    Phase("traefik", ("nodes", "images"), timeout="rollout", paths=("manifests/infra/traefik",),
          expected=25, ready="Traefik rolled out (hostPorts 80/443 on the node)"),
    # Applies a Namespace and a Secret: the API server is enough, Ready nodes are not needed.
    Phase("authentik-secrets", ("secrets", "render"), timeout="apply", expected=2,
          ready="Secret authentik/authentik-bootstrap holds the run's values"),
    Phase("authentik", ("authentik-secrets", "traefik", "issuers", "coredns", "images"),
          timeout="rollout", paths=("manifests/infra/authentik",), expected=120,
          ready="PostgreSQL, server and worker rolled out, TLS Certificate Ready, blueprint "
                "applied: OIDC discovery answers with the issuer"),
    # The test CA is the run's (`secrets`), so Mastodon's inputs no longer wait for cert-manager.
    Phase("mastodon-secrets", ("secrets", "render"), timeout="apply", expected=2,
          ready="Secret mastodon/mastodon-secrets and ConfigMap mastodon/tootcheck-ca exist"),
    # Not after Authentik: Mastodon reads the OIDC discovery at sign-in (omniauth_openid_connect's
    # request phase), not at boot, so the two largest rollouts overlap. Not after the issuers:
    # the render holds no cert-manager object (its Ingress annotation makes cert-manager create the
    # Certificate whenever it runs), and the Certificate it waits for at the end is issued once the
    # issuer is Ready, two minutes before this rollout ends (until cert-manager's CRDs are served,
    # that wait counts the Certificate as not found yet). `images` for PostgreSQL.
    Phase("mastodon", ("mastodon-secrets", "traefik", "storage", "coredns", "images", "app-images"),
          timeout="rollout", paths=("manifests/overlays/kind",), expected=150,
          ready="db-migrate completed, every container and sidecar ready, PVCs Bound, TLS "
                "Certificate Ready, https://<domain>/health answers 200"),
    Phase("accounts", ("mastodon",), timeout=900, expected=40,
          ready="test, second and admin accounts exist and their API tokens verify"),
    Phase("peers", ("issuers", "app-images"), timeout="rollout", expected=20,
          paths=("manifests/infra/mailpit", "manifests/infra/fediverse-peer"),
          ready="Mailpit and the fediverse peer rolled out, the peer's TLS Certificate Ready"),
)


def phase_names(phases: Sequence[Phase] = KIND_PLAN) -> list[str]:
    return [p.name for p in order(phases)]
