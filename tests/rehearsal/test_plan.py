"""The rehearsal plan: versions, refusals, the upgrade-path table, requirements on the
render at TO, immutable changes, and the rendering workspace (real kustomize)."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from tests import REPO_ROOT
from tootcheck import versions
from tootcheck.errors import BadInput
from tootcheck.kube.apply import split_documents
from tootcheck.rehearsal import plan as p
from tootcheck.rehearsal import run
from tootcheck.settings import Settings
from tootcheck.tools import find

RENDER = REPO_ROOT / "manifests" / "rendered" / "overlay-kind.yaml"


def overlay_docs() -> list[dict]:
    return [d for d in yaml.safe_load_all(RENDER.read_text()) if d]


def at(docs: list[dict], tag: str) -> list[dict]:
    """The render with both Mastodon images at ``tag`` (what the images: transformer does)."""
    docs = copy.deepcopy(docs)
    for doc in docs:
        spec = ((doc.get("spec") or {}).get("template") or {}).get("spec") or {}
        for c in [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]:
            if p.image_repo(c["image"]) in (versions.MASTODON_IMAGE,
                                            versions.MASTODON_STREAMING_IMAGE):
                c["image"] = f"{p.image_repo(c['image'])}:{tag}"
    return docs


def deployment(docs: list[dict]) -> dict:
    return p.mastodon_deployment(docs)  # type: ignore[return-value]


# ------------------------------------------------------------------ versions


@pytest.mark.parametrize(("text", "tag", "line"), [
    ("v4.7.2", "v4.7.2", (4, 7)), ("4.6.0", "v4.6.0", (4, 6)),
    (" v4.8.0-rc.1 ", "v4.8.0-rc.1", (4, 8)),
])
def test_versions_parse(text: str, tag: str, line: tuple[int, int]) -> None:
    version = p.parse_version(text)
    assert (version.tag, version.line) == (tag, line)


def test_version_order_puts_prereleases_first() -> None:
    ordered = sorted(p.v(t) for t in ("v4.8.0", "v4.8.0-rc.10", "v4.8.0-beta.2", "v4.8.0-rc.9",
                                      "v4.7.10", "v4.7.2"))
    assert [v.tag for v in ordered] == ["v4.7.2", "v4.7.10", "v4.8.0-beta.2", "v4.8.0-rc.9",
                                        "v4.8.0-rc.10", "v4.8.0"]


@pytest.mark.parametrize(("source", "target", "message"), [
    ("v4.7.2", "v4.7.2", "both v4.7.2"),
    ("v4.7.2", "v4.6.3", "migrations are one-way"),
    ("v4.7.2", "v4.7.2-rc.1", "older than"),
    ("v4.2.10", "v4.7.2", "predates v4.3.0"),
    ("latest", "v4.7.2", "'latest' is not a Mastodon release"),
    ("", "v4.7.2", "(empty) is not a Mastodon release"),
    ("v4.6", "v4.7.2", "is not a Mastodon release"),
])
def test_refusals_are_one_line(source: str, target: str, message: str) -> None:
    with pytest.raises(BadInput) as refused:
        p.make_plan(source, target)
    assert message in str(refused.value)
    assert "\n" not in str(refused.value)


def test_messages_use_the_callers_flag_names() -> None:
    with pytest.raises(BadInput, match=r"^--to v4\.6\.0 is older than --from v4\.7\.2"):
        p.make_plan("v4.7.2", "v4.6.0", flags={"from": "--from", "to": "--to"})


def test_chart_refusals_and_chart_only_rehearsal() -> None:
    with pytest.raises(BadInput, match="older than --rehearse-chart-from"):
        p.make_plan("v4.6.3", "v4.7.2", "4.1.1", "3.7.3")
    with pytest.raises(BadInput, match="not an app-template chart version"):
        p.make_plan("v4.6.3", "v4.7.2", "four")
    chart_only = p.make_plan("v4.7.2", "v4.7.2", "4.1.1", "5.2.1")
    assert chart_only.chart_changes and chart_only.lines == ()
    assert any("app-template 5.x" in w and "ServiceAccount" in w for w in chart_only.warnings)


# --------------------------------------------------------- upgrade-path table


def test_table_is_ordered_complete_and_sourced() -> None:
    lines = [row.line for row in p.RELEASE_LINES]
    assert lines == sorted(lines) and lines[0] == p.MIN_SUPPORTED.line
    assert lines[-1] >= p.v(versions.MASTODON).line, "the pinned release is in the table"
    for earlier, later in zip(p.RELEASE_LINES, p.RELEASE_LINES[1:], strict=False):
        assert later.postgres_min >= earlier.postgres_min
        assert later.redis_min >= earlier.redis_min
    assert all(row.sources and row.notes for row in p.RELEASE_LINES)


@pytest.mark.parametrize(("source", "target", "entered", "pg", "redis"), [
    ("v4.3.5", "v4.4.5", ["4.4"], 13, (6, 2)),
    ("v4.3.5", "v4.7.2", ["4.4", "4.5", "4.6", "4.7"], 14, (7, 0)),
    ("v4.7.1", "v4.7.2", [], 14, (7, 0)),  # a patch release still needs its line's minimums
])
def test_path_requirements(source: str, target: str, entered: list[str], pg: int,
                           redis: tuple[int, ...]) -> None:
    plan = p.make_plan(source, target)
    assert [row.name for row in plan.lines] == entered
    assert (plan.postgres_min, plan.redis_min) == (pg, redis)
    assert set(p.ENCRYPTION_KEYS) <= set(plan.env_required)
    assert plan.stops == ()  # Mastodon needs no intermediate release between 4.3 and 4.7


def test_paths_through_4_4_remove_redis_namespace_and_run_post_deployment_migrations() -> None:
    through = p.make_plan("v4.3.9", "v4.5.0")
    assert through.env_removed == ("REDIS_NAMESPACE",) and through.post_deployment_migrations
    later = p.make_plan("v4.5.0", "v4.7.2")
    assert not later.post_deployment_migrations  # none since 2025-05-20 (mastodon#39493)


def test_avoided_release_and_newer_than_table_warn() -> None:
    assert any("v4.4.1" in w for w in p.make_plan("v4.3.13", "v4.4.0").warnings)
    assert any("newer than the upgrade-path table" in w
               for w in p.make_plan("v4.7.2", "v4.9.0").warnings)


def test_intermediate_stops_follow_the_table() -> None:
    table = (*p.RELEASE_LINES[:2],
             p.ReleaseLine((4, 5), "v4.5.0", "x", 14, (7, 0), stop_before="v4.4.5"),
             *p.RELEASE_LINES[3:])
    assert [s.tag for s in p.make_plan("v4.3.1", "v4.7.2", table=table).stops] == ["v4.4.5"]
    assert p.make_plan("v4.4.6", "v4.7.2", table=table).stops == ()
    assert p.make_plan("v4.3.1", "v4.4.9", table=table).stops == ()


def test_table_markdown_lists_every_line_and_the_docs_carry_it() -> None:
    text = p.table_markdown()
    assert all(f"| {row.name} | {row.first}" in text for row in p.RELEASE_LINES)
    assert text in (REPO_ROOT / "docs" / "modes.md").read_text(), \
        "docs/modes.md: paste tootcheck.rehearsal.plan.table_markdown() into the table"


# ------------------------------------------------------- render requirements


def test_reference_render_meets_the_requirements() -> None:
    plan = p.make_plan("v4.6.3", versions.MASTODON)
    deployed = p.inspect_render(at(overlay_docs(), versions.MASTODON))
    assert deployed.strategy == "Recreate" and deployed.postgres[0] >= 14
    assert p.requirement_problems(plan, deployed) == []
    assert p.expected_order(deployed)[:3] == ["postgres", "redis", "db-migrate"]


def test_requirement_problems_name_what_is_wrong() -> None:
    plan = p.make_plan("v4.3.5", "v4.5.0")
    docs = at(overlay_docs(), "v4.5.0")
    pod = deployment(docs)["spec"]["template"]["spec"]
    inits = {c["name"]: c for c in pod["initContainers"]}
    inits["postgres"]["image"] = "docker.io/library/postgres:13.20"
    inits["redis"]["image"] = "docker.io/library/redis:6.2.17"
    pod["initContainers"] = [inits["db-migrate"], inits["postgres"], inits["redis"]]
    deployment(docs)["spec"]["strategy"] = {"type": "RollingUpdate"}
    config = next(d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] ==
                  "mastodon-env")
    config["data"]["REDIS_NAMESPACE"] = "mastodon"
    config["data"]["SKIP_POST_DEPLOYMENT_MIGRATIONS"] = "true"
    web = next(c for c in pod["containers"] if c["name"] == "web")
    web["image"] = f"{versions.MASTODON_IMAGE}:v4.4.7"
    problems = " | ".join(p.requirement_problems(plan, p.inspect_render(docs),
                                                 secret_keys={"mastodon-secrets": ["DB_PASS"]}))
    for expected in ("PostgreSQL >= 14; the deployment runs 13.20",
                     "Redis >= 7.0; the deployment runs 6.2.17",
                     "needs ACTIVE_RECORD_ENCRYPTION_PRIMARY_KEY set before its first start",
                     "REDIS_NAMESPACE is set", "post-deployment migrations of 4.4 would never run",
                     "uses RollingUpdate", "postgres, redis start after db-migrate",
                     "container web runs ghcr.io/mastodon/mastodon:v4.4.7, not v4.5.0"):
        assert expected in problems


def test_missing_migration_container_is_a_problem() -> None:
    docs = at(overlay_docs(), versions.MASTODON)
    pod = deployment(docs)["spec"]["template"]["spec"]
    pod["initContainers"] = [c for c in pod["initContainers"] if c["name"] != "db-migrate"]
    problems = p.requirement_problems(p.make_plan("v4.6.3", versions.MASTODON),
                                      p.inspect_render(docs))
    assert any("no init container runs rails db:prepare" in x for x in problems)


def test_immutable_changes_and_dropped_objects() -> None:
    before = overlay_docs()
    after = copy.deepcopy(before)
    deployment(after)["spec"]["selector"]["matchLabels"]["app.kubernetes.io/component"] = "web"
    after = [d for d in after if d["kind"] != "NetworkPolicy"]
    changes = p.immutable_changes(before, after)
    assert len(changes) == 1 and "Deployment/mastodon/mastodon: spec.selector changes" in changes[0]
    assert p.dropped_objects(before, after) == ["NetworkPolicy/mastodon/mastodon"]
    assert p.immutable_changes(before, copy.deepcopy(before)) == []


def test_carry_overrides_keeps_bring_up_values_the_upgrade_does_not_touch() -> None:
    before = at(overlay_docs(), "v4.6.3")
    after = at(overlay_docs(), versions.MASTODON)
    config = next(d for d in after if d["kind"] == "ConfigMap")
    config["data"]["WEB_CONCURRENCY"] = "4"  # TO changes this one on purpose
    live = {**next(d for d in before if d["kind"] == "ConfigMap")["data"],
            "VAPID_PUBLIC_KEY": "run-key", "WEB_CONCURRENCY": "3", "EXTRA": "x"}
    carried_docs, carried = p.carry_overrides(before, after, live)
    assert carried == ["VAPID_PUBLIC_KEY"]
    data = next(d for d in carried_docs if d["kind"] == "ConfigMap")["data"]
    assert data["VAPID_PUBLIC_KEY"] == "run-key" and data["WEB_CONCURRENCY"] == "4"
    assert "EXTRA" not in data
    assert p.carry_overrides(before, after, {}) == (after, [])


# --------------------------------------------------------------- workspace


def test_with_chart_version_rewrites_only_the_chart() -> None:
    text = (REPO_ROOT / run.APP_DIR / "kustomization.yaml").read_text()
    changed = yaml.safe_load(p.with_chart_version(text, p.parse_chart_version("5.2.1")))
    assert changed["helmCharts"][0]["version"] == "5.2.1"
    assert changed["helmCharts"][0]["releaseName"] == "mastodon"
    with pytest.raises(BadInput, match="no helmCharts entry"):
        p.with_chart_version("resources: []\n", p.parse_chart_version("5.2.1"))


def test_workspace_leaves_the_repository_alone(tmp_path: Path) -> None:
    wrapper = run.workspace(p.v("v4.6.3"), p.parse_chart_version("5.2.1"), tmp_path)
    spec = yaml.safe_load((wrapper / "kustomization.yaml").read_text())
    assert spec["resources"] == ["../manifests/overlays/kind"]
    assert spec["images"] == p.image_overrides(p.v("v4.6.3"))
    copied = yaml.safe_load((tmp_path / run.APP_DIR / "kustomization.yaml").read_text())
    assert copied["helmCharts"][0]["version"] == "5.2.1"
    original = yaml.safe_load((REPO_ROOT / run.APP_DIR / "kustomization.yaml").read_text())
    assert original["helmCharts"][0]["version"] == versions.APP_TEMPLATE


@pytest.mark.skipif(find("kubectl") is None or find("helm") is None,
                    reason="kubectl and helm are needed to render")
def test_render_at_from_changes_only_the_mastodon_images() -> None:
    rendered = split_documents(run.render("v4.6.3", versions.APP_TEMPLATE))
    assert rendered == at(overlay_docs(), "v4.6.3")
    images = [c["image"] for c in deployment(rendered)["spec"]["template"]["spec"]["containers"]]
    assert f"{versions.MASTODON_STREAMING_IMAGE}:v4.6.3" in images
    settings = Settings(mode="rehearsal", target="kind", rehearse_from="v4.6.3",
                        rehearse_to=versions.MASTODON)
    assert run.mastodon_render(settings) == run.render("v4.6.3", versions.APP_TEMPLATE)
    assert run.mastodon_render(Settings()) is None


def test_preflight_and_images_use_both_renders(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(run, "render_docs", lambda version, chart: at(overlay_docs(), version.tag))
    settings = Settings(mode="rehearsal", target="kind", rehearse_from="v4.6.3",
                        rehearse_to=versions.MASTODON)
    both = run.rehearsal_images(settings)
    assert f"{versions.MASTODON_IMAGE}:v4.6.3" in both
    assert f"{versions.MASTODON_IMAGE}:{versions.MASTODON}" in both
    renders = run.preflight(run.plan_of(settings))
    assert p.inspect_render(renders.after).images["web"].endswith(versions.MASTODON)
    assert p.inspect_render(renders.before).images["web"].endswith("v4.6.3")
    assert run.rehearsal_images(Settings()) == []


def test_preflight_refuses_what_cannot_work(monkeypatch: pytest.MonkeyPatch) -> None:
    def render_docs(version: p.Version, chart: p.Version) -> list[dict]:
        docs = at(overlay_docs(), version.tag)
        if version.tag == versions.MASTODON:
            deployment(docs)["spec"]["selector"]["matchLabels"]["tier"] = "web"
        return docs

    monkeypatch.setattr(run, "render_docs", render_docs)
    with pytest.raises(BadInput, match=r"spec\.selector changes") as refused:
        run.preflight(p.make_plan("v4.6.3", versions.MASTODON))
    assert "\n" not in str(refused.value)
