"""Cluster phases: the kind cluster, the run's secrets, the renders, image preload, nodes."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from tootcheck import secretgen
from tootcheck.errors import BadInput, ToolMissing
from tootcheck.kube import images as img
from tootcheck.kube import kindconfig, objects, plan, safety, testca
from tootcheck.kube.apply import SAFE_DUMPER, images, split_documents
from tootcheck.kube.bringup.context import (
    KIND_CONFIG,
    OVERLAY,
    BringUpFailed,
    Context,
    Finish,
    Rendered,
    now_utc,
    poll_once,
    transient_errors,
    watches_ready,
)
from tootcheck.kube.bringup.kind import run_kind_config
from tootcheck.kube.waits import Watch, wait_ready
from tootcheck.redaction import Secret, redact
from tootcheck.waiting import wait_until


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
    connect = ctx.connect
    assert connect is not None
    ctx.kube = wait_until(lambda: connect(ctx.kubeconfig, ctx.context_name),
                          what=f"API server of kind cluster {ctx.name}", timeout=120, interval=2.0,
                          retry_on=(BadInput,))
    if ctx.created:
        ctx.kube.apply(safety.marker(ctx.name, ctx.run_id, now_utc()))
    state = ctx.kube.get("v1", "ConfigMap", objects.STATE, objects.SUITE_NAMESPACE)
    ctx.state = dict((state or {}).get("data") or {})
    return f"{note}; kubeconfig {ctx.kubeconfig}"


def run_secrets(ctx: Context, phase: plan.Phase) -> str:
    """The run's secrets and test CA: read back from a reused cluster, the rest generated
    and stored; then the run's values go into the renders that carry them."""
    stored = objects.decode_data(ctx.kube.get("v1", "Secret", objects.RUN_SECRETS, objects.SUITE_NAMESPACE))
    values, generated = secretgen.complete(stored)
    ca, new_ca = testca.complete(stored)
    if new_ca and plan.STATE_KEY_PREFIX + "issuers" in ctx.state:
        # Brought up before the CA was the run's: cert-manager made it, and what it signed
        # would not verify against a new one.
        raise BringUpFailed(f"kind cluster {ctx.name!r} has issuers but no stored test CA (an "
                            "earlier tootcheck let cert-manager make it): delete it with "
                            f"`kind delete cluster --name {ctx.name}`")
    if generated or new_ca:
        ctx.kube.apply(objects.run_secrets(values, ca.stored()))
    if ctx.secret_overrides:  # never stored: the run's Secret keeps the generated values
        values = secretgen.SecretSet({**values.values, **{
            k: Secret(v, k) for k, v in ctx.secret_overrides.items()}})
    ctx.secrets = values
    ctx.ca = ca
    ensure_ca(ctx)
    finish_renders(ctx)
    kept = len(values) - len(generated)
    counts = f"{len(generated)} generated, {kept} read back" if kept else f"{len(generated)} generated"
    return f"{counts}; test CA {'generated' if new_ca else 'read back'}, in {ctx.ca_file}"


def ensure_ca(ctx: Context) -> None:
    """Write the run's CA certificate (never its key) to the run's CA file. Only the
    ``secrets`` phase calls this, and the phases that read ``ctx.ca_file`` start after it."""
    assert ctx.ca is not None
    path = ctx.cache_dir / "ca.crt"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(ctx.ca.cert_pem)
    ctx.ca_file = path


def run_render(ctx: Context, phase: plan.Phase) -> str:
    """Render every kustomization; needs no cluster and no secret. The overlay's render
    gets the run's values in :func:`finish_renders`, once the secrets are known."""
    from tootcheck.rendering import render, source_dir

    render_fn = ctx.render_fn or (lambda directory: render(directory, timeout=600))
    total = 0
    for path in phase.paths:
        # A rehearsal deploys the overlay at FROM first (images, and the chart if it changes).
        override = ctx.hooks.render_override(path)
        app_dir = ctx.settings.app_dir if path == OVERLAY else None
        finish: Finish | None = None
        composed = app_dir is not None and override is None  # make e2e APP=DIR
        if composed:
            assert app_dir is not None
            docs, finish = app_overlay(ctx, app_dir, render_fn)
        else:
            docs = split_documents(override if override is not None
                                   else render_fn(source_dir(path)), path)
            if path == OVERLAY:
                finish = _with_vapid
        keep_render(ctx, path, docs, finish, secret_values=composed)
        total += len(docs)
    return f"{len(phase.paths)} kustomizations, {total} objects (applied copies in {ctx.out_dir / 'render'})"


def _with_vapid(values: secretgen.SecretSet, docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return objects.with_env(docs, {"VAPID_PUBLIC_KEY": values.vapid_public_key})


def keep_render(ctx: Context, path: str, docs: list[dict[str, Any]], finish: Finish | None = None,
                *, secret_values: bool = False) -> None:
    """Remember a render; one that still needs the run's values is written once it has them
    (``secret_values``: they include secrets, which the copy on disk masks)."""
    out = ctx.out_dir / "render" / (path.removeprefix("manifests/").replace("/", "-") + ".yaml")
    applied = yaml.dump_all(docs, Dumper=SAFE_DUMPER, sort_keys=False)
    if finish is None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(redact(applied) if secret_values else applied)
    ctx.renders[path] = Rendered(path, docs, out, plan.render_digest([applied]), finish,
                                 secret_values)


def finish_renders(ctx: Context) -> None:
    """Put the run's values into the renders that carry them (the overlay's VAPID public
    key; APP=DIR's secret-valued keys), so what is applied and digested is final."""
    assert ctx.secrets is not None
    for path, rendered in list(ctx.renders.items()):
        if rendered.finish is not None:
            keep_render(ctx, path, rendered.finish(ctx.secrets, rendered.docs),
                        secret_values=rendered.secret_values)


def app_overlay(ctx: Context, app_dir: Path, render_fn: Callable[[Path], str],
                ) -> tuple[list[dict[str, Any]], Finish]:
    """The operator's DIR inside a kind overlay composed at run time (make e2e APP=DIR),
    and how the run's values go into it."""
    from tootcheck.kube import overlay

    docs, facts = overlay.compose_app_overlay(app_dir, render_fn, ctx.out_dir / "app-overlay",
                                              oidc_issuer=ctx.settings.oidc_issuer,
                                              domain=ctx.settings.domain)

    def finish(values: secretgen.SecretSet, raw: list[dict[str, Any]]) -> list[dict[str, Any]]:
        known = {k: values[k].reveal() for k in values}
        value_for = overlay.run_values(known, lambda: Secret(secretgen.alphanumeric()).reveal())
        return overlay.with_run_values(raw, facts, value_for, values.vapid_public_key)

    return docs, finish


def wanted_images(ctx: Context, phase: plan.Phase) -> list[str]:
    """The images of the renders an image phase loads (its ``paths``); the phase that
    loads the app's also loads what the hooks add (a rehearsal's TO images, so the
    measured downtime excludes pulling them), but not what the infrastructure's phase
    loads too (PostgreSQL): the two run at once, and one image loaded twice at the same
    time costs both of them."""
    wanted = images(ctx.docs(*phase.paths))
    if OVERLAY in phase.paths:
        wanted += [i for i in ctx.hooks.extra_images() if i not in wanted]
        # The plan's render makes every INFRA path; a render of a subset (tests) has only some.
        infra = set(images(ctx.docs(*(p for p in plan.INFRA if p in ctx.renders))))
        wanted = [i for i in wanted if i not in infra]
    return wanted


def missing_images(ctx: Context, phase: plan.Phase) -> list[str]:
    present = img.node_image_names(ctx.kube.list("v1", "Node"))
    return img.missing_on_node(wanted_images(ctx, phase), present)


def _keep_report(ctx: Context, phase: plan.Phase, report: img.PreloadReport) -> None:
    with ctx.lock:
        ctx.image_reports[phase.name] = report


def run_images(ctx: Context, phase: plan.Phase) -> str:
    wanted = wanted_images(ctx, phase)
    missing = missing_images(ctx, phase)
    report = img.PreloadReport(wanted=len(wanted), already_on_node=len(wanted) - len(missing),
                               images=list(wanted))
    _keep_report(ctx, phase, report)
    if missing:
        docker = ctx.docker or shutil.which("docker")
        if docker is None:
            raise ToolMissing("docker", "needed to pull and load images")
        img.preload(missing, docker=Path(docker), kind=Path(ctx.cluster.kind_path), cluster=ctx.name,
                    report=report)
    return report.summary()


def done_images(ctx: Context, phase: plan.Phase) -> bool:
    return not missing_images(ctx, phase)


def after_skip_images(ctx: Context, phase: plan.Phase) -> None:
    wanted = wanted_images(ctx, phase)
    _keep_report(ctx, phase, img.PreloadReport(wanted=len(wanted), already_on_node=len(wanted),
                                               images=list(wanted)))


NODE_WATCHES = (Watch("v1", "Node"), Watch("apps/v1", "DaemonSet", "kube-system"))


def run_nodes(ctx: Context, phase: plan.Phase) -> str:
    return wait_ready(ctx.kube, NODE_WATCHES, what="nodes and kube-system DaemonSets",
                      timeout=phase.timeout, retry_on=transient_errors()).reason


def done_nodes(ctx: Context, phase: plan.Phase) -> bool:
    return poll_once(lambda: watches_ready(ctx, NODE_WATCHES))


