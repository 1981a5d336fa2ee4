"""Certificate phases: cert-manager, and the CA ClusterIssuer with the run's test root CA."""

from __future__ import annotations

from typing import Any

from tootcheck.kube import objects, plan
from tootcheck.kube.apply import ApplyError
from tootcheck.kube.bringup.context import (
    Context,
    apply_and_wait,
    apply_docs,
    done_when,
    phase_digest,
    record,
    same_secret,
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


ISSUER_WATCHES = (Watch("cert-manager.io/v1", "ClusterIssuer", name="kirchner-social-issuer"),)


def root_ca_secret(ctx: Context) -> dict[str, Any]:
    """Secret cert-manager/tootcheck-root-ca: the run's test CA, for the CA ClusterIssuer."""
    assert ctx.ca is not None
    return objects.root_ca_secret(ctx.ca.cert_pem, ctx.ca.key.reveal())


def run_issuers(ctx: Context, phase: plan.Phase) -> str:
    # The CA's key pair first: the ClusterIssuer is Ready once it finds a CA there.
    docs = [root_ca_secret(ctx), *ctx.docs(*phase.paths)]
    # The webhook may refuse for a short while after its endpoint appears (its CA is
    # injected by cainjector): retry the apply, bounded.
    def applied() -> Readiness:
        try:
            return Readiness(True, f"{apply_docs(ctx, docs)} objects applied")
        except ApplyError as exc:
            return Readiness(False, str(exc))

    note = wait_for(applied, what="issuers accepted by the cert-manager webhook", timeout=180,
                    interval=3.0).reason
    verdict = wait_ready(ctx.kube, ISSUER_WATCHES, what="the CA ClusterIssuer", timeout=phase.timeout,
                         retry_on=transient_errors())
    record(ctx, phase, phase_digest(ctx, phase))
    return f"{note}; {verdict.reason}"


def done_issuers(ctx: Context, phase: plan.Phase) -> bool:
    """Done when the issuer is Ready with this render and signs with the run's CA."""
    return done_when(ISSUER_WATCHES)(ctx, phase) and same_secret(ctx, root_ca_secret(ctx))
