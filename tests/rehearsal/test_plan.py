"""The rehearsal plan: versions, refusals, the upgrade-path table, requirements on the
render at TO, immutable changes, and the rendering workspace (real kustomize)."""

from __future__ import annotations

import argparse
import copy
from functools import cache
from pathlib import Path

import pytest
import yaml

from tests import REPO_ROOT, load_all
from tootcheck import versions
from tootcheck.errors import BadInput
from tootcheck.kube.apply import split_documents
from tootcheck.rehearsal import plan as p
from tootcheck.rehearsal import renderer, run, table
from tootcheck.settings import Settings
from tootcheck.tools import find

RENDER = REPO_ROOT / "manifests" / "rendered" / "overlay-kind.yaml"


@cache
def _overlay_docs() -> tuple[dict, ...]:
    return tuple(d for d in load_all(RENDER.read_text()) if d)


def overlay_docs() -> list[dict]:
    """The committed overlay render (parsed once; each caller gets its own copy)."""
    return copy.deepcopy(list(_overlay_docs()))


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
    ("v4.1.4", "v4.7.2", "predates v4.2.0"),
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
    assert lines == sorted(lines) and lines[0] == p.MIN_SUPPORTED.line == (4, 2)
    assert lines[-1] >= p.v(versions.MASTODON).line, "the pinned release is in the table"
    for earlier, later in zip(p.RELEASE_LINES, p.RELEASE_LINES[1:], strict=False):
        assert later.postgres.min >= earlier.postgres.min
        assert later.redis.min >= earlier.redis.min
    for row in p.RELEASE_LINES:
        assert row.sources and all(s.url.startswith("https://") and s.version
                                   for s in row.sources.values())


def test_the_table_is_package_data_and_every_cite_must_resolve() -> None:
    from importlib import resources

    text = resources.files("tootcheck.rehearsal").joinpath(table.DATA_FILE).read_text()
    assert table.parse(text).lines == p.RELEASE_LINES
    broken = text.replace("cite: uri_unique", "cite: no_such_source", 1)
    with pytest.raises(BadInput, match="cites 'no_such_source'"):
        table.parse(broken)
    with pytest.raises(BadInput, match="is not a version"):
        table.parse(text.replace('min: "14", cite: dependencies', 'min: "fourteen", cite: '
                                 "dependencies", 1))


# Expected, per line entered, written out from the release notes (not read from the table):
# (PostgreSQL min, excluded, Redis min, secrets to generate, post-deployment migration ids
# (prefixes), the URL its post-deployment step cites)
EXPECTED = {
    "4.3": ((12,), ((14, 0), (14, 3)), (4,), p.ENCRYPTION_KEYS,
            ("20240307180905", "20240916190140"), "github.com/mastodon/mastodon/tree/v4.3.0"),
    "4.4": ((13,), (), (6, 2), (), ("20241123160722", "20250520192024"),
            "github.com/mastodon/mastodon/tree/v4.4.0"),
    "4.5": ((14,), (), (7, 0), (), (), "github.com/mastodon/mastodon/pull/39493"),
    "4.6": ((14,), (), (7, 0), (), (), "github.com/mastodon/mastodon/pull/39493"),
    "4.7": ((14,), (), (7, 0), (), ("20260702144128", "20260720", "20260804081821"),
            "github.com/mastodon/mastodon/pull/39882"),
}
RELEASES = ["v4.2.0", "v4.2.10", "v4.3.0", "v4.3.13", "v4.4.0", "v4.4.1", "v4.4.8", "v4.5.0",
            "v4.5.11", "v4.6.0", "v4.6.5", "v4.7.0", "v4.7.1", "v4.7.2"]
PAIRS = [(a, b) for i, a in enumerate(RELEASES) for b in RELEASES[i + 1:]]


@pytest.mark.parametrize(("source", "target"), PAIRS)
def test_every_pair_from_4_2_0_to_4_7_2(source: str, target: str) -> None:
    plan = p.make_plan(source, target)
    a, b = p.v(source), p.v(target)
    entered = [name for name in EXPECTED if a.line < p.v(f"v{name}.0").line <= b.line]
    assert [row.name for row in plan.lines] == entered
    governing = [name for name in EXPECTED if p.v(f"v{name}.0").line <= b.line]
    if governing:
        pg, _, redis, *_ = EXPECTED[governing[-1]]
        assert (plan.postgres.min, plan.redis.min) == (pg, redis)
    # 4.3's excluded PostgreSQL range stays excluded whenever TO is 4.3 or later
    assert (((14, 0), (14, 3)) in plan.postgres.excluded) == (b.line >= (4, 3))
    steps = plan.procedure()
    names = [s.name for s in steps]
    assert names[0] == "backup" and "pre-deployment migrations" in names
    assert names.index("pre-deployment migrations") < names.index("restart") < \
        names.index("post-deployment migrations")
    for step in steps:
        if step.name != "after the upgrade":
            assert step.cite.startswith("https://"), step
    text = p.plan_text(plan)
    for name in entered:
        _, _, _, secrets, ids, cite = EXPECTED[name]
        post = next(s for s in steps if s.name == f"{name}: post-deployment migrations")
        assert all(i in post.does for i in ids) and cite in post.cite
        assert (ids == ()) == (post.does == "none")
        if secrets:
            generated = next(s for s in steps if s.name == f"{name}: secrets")
            assert all(k in generated.does for k in secrets)
            assert "db:encryption:init" in generated.does
    # the encryption keys are generated exactly when FROM predates them
    assert (any(s.name == "4.3: secrets" for s in steps)) == (a.line < (4, 3) <= b.line)
    assert set(p.ENCRYPTION_KEYS) <= set(plan.env_required) or b.line < (4, 3)
    # OTP_SECRET: needed while 4.3's 2FA migration has to run, no longer read otherwise
    assert ("OTP_SECRET" in plan.env_required) == (a.line < (4, 3) <= b.line)
    assert ("OTP_SECRET" in plan.env_removed) == (a.line >= (4, 3) and b.line >= (4, 4))
    assert ("REDIS_NAMESPACE" in plan.env_removed) == (b.line >= (4, 4))
    assert (any("skip it" in w for w in plan.warnings)) == (target == "v4.4.0")
    assert (any("v4.7.1 or later" in w for w in plan.warnings)) == (target == "v4.7.0")
    assert plan.describe() in text and "source: https://" in text


def test_done_when_4_2_10_to_4_7_2_prints_keys_and_both_post_deployment_migrations(
        capsys: pytest.CaptureFixture[str]) -> None:
    from tootcheck.commands import preflight

    args = argparse.Namespace(from_version="v4.2.10", to_version="v4.7.2", chart_from="",
                              chart_to="", plan=True)
    assert preflight.run_rehearse(args, probe=None) == 0
    out = capsys.readouterr().out
    for key in p.ENCRYPTION_KEYS:
        assert key in out
    assert "[4.3: post-deployment migrations] 20240307180905" in out
    assert "[4.7: post-deployment migrations] 20260702144128" in out
    assert "SKIP_POST_DEPLOYMENT_MIGRATIONS=true" in out


def test_preflight_prints_the_plan_warnings(capsys: pytest.CaptureFixture[str]) -> None:
    from tootcheck.commands import preflight

    args = argparse.Namespace(from_version="v4.7.2", to_version="v4.9.0", chart_from="",
                              chart_to="", plan=False, cluster_name="x", kind_config="/nope")

    class NoDocker(preflight.Probe):
        def which(self, name: str) -> str | None:
            return None

    with pytest.raises(BadInput, match="docker CLI not found"):
        preflight.run_rehearse(args, probe=NoDocker())
    out = capsys.readouterr().out
    assert "warning: TO v4.9.0 is newer than the upgrade-path table" in out


def test_avoided_release_and_newer_than_table_warn() -> None:
    assert any("4.4.x" in w and "36350" in w for w in p.make_plan("v4.3.13", "v4.4.0").warnings)
    assert any("newer than the upgrade-path table" in w
               for w in p.make_plan("v4.7.2", "v4.9.0").warnings)


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
    for expected in ("PostgreSQL >= 14, not 14.0-14.3; the deployment runs 13.20",
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
    monkeypatch.setattr(renderer, "render_docs", lambda version, chart: at(overlay_docs(), version.tag))
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

    monkeypatch.setattr(renderer, "render_docs", render_docs)
    with pytest.raises(BadInput, match=r"spec\.selector changes") as refused:
        run.preflight(p.make_plan("v4.6.3", versions.MASTODON))
    assert "\n" not in str(refused.value)


# ------------------------------------------- exact ranges and render refusals


@pytest.mark.parametrize(("found", "verdict"), [
    ((14, 0), "inside the excluded range 14.0-14.3"), ((14, 3), "inside the excluded range"),
    ((14, 4), None), ((13, 20), "older than 14"), ((17, 11), None),
    ((14,), "does not say its minor version"),
])
def test_postgres_range_excludes_14_0_to_14_3(found: tuple[int, ...], verdict: str | None) -> None:
    minimum = p.make_plan("v4.2.10", "v4.7.2").postgres
    problem = minimum.problem(found)
    assert (problem is None) if verdict is None else (verdict in (problem or ""))


def test_postgres_14_2_in_the_render_is_refused_with_its_source() -> None:
    docs = at(overlay_docs(), "v4.5.0")
    pod = deployment(docs)["spec"]["template"]["spec"]
    next(c for c in pod["initContainers"] if c["name"] == "postgres")["image"] = "postgres:14.2"
    problems = p.requirement_problems(p.make_plan("v4.3.5", "v4.5.0"), p.inspect_render(docs))
    assert any("14.2 (inside the excluded range 14.0-14.3" in x and "https://" in x
               for x in problems)


def test_postgres_major_change_and_renamed_workload_are_refused() -> None:
    before = overlay_docs()
    after = copy.deepcopy(before)
    pod = deployment(after)["spec"]["template"]["spec"]
    next(c for c in pod["initContainers"] if c["name"] == "postgres")["image"] = "postgres:18.1"
    change = p.postgres_major_change(p.inspect_render(before), p.inspect_render(after))
    assert change is not None and "pg_upgrade" in change and "\n" not in change
    assert p.postgres_major_change(p.inspect_render(before), p.inspect_render(before)) is None
    deployment(after)["metadata"]["name"] = "mastodon-main"
    renamed = p.workload_renamed(before, after)
    assert renamed is not None and "mastodon -> mastodon-main" in renamed and "\n" not in renamed
    assert p.workload_renamed(before, before) is None


def test_from_4_2_runs_streaming_from_the_mastodon_image() -> None:
    old = {o["name"]: o for o in p.image_overrides(p.v("v4.2.10"))}
    assert old[versions.MASTODON_STREAMING_IMAGE] == {
        "name": versions.MASTODON_STREAMING_IMAGE, "newName": versions.MASTODON_IMAGE,
        "newTag": "v4.2.10"}
    new = {o["name"]: o for o in p.image_overrides(p.v("v4.3.0"))}
    assert "newName" not in new[versions.MASTODON_STREAMING_IMAGE]
