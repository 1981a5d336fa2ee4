"""Certificate phases: cert-manager, the issuers and the test root CA."""

from __future__ import annotations

from pathlib import Path

from tootcheck.kube import objects, plan
from tootcheck.kube.apply import ApplyError
from tootcheck.kube.bringup.context import (
    BringUpFailed,
    Context,
    apply_and_wait,
    apply_docs,
    phase_digest,
    record,
    transient_errors,
)
from tootcheck.kube.readiness import Readiness, endpoints_readiness
from tootcheck.kube.waits import Watch, wait_for, wait_ready


def webhook_endpoints(ctx: Context) -> Readiness:
    slices = ctx.kube.list("discovery.k8s.io/v1", "EndpointSlice", "cert-manager",
                           label_selector="kubernetes.io/service-name=cert-manager-webhook")
    verdict = endpoints_readiness(slices)
    return Readiness(verdict.ready, f"webhook: {verdict.reason}")


CERT_MANAGER_WATCHES = (Watch("apps/v1", "Deployment", "cert-manager"),)


def run_cert_manager(ctx: Context, phase: plan.Phase) -> str:
    return apply_and_wait(ctx, phase, CERT_MANAGER_WATCHES, extra=lambda: webhook_endpoints(ctx))


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
    with ctx.lock:  # phases that run at the same time may each load it
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(pem)
        ctx.ca_file = path
    return path


