"""The rehearsal's data work in the cluster, beyond the REST markers: the operator's
dump and secrets, the scaled seed, the before/after snapshots, and the way back.
Thin over :mod:`~tootcheck.rehearsal.production`, :mod:`~tootcheck.rehearsal.dataset`
and :mod:`~tootcheck.rehearsal.way_back`, whose pieces are tested against real peers."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from tootcheck.errors import BadInput
from tootcheck.rehearsal import dataset, production, rollback, way_back
from tootcheck.rehearsal import plan as plan_mod
from tootcheck.rehearsal.access import CONFIG_MAP, database, redis_client, upgraded_pod
from tootcheck.rehearsal.plan import RehearsalPlan
from tootcheck.rehearsal.renderer import plan_of
from tootcheck.settings import Settings
from tootcheck.target import Target

# The keys that protect data: the dump's encrypted columns, sessions and push
# subscriptions depend on them. Others (DB_PASS, REDIS_PASSWORD, OIDC) stay the run's own.
DATA_SECRETS = ("SECRET_KEY_BASE", "OTP_SECRET", *plan_mod.ENCRYPTION_KEYS)


def secret_overrides(settings: Settings) -> dict[str, str]:
    """``--rehearse-secrets``: the operator's data keys for the bring-up (BadInput, one
    line, when the file lacks what FROM needs)."""
    if settings.mode != "rehearsal" or not settings.rehearse_secrets:
        return {}
    plan = plan_of(settings)
    secrets = production.load_secrets(Path(settings.rehearse_secrets), plan.source)
    return production.overrides(secrets, DATA_SECRETS)


def load_dump(kube: Any, target: Target, plan: RehearsalPlan, dump: Path) -> str:
    """Replace FROM's fresh database with the operator's dump, then prove the secrets
    decrypt it; returns the probe's line, BadInput (one line) when they do not match."""
    pod = upgraded_pod(kube, target.namespace, plan.source.tag)
    if pod is None:
        raise BadInput(f"no pod at FROM {plan.source} to restore DUMP {dump} into")
    name = pod["metadata"]["name"]
    config = (kube.get("v1", "ConfigMap", CONFIG_MAP, target.namespace) or {}).get("data") or {}
    db = way_back.database_of(config)
    run_pg = rollback.kube_exec(kube, target.namespace, name, way_back.POSTGRES_CONTAINER)
    for argv in rollback.restore_argvs(db, "")[:2]:  # drop and create; the dump fills it
        run_pg(argv)
    with database(target, kube) as url:
        production.restore_dump(dump, url)
    probe = rollback.kube_exec(kube, target.namespace, name, way_back.MEDIA_CONTAINER,
                               timeout=600)
    try:
        output = probe(list(production.PROBE_ARGV))
    except BadInput as exc:
        output = str(exc)
    ok, line = production.judge_decrypt(output, plan.source)
    if not ok:
        raise BadInput(f"DUMP {dump}: {line}")
    return line


def scale_seed(kube: Any, target: Target, plan: RehearsalPlan, scale: dataset.Scale) -> str:
    """``--seed-scale N`` through ``bin/rails runner`` in FROM's web container; the
    counts it printed, or BadInput (one line)."""
    pod = upgraded_pod(kube, target.namespace, plan.source.tag)
    if pod is None:
        raise BadInput(f"no pod at FROM {plan.source} to seed")
    run_web = rollback.kube_exec(kube, target.namespace, pod["metadata"]["name"],
                                 way_back.MEDIA_CONTAINER, timeout=3600)
    out = run_web(["bin/rails", "runner", dataset.seed_script(scale, str(time.time_ns()))])
    line = next((ln for ln in out.splitlines() if ln.startswith("tootcheck-seeded ")), "")
    if not line:
        raise BadInput(f"--seed-scale {scale.n}: the seed printed no counts "
                       f"({' '.join(out.split())[-160:] or 'no output'})")
    return f"seeded at scale {scale.n}: {line.removeprefix('tootcheck-seeded ')}"


def take_snapshot(target: Target, kube: Any, *, hold: bool = False,
                  held: str = "") -> tuple[dataset.Snapshot | None, str]:
    """Counts, actor keys and the held job through port-forwards; (None, why) when the
    data cannot be read (reported by rehearsal.data_intact)."""
    import psycopg

    try:
        with database(target, kube) as url, psycopg.connect(url.reveal()) as conn, \
                redis_client(target, kube)() as client:
            return dataset.snapshot(conn, client, hold=hold, held=held), ""
    except Exception as exc:
        return None, f"{type(exc).__name__}: {' '.join(str(exc).split())[:200]}"
