"""What a higher layer injects into the bring-up (the rehearsal's FROM render and images)."""

from __future__ import annotations

from tests.kube.test_bringup import make_ctx
from tootcheck.kube import bringup, plan
from tootcheck.kube.bringup import cluster
from tootcheck.rehearsal.run import bringup_hooks
from tootcheck.settings import Settings

NFS_ONLY = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: from-the-hook, namespace: nfs}\n"


def run_up_to_render(ctx: bringup.Context, paths: tuple[str, ...]) -> None:
    render = plan.Phase("render", always=True, cascade=False, paths=paths)
    by_name = {p.name: p for p in plan.KIND_PLAN}
    bringup.execute(ctx, [by_name["cluster"], render, by_name["secrets"]])


def test_a_render_override_replaces_the_render_of_its_path_only(tmp_path, kind_bin):
    ctx = make_ctx(tmp_path, kind_bin)
    ctx.hooks = bringup.BringUpHooks(
        render_override=lambda path: NFS_ONLY if path == "manifests/infra/nfs" else None)
    run_up_to_render(ctx, ("manifests/overlays/kind", "manifests/infra/nfs"))
    assert [d["metadata"]["name"] for d in ctx.render("manifests/infra/nfs").docs] == ["from-the-hook"]
    assert any(d["kind"] == "Deployment" for d in ctx.render("manifests/overlays/kind").docs)


def test_extra_images_join_the_app_image_phase_only(tmp_path, kind_bin):
    ctx = make_ctx(tmp_path, kind_bin)
    ctx.hooks = bringup.BringUpHooks(extra_images=lambda: ["ghcr.io/mastodon/mastodon:v4.8.0"])
    run_up_to_render(ctx, ("manifests/overlays/kind", "manifests/infra/nfs"))
    app = plan.Phase("app-images", paths=("manifests/overlays/kind",))
    infra = plan.Phase("images", paths=("manifests/infra/nfs",))
    assert "ghcr.io/mastodon/mastodon:v4.8.0" in cluster.wanted_images(ctx, app)
    assert "ghcr.io/mastodon/mastodon:v4.8.0" not in cluster.wanted_images(ctx, infra)


def test_outside_a_rehearsal_the_hooks_change_nothing():
    hooks = bringup_hooks(Settings(mode="gate"))
    assert hooks.render_override("manifests/overlays/kind") is None and list(hooks.extra_images()) == []
