"""App phases: Mastodon's inputs, Mastodon, the test accounts, the in-cluster peers."""

from __future__ import annotations

from typing import Any

from tootcheck.kube import accounts as acct
from tootcheck.kube import objects, plan
from tootcheck.kube.bringup.context import (
    HTTP_TIMEOUT_S,
    MASTODON_POD,
    BringUpFailed,
    Context,
    apply_and_wait,
    apply_docs,
    done_when,
    http_readiness,
    record,
    same_secret,
)
from tootcheck.kube.readiness import Readiness
from tootcheck.kube.waits import Watch
from tootcheck.redaction import Secret, redact
from tootcheck.target import Account


def mastodon_inputs(ctx: Context) -> list[dict[str, Any]]:
    assert ctx.secrets is not None and ctx.ca is not None
    return [*objects.namespace_docs(ctx.docs("manifests/overlays/kind"), "mastodon"),
            objects.mastodon_secrets(ctx.secrets), objects.ca_configmap(ctx.ca.cert_pem)]


def run_mastodon_secrets(ctx: Context, phase: plan.Phase) -> str:
    count = apply_docs(ctx, mastodon_inputs(ctx))
    return f"{count} objects applied (Secret {objects.MASTODON_SECRET}, ConfigMap {objects.CA_CONFIGMAP})"


def done_mastodon_secrets(ctx: Context, phase: plan.Phase) -> bool:
    docs = mastodon_inputs(ctx)
    secret = next(d for d in docs if d["kind"] == "Secret")
    ca = next(d for d in docs if d["kind"] == "ConfigMap")
    live_ca = ctx.kube.get("v1", "ConfigMap", ca["metadata"]["name"], "mastodon")
    return same_secret(ctx, secret) and bool(live_ca) and live_ca.get("data") == ca["data"]


def mastodon_watches(ctx: Context) -> tuple[Watch, ...]:
    ns = ctx.settings.namespace
    return (Watch("apps/v1", "Deployment", ns, "mastodon"),
            Watch("v1", "Pod", ns, selector=MASTODON_POD),
            Watch("v1", "PersistentVolumeClaim", ns),
            # Mastodon does not need cert-manager's phase: its CRDs may not be served yet.
            Watch("cert-manager.io/v1", "Certificate", ns, "kirchner-social-tls", until_served=True))


def mastodon_health(ctx: Context) -> Readiness:
    def expect(response: Any) -> str | None:
        return None if response.status_code == 200 else f"/health answered {response.status_code}"

    return http_readiness(ctx, f"https://{ctx.settings.domain}/health", expect=expect)


# The phases Mastodon's Certificate is issued through that Mastodon itself does not need
# (it runs beside them): the issuers and what only they need (cert-manager).
ISSUING = frozenset(p.name for p in plan.closure(plan.KIND_PLAN, ["issuers"])) - frozenset(
    p.name for p in plan.closure(plan.KIND_PLAN,
                                 next(m.needs for m in plan.KIND_PLAN if m.name == "mastodon")))


def certificate_stop(ctx: Context) -> str | None:
    """Why Mastodon's wait for its Certificate cannot end well: a phase it is issued
    through failed this run."""
    failed = sorted(ctx.failed & ISSUING)
    if failed:
        return (f"the {' and '.join(failed)} phase{'s' if len(failed) > 1 else ''} failed: "
                "Certificate kirchner-social-tls will not be issued")
    return None


def run_mastodon(ctx: Context, phase: plan.Phase) -> str:
    return apply_and_wait(ctx, phase, mastodon_watches(ctx), extra=lambda: mastodon_health(ctx),
                          stop=lambda: certificate_stop(ctx))


def done_mastodon(ctx: Context, phase: plan.Phase) -> bool:
    return done_when(mastodon_watches(ctx), mastodon_health)(ctx, phase)


def verify_token(ctx: Context, token: Secret, username: str) -> str | None:
    """None when the token authenticates as ``username``, else the problem."""
    import requests

    url = f"https://{ctx.settings.domain}/api/v1/accounts/verify_credentials"
    try:
        with ctx.target().http() as session:
            response = session.get(url, headers={"Authorization": f"Bearer {token.reveal()}"},
                                   timeout=HTTP_TIMEOUT_S)
    except requests.RequestException as exc:
        return f"{username}: verify_credentials: {type(exc).__name__}"
    if response.status_code != 200:
        return f"{username}: verify_credentials answered {response.status_code}"
    got = (response.json() or {}).get("username")
    return None if got == username else f"token authenticates as {got!r}, not {username!r}"


def load_accounts(ctx: Context) -> dict[str, Account]:
    stored = objects.decode_data(
        ctx.kube.get("v1", "Secret", objects.ACCOUNTS_SECRET, ctx.settings.namespace))
    out: dict[str, Account] = {}
    for spec in acct.account_specs(ctx.settings.domain):
        fields = acct.stored_accounts(stored).get(spec.role) or {}
        if fields.get("username") != spec.username or not fields.get("token"):
            continue
        password = fields.get("password")
        out[spec.role] = Account(
            spec.username, Secret(fields["token"], f"token:{spec.username}"), spec.email,
            Secret(password, f"password:{spec.username}") if password else None)
    return out


def oidc_account(ctx: Context) -> Account:
    assert ctx.secrets is not None
    return Account(objects.OIDC_USERNAME, None, f"{objects.OIDC_USERNAME}@{ctx.settings.domain}",
                   ctx.secrets["OIDC_TEST_USER_PASSWORD"])


def done_accounts(ctx: Context, phase: plan.Phase) -> bool:
    found = load_accounts(ctx)
    if set(found) != {s.role for s in acct.account_specs(ctx.settings.domain)}:
        return False
    if any(verify_token(ctx, a.token, a.username) for a in found.values() if a.token):
        return False
    ctx.accounts = {**found, "oidc": oidc_account(ctx)}
    return True


def run_accounts(ctx: Context, phase: plan.Phase) -> str:
    from tootcheck.kube.pods import ready_pod

    ns = ctx.settings.namespace
    specs = acct.account_specs(ctx.settings.domain)
    pod = ready_pod(ctx.kube, ns, MASTODON_POD)
    previous = load_accounts(ctx)
    created, existing = [], []
    passwords: dict[str, Secret] = {}
    for spec in specs:
        done = ctx.kube.exec(ns, pod, "web", acct.tootctl_create(spec), timeout=300)
        outcome = acct.parse_create(spec.username, done.rc, done.stdout, done.stderr)
        if outcome.created and outcome.password is not None:
            created.append(spec.username)
            passwords[spec.role] = outcome.password
        elif outcome.exists:
            existing.append(spec.username)
            if spec.role in previous and previous[spec.role].password is not None:
                passwords[spec.role] = previous[spec.role].password  # type: ignore[assignment]
        else:
            raise BringUpFailed(f"tootctl accounts create {spec.username}: {outcome.problem}")
    contact = next((s.email for s in specs if s.owner), None)
    minted = ctx.kube.exec(ns, pod, "web", acct.mint_tokens_argv(specs, contact), timeout=600)
    tokens, missing = acct.parse_tokens(minted.stdout, [s.username for s in specs])
    if missing:
        last = (minted.stderr.strip().splitlines() or [f"exit {minted.rc}"])[-1]
        raise BringUpFailed(f"token minting gave no token for {', '.join(missing)}: "
                            f"{redact(last)[:200]}")
    problems = [p for s in specs if (p := verify_token(ctx, tokens[s.username], s.username))]
    if problems:
        raise BringUpFailed(f"minted tokens do not verify: {'; '.join(problems)}")
    fields: dict[str, str] = {}
    for spec in specs:
        fields[f"{spec.role}.username"] = spec.username
        fields[f"{spec.role}.token"] = tokens[spec.username].reveal()
        if spec.role in passwords:
            fields[f"{spec.role}.password"] = passwords[spec.role].reveal()
        ctx.accounts[spec.role] = Account(spec.username, tokens[spec.username], spec.email,
                                          passwords.get(spec.role))
    ctx.accounts["oidc"] = oidc_account(ctx)
    ctx.kube.apply(objects.accounts_secret(fields))
    record(ctx, phase)
    return (f"{len(created)} created, {len(existing)} existed; {len(tokens)} tokens minted and "
            "verified")


PEER_WATCHES = (Watch("apps/v1", "Deployment", "mailpit"),
                Watch("apps/v1", "Deployment", "fediverse-peer"),
                Watch("cert-manager.io/v1", "Certificate", "fediverse-peer", "fedi-tls"))


def run_peers(ctx: Context, phase: plan.Phase) -> str:
    return apply_and_wait(ctx, phase, PEER_WATCHES)


