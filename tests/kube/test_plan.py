"""The bring-up plan as data: order, cycles, reuse skipping, and the real plan's shape."""

from __future__ import annotations

from pathlib import Path

import pytest

from tootcheck.kube import plan
from tootcheck.kube.plan import Phase, PlanError

REPO = Path(__file__).resolve().parents[2]


def names(phases):
    return [p.name for p in phases]


def test_topological_order_keeps_declaration_order_for_ties():
    phases = [Phase("c", ("a",)), Phase("a"), Phase("b"), Phase("d", ("c", "b"))]
    # a first; then c (declared before b) and b are both ready: declaration order wins
    assert names(plan.order(phases)) == ["a", "c", "b", "d"]


def test_unknown_dependency_is_named():
    with pytest.raises(PlanError, match=r"phase 'x' needs unknown phase.*nope"):
        plan.order([Phase("x", ("nope",))])


def test_duplicate_phase_is_refused():
    with pytest.raises(PlanError, match="declared twice"):
        plan.order([Phase("a"), Phase("a")])


def test_cycle_is_detected_and_shown():
    phases = [Phase("a", ("c",)), Phase("b", ("a",)), Phase("c", ("b",)), Phase("d")]
    with pytest.raises(PlanError) as info:
        plan.order(phases)
    message = str(info.value)
    assert "dependency cycle" in message
    cycle = message.split("cycle ")[1].split(" -> ")
    assert cycle[0] == cycle[-1] and set(cycle) == {"a", "b", "c"}


def test_self_dependency_is_a_cycle():
    with pytest.raises(PlanError, match="a -> a"):
        plan.order([Phase("a", ("a",))])


def test_closure_picks_what_a_phase_needs():
    assert names(plan.closure(plan.KIND_PLAN, ["issuers"])) == [
        "cluster", "render", "secrets", "images", "nodes", "cert-manager", "issuers"]
    with pytest.raises(PlanError):
        plan.closure(plan.KIND_PLAN, ["nope"])


def test_without_reuse_everything_runs():
    steps = plan.schedule(plan.order(plan.KIND_PLAN), {n: True for n in plan.phase_names()}, reuse=False)
    assert {s.action for s in steps} == {"run"}


def test_reuse_skips_phases_found_done():
    ordered = plan.order(plan.KIND_PLAN)
    done = {n: True for n in plan.phase_names()}
    done["accounts"] = False
    steps = {s.phase.name: s for s in plan.schedule(ordered, done, reuse=True)}
    assert steps["cert-manager"].action == "skip" and steps["mastodon"].action == "skip"
    assert steps["accounts"].action == "run" and steps["accounts"].reason == "not done yet"
    # always-phases (cheap, and they load what later phases need) run every time
    assert [n for n, s in steps.items() if s.action == "run"] == ["cluster", "render", "secrets", "accounts"]


def test_a_phase_that_runs_again_invalidates_what_needs_it():
    ordered = plan.order(plan.KIND_PLAN)
    done = {n: True for n in plan.phase_names()}
    done["issuers"] = False
    steps = {s.phase.name: s for s in plan.schedule(ordered, done, reuse=True)}
    assert steps["issuers"].action == "run"
    assert steps["authentik"].action == "run" and "issuers ran again" in steps["authentik"].reason
    assert steps["peers"].action == "run"
    # the test CA is the run's, not the issuers': Mastodon's inputs and rollout do not need them
    assert steps["mastodon-secrets"].action == "skip" and steps["mastodon"].action == "skip"
    assert steps["storage"].action == "skip"  # independent of issuers


def test_non_cascading_phases_do_not_invalidate():
    ordered = plan.order(plan.KIND_PLAN)
    done = {n: True for n in plan.phase_names()}
    done["images"] = False  # a new image to load does not make cert-manager stale
    steps = {s.phase.name: s for s in plan.schedule(ordered, done, reuse=True)}
    assert steps["images"].action == "run" and steps["cert-manager"].action == "skip"


def test_steps_ask_is_done_lazily_after_earlier_phases_ran():
    asked: list[str] = []
    ran: list[str] = []

    def is_done(name: str) -> bool:
        asked.append(f"{name} after {','.join(ran)}")
        return False

    for step in plan.steps([Phase("a", always=True, cascade=False), Phase("b", ("a",)),
                            Phase("c", ("b",))], is_done, reuse=True):
        if step.action == "run":
            ran.append(step.phase.name)
    # b is asked only once a ran; c is not asked at all: b ran again, so c must run
    assert asked == ["b after a"] and ran == ["a", "b", "c"]


def test_state_digest_decides_whether_an_apply_phase_is_current():
    state = {"phase.traefik": "abc", "phase.accounts": "done"}
    assert plan.is_phase_current(state, "traefik", "abc")
    assert not plan.is_phase_current(state, "traefik", "def")  # the manifests changed
    assert plan.is_phase_current(state, "accounts", None)
    assert not plan.is_phase_current(state, "mastodon", "abc")
    assert plan.render_digest(["a", "b"]) != plan.render_digest(["ab"])


def test_timings():
    t = plan.Timings()
    t.record("cluster", 40.123, "ran", "created")
    t.record("images", 2.5, "skipped")
    assert t.phases == {"cluster": 40.12, "images": 2.5} and t.total == 42.62
    assert t.notes == {"cluster": "created"}


class TestTheKindPlan:
    def test_orders_without_cycle_in_the_issue_order(self):
        assert plan.phase_names() == [
            "cluster", "render", "secrets", "images", "app-images", "nodes", "coredns", "cert-manager",
            "issuers",
            "storage", "traefik", "authentik-secrets", "authentik", "mastodon-secrets", "mastodon",
            "accounts", "peers"]

    def test_the_cluster_fixture_runs_the_first_phases_of_the_plan(self):
        """kind_bringup runs cluster and render (both from 0:00), kind_deployment the rest
        numbered after them: they must be the plan's first."""
        from fixtures.cluster import FIRST

        assert plan.phase_names()[:len(FIRST)] == list(FIRST) == ["cluster", "render"]
        assert all(not p.needs for p in plan.KIND_PLAN if p.name in FIRST)

    def test_every_phase_says_what_ready_means(self):
        assert all(p.ready for p in plan.KIND_PLAN)

    def test_every_path_is_a_kustomization_the_render_phase_renders(self):
        render = next(p for p in plan.KIND_PLAN if p.name == "render")
        applied = {path for p in plan.KIND_PLAN if p.name != "render" for path in p.paths}
        assert applied <= set(render.paths)
        for path in render.paths:
            assert (REPO / path / "kustomization.yaml").is_file(), path

    def test_dependencies_follow_the_stack(self):
        needs = {p.name: set(p.needs) for p in plan.KIND_PLAN}
        assert "cert-manager" in needs["issuers"]
        assert {"mastodon-secrets", "storage", "traefik", "coredns", "app-images"} <= needs["mastodon"]
        assert "authentik" not in needs["mastodon"]  # independent: they roll out at the same time
        # the test CA is made with the run's secrets, not by cert-manager: Mastodon's inputs
        # and rollout wait for neither cert-manager nor the issuers
        assert needs["mastodon-secrets"] == {"secrets", "render"}
        assert not {"cert-manager", "issuers"} & needs["mastodon"]
        assert "secrets" in needs["issuers"]  # the issuer's CA Secret holds the run's CA
        assert "images" in needs["mastodon"]  # PostgreSQL comes with the infrastructure's images
        assert needs["render"] == set()  # kustomize needs no cluster: it runs beside `cluster`
        assert "mastodon" in needs["accounts"]
