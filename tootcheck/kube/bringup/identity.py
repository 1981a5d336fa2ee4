"""Identity phases: Authentik's bootstrap Secret, Authentik, its Mastodon blueprint."""

from __future__ import annotations

import time
from typing import Any

import yaml

from tootcheck.kube import objects, plan
from tootcheck.kube.bringup.context import (
    BLUEPRINT,
    BLUEPRINT_NUDGE_S,
    HTTP_TIMEOUT_S,
    Context,
    apply_and_wait,
    apply_docs,
    http_readiness,
    same_secret,
)
from tootcheck.kube.readiness import Readiness
from tootcheck.kube.waits import Watch


def authentik_secret(ctx: Context) -> dict[str, Any]:
    assert ctx.secrets is not None
    return objects.authentik_bootstrap(ctx.secrets, ctx.settings.domain)


def run_authentik_secrets(ctx: Context, phase: plan.Phase) -> str:
    namespaces = objects.namespace_docs(ctx.docs("manifests/infra/authentik"), "authentik")
    count = apply_docs(ctx, [*namespaces, authentik_secret(ctx)])
    return f"{count} objects applied (Secret authentik/{objects.AUTHENTIK_SECRET})"


def done_authentik_secrets(ctx: Context, phase: plan.Phase) -> bool:
    return same_secret(ctx, authentik_secret(ctx))


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
    return apply_and_wait(ctx, phase, AUTHENTIK_WATCHES, extra=lambda: oidc_discovery(ctx))


