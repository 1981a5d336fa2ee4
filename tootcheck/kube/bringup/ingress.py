"""Ingress phases: CoreDNS rewrites the public names to Traefik; Traefik itself."""

from __future__ import annotations

from tootcheck.kube import plan
from tootcheck.kube.bringup.context import (
    Context,
    apply_and_wait,
    apply_docs,
    now_utc,
    phase_digest,
    record,
    transient_errors,
)
from tootcheck.kube.waits import Watch, wait_ready

COREDNS_WATCHES = (Watch("apps/v1", "Deployment", "kube-system", "coredns"),)


def run_coredns(ctx: Context, phase: plan.Phase) -> str:
    count = apply_docs(ctx, ctx.docs(*phase.paths))
    # Restart now instead of waiting for the reload plugin (~30 s): a template annotation.
    ctx.kube.apply({"apiVersion": "apps/v1", "kind": "Deployment",
                    "metadata": {"name": "coredns", "namespace": "kube-system"},
                    "spec": {"template": {"metadata": {"annotations": {
                        "tootcheck/restarted-at": now_utc()}}}}})
    verdict = wait_ready(ctx.kube, COREDNS_WATCHES, what="CoreDNS rollout", timeout=phase.timeout,
                         retry_on=transient_errors())
    record(ctx, phase, phase_digest(ctx, phase))
    return f"{count} objects applied, restarted; {verdict.reason}"




TRAEFIK_WATCHES = (Watch("apps/v1", "Deployment", "traefik"),)



def run_traefik(ctx: Context, phase: plan.Phase) -> str:
    return apply_and_wait(ctx, phase, TRAEFIK_WATCHES)


