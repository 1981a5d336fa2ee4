"""Phases run at the same time where the plan allows: on paper (simulate) and in the engine."""

from __future__ import annotations

import threading

import pytest

from tests.kube.fakes import FakeKube
from tests.kube.test_bringup import make_ctx
from tootcheck.kube import bringup, plan, timeline, waits
from tootcheck.kube.bringup import app

INDEPENDENT = {"traefik", "cert-manager", "storage", "authentik", "app-images"}


def expected() -> dict[str, float]:
    return {p.name: p.expected for p in plan.KIND_PLAN}


def overlaps(times: dict[str, tuple[float, float]], a: str, b: str) -> bool:
    return times[a][0] < times[b][1] and times[b][0] < times[a][1]


def test_independent_phases_overlap_on_paper():
    times = plan.simulate(plan.KIND_PLAN, expected(), workers=plan.WORKERS)
    assert overlaps(times, "traefik", "cert-manager") and overlaps(times, "storage", "traefik")
    assert overlaps(times, "app-images", "cert-manager")  # image loading beside the infrastructure
    assert overlaps(times, "authentik", "mastodon")
    for phase in plan.KIND_PLAN:  # nothing starts before what it needs has ended
        assert all(times[n][1] <= times[phase.name][0] for n in phase.needs), phase.name


def test_render_and_image_loading_run_beside_what_they_do_not_need():
    times = plan.simulate(plan.KIND_PLAN, expected(), workers=plan.WORKERS)
    assert times["render"][0] == times["cluster"][0] == 0  # kustomize needs no cluster
    assert overlaps(times, "render", "cluster")
    assert overlaps(times, "images", "app-images")  # the two image phases load at once
    assert overlaps(times, "images", "nodes") and overlaps(times, "app-images", "traefik")


def test_mastodon_waits_for_neither_cert_manager_nor_the_issuers_on_paper():
    times = plan.simulate(plan.KIND_PLAN, expected(), workers=plan.WORKERS)
    assert times["mastodon-secrets"][1] < times["cert-manager"][0]  # the run's CA, not cert-manager's
    assert times["mastodon"][0] < times["issuers"][0]
    assert overlaps(times, "mastodon", "cert-manager") and overlaps(times, "mastodon", "issuers")


def test_the_critical_path_and_the_eight_minute_target():
    t = timeline.timeline()
    assert t.critical_path == ["cluster", "images", "storage", "mastodon", "accounts"]
    assert t.bringup_s == t.critical_s  # the workers are no bottleneck
    assert t.verdict_s <= 8 * 60


def test_one_worker_is_the_plan_order():
    times = plan.simulate(plan.KIND_PLAN, expected(), workers=1)
    assert sorted(times, key=lambda n: times[n][0]) == plan.phase_names()
    assert max(e for _, e in times.values()) == pytest.approx(sum(expected().values()))


def test_workers_shorten_the_bring_up_to_no_less_than_the_critical_path():
    path, critical = plan.critical_path(plan.KIND_PLAN, expected())
    serial = max(e for _, e in plan.simulate(plan.KIND_PLAN, expected(), workers=1).values())
    parallel = max(e for _, e in plan.simulate(plan.KIND_PLAN, expected(), workers=plan.WORKERS).values())
    assert critical <= parallel < serial
    assert path[0] == "cluster" and path[-1] == "accounts"


def test_critical_path_of_a_small_graph():
    phases = [plan.Phase("a"), plan.Phase("b", ("a",)), plan.Phase("c", ("a",)), plan.Phase("d", ("b", "c"))]
    assert plan.critical_path(phases, {"a": 1, "b": 5, "c": 2, "d": 1}) == (["a", "b", "d"], 7)
    times = plan.simulate(phases, {"a": 1, "b": 5, "c": 2, "d": 1}, workers=2)
    assert times == {"a": (0, 1), "b": (1, 6), "c": (1, 3), "d": (6, 7)}


def test_the_plan_printout_names_phases_budgets_and_the_critical_path():
    t = timeline.timeline()
    text = "\n".join(timeline.lines(t))
    for phase in plan.KIND_PLAN:
        assert f" {phase.name} " in text
    assert "critical path (*): cluster -> " in text and "zero to verdict:" in text
    assert t.verdict_s == t.bringup_s + t.suites_s and t.critical_s <= t.bringup_s
    assert t.worst_case_s > t.critical_s  # budgets are the worst case


def test_the_engine_runs_independent_phases_at_the_same_time(tmp_path, kind_bin):
    """Each of the independent phases waits until all of them have started: this passes
    only if the engine runs them at once (a sequential engine times out on the barrier)."""
    barrier = threading.Barrier(len(INDEPENDENT), timeout=10)
    seen: list[str] = []

    def run(ctx, phase):
        if phase.name in INDEPENDENT:
            barrier.wait()
        seen.append(phase.name)
        return "stubbed"

    impls = {p.name: bringup.Impl(run) for p in plan.KIND_PLAN}
    ctx = make_ctx(tmp_path, kind_bin)
    ctx.workers = len(INDEPENDENT)
    # authentik and mastodon overlap; the barrier needs authentik beside the infrastructure
    # phases, so here authentik needs only what they need.
    phases = [plan.Phase(p.name, ("images",)) if p.name == "authentik" else p for p in plan.KIND_PLAN]
    bringup.execute(ctx, phases, impls=impls)
    assert sorted(seen) == sorted(p.name for p in plan.KIND_PLAN)
    assert all(ln.endswith("ran: stubbed") for ln in ctx.progress.lines)


def test_the_engine_renders_while_the_cluster_comes_up(tmp_path, kind_bin):
    """cluster waits until render has started: only an engine that runs them at once passes."""
    barrier = threading.Barrier(2, timeout=10)

    def run(ctx, phase):
        if phase.name in ("cluster", "render"):
            barrier.wait()
        return "stubbed"

    ctx = make_ctx(tmp_path, kind_bin)
    ctx.workers = plan.WORKERS
    bringup.execute(ctx, plan.KIND_PLAN, impls={p.name: bringup.Impl(run) for p in plan.KIND_PLAN})
    assert len(ctx.progress.lines) == len(plan.KIND_PLAN)


def test_the_engine_rolls_mastodon_out_while_cert_manager_still_runs(tmp_path, kind_bin):
    """cert-manager ends only once Mastodon's rollout has begun: with Mastodon's inputs
    waiting for the issuers (the CA made by cert-manager) this times out."""
    mastodon_started = threading.Event()
    seen: list[str] = []

    def run(ctx, phase):
        if phase.name == "mastodon":
            mastodon_started.set()
        if phase.name == "cert-manager" and not mastodon_started.wait(10):
            raise RuntimeError("Mastodon's rollout did not start while cert-manager ran")
        seen.append(phase.name)
        return "stubbed"

    ctx = make_ctx(tmp_path, kind_bin)
    ctx.workers = plan.WORKERS
    bringup.execute(ctx, plan.KIND_PLAN, impls={p.name: bringup.Impl(run) for p in plan.KIND_PLAN})
    assert seen.index("mastodon") < seen.index("cert-manager") < seen.index("issuers")


def test_phases_whose_needs_are_never_met_fail_loudly(tmp_path, kind_bin):
    ctx = make_ctx(tmp_path, kind_bin)
    phases = [plan.Phase("a", ("b",)), plan.Phase("b", ("a",))]  # not through plan.order
    with pytest.raises(bringup.BringUpFailed, match="never became ready to start: a, b"):
        bringup.execute(ctx, phases, impls={"a": bringup.Impl(lambda c, p: "x"),
                                            "b": bringup.Impl(lambda c, p: "x")})


def test_a_failure_stops_new_phases_and_names_the_phase(tmp_path, kind_bin):
    started: list[str] = []

    def run(ctx, phase):
        started.append(phase.name)
        if phase.name == "images":
            raise RuntimeError("kind load failed")
        return "ok"

    ctx = make_ctx(tmp_path, kind_bin)
    ctx.workers = 4
    with pytest.raises(bringup.BringUpFailed, match="bring-up phase images failed: kind load failed"):
        bringup.execute(ctx, plan.KIND_PLAN, impls={p.name: bringup.Impl(run) for p in plan.KIND_PLAN})
    assert "cert-manager" not in started and "mastodon" not in started


def test_mastodon_stops_waiting_for_its_certificate_when_the_issuers_phase_fails(tmp_path, kind_bin):
    """Mastodon runs beside the issuers; once they fail, its Certificate will never come, and
    its wait (app.certificate_stop, through the engine's ctx.failed) ends instead of using up
    the rollout budget."""
    cert = next(w for w in app.mastodon_watches(make_ctx(tmp_path, kind_bin)) if w.kind == "Certificate")

    def run(ctx, phase):
        if phase.name == "issuers":
            raise RuntimeError("ClusterIssuer not Ready")
        waits.wait_ready(FakeKube(), [cert], what="mastodon", timeout=10, interval=0.01,
                         stop=lambda: app.certificate_stop(ctx))
        return "not reached"

    ctx = make_ctx(tmp_path, kind_bin)
    ctx.workers = 2
    phases = [plan.Phase("issuers"), plan.Phase("mastodon")]
    with pytest.raises(bringup.BringUpFailed, match="bring-up phase issuers failed"):
        bringup.execute(ctx, phases, impls={p.name: bringup.Impl(run) for p in phases})
    assert ctx.failed == {"issuers", "mastodon"}
    line = next(ln for ln in ctx.progress.lines if "] mastodon " in ln)
    assert "FAILED" in line and "the issuers phase failed" in line
    assert app.certificate_stop(make_ctx(tmp_path, kind_bin)) is None


def test_a_failed_cert_manager_stops_mastodons_certificate_wait_too(tmp_path, kind_bin):
    """The issuers never start once cert-manager fails (no new phase starts after a
    failure), so the stop names every phase the Certificate is issued through."""
    assert {"cert-manager", "issuers"} == app.ISSUING
    ctx = make_ctx(tmp_path, kind_bin)
    ctx.failed.add("cert-manager")
    assert app.certificate_stop(ctx) == ("the cert-manager phase failed: Certificate "
                                         "kirchner-social-tls will not be issued")
    ctx.failed.add("traefik")  # Mastodon needs Traefik: not the Certificate's concern here
    assert "traefik" not in (app.certificate_stop(ctx) or "")


def test_docs_bringup_quotes_the_current_estimate():
    from pathlib import Path

    t = timeline.timeline()
    text = " ".join((Path(__file__).resolve().parents[2] / "docs" / "bringup.md").read_text().split())
    clock = timeline._clock
    assert f"bring-up {clock(t.bringup_s)}, zero to verdict {clock(t.verdict_s)} expected" in text, (
        "docs/bringup.md quotes a stale estimate")


def test_docs_e2e_shows_the_current_plan():
    """docs/e2e.md's "Time" section quotes `tootcheck preflight e2e --plan`; it must be current."""
    from pathlib import Path

    text = (Path(__file__).resolve().parents[2] / "docs" / "e2e.md").read_text()
    section = text.split("## Time", 1)[1]
    quoted = section.split("```\n", 2)[1]
    assert quoted.rstrip("\n").splitlines() == timeline.lines(timeline.timeline()), (
        "docs/e2e.md's plan is stale: paste `tootcheck preflight e2e --plan` into it")
