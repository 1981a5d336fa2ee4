"""Live checks of the OIDC login through Authentik: discovery, the headless login, negative paths.

* ``oidc.discovery`` (read-only): ``<OIDC_ISSUER>.well-known/openid-configuration``
  answers over verified HTTPS, its issuer equals OIDC_ISSUER exactly, the four
  endpoints are https and answer, and the JWKS can verify the advertised algorithm.
* ``oidc.login`` (mutating: Mastodon creates the account on the first login):
  Mastodon's sign-in button → Authentik's flows through the executor API →
  Mastodon's callback → a web session, proven by the home page's initial state,
  an API call with the session's token, and the account's username (and email,
  when the target has an admin token).
* ``oidc.negative_paths`` (mutating: the wrong-password probe is a failed login in
  Authentik's event log and reputation score): a wrong password, a tampered
  ``state`` and unregistered redirect URIs must all fail.

All HTTP goes through ``target.http()``: one pinned session, one cookie jar across
both hosts, the target's CA only, bounded timeouts.

One module of about 410 lines on purpose: the three OIDC checks share the login walk,
the account comparison and the fault vocabulary.
"""

from __future__ import annotations

import secrets
import time
from urllib.parse import parse_qsl, urlsplit

import requests
from mastodon import MastodonError

from tootcheck.checks.registry import live_check
from tootcheck.clients.authentik import IDENTIFICATION, PASSWORD, Credentials, FlowExecutor
from tootcheck.clients.mastodon import api, api_as
from tootcheck.clients.oidc import (
    REQUEST_TIMEOUT_S,
    LoginFailed,
    MastodonLogin,
    OIDCError,
    describe_error,
    error_page,
    fetch_jwks,
    fetch_metadata,
    is_asymmetric,
    is_https,
    issuer_mismatch,
    mastodon_username_for,
    probe,
    usable_keys,
    with_query_param,
)
from tootcheck.model import CheckResult, CheckRun
from tootcheck.redaction import Secret
from tootcheck.target import Account, Target

DEFAULT_CLIENT_ID = "mastodon"
CALLBACK = "/auth/auth/openid_connect/callback"

HASHED_SUB_HINT = ("; the username looks like Authentik's hashed_user_id subject: set the "
                   "provider's sub_mode to user_username or OIDC_UID_FIELD=preferred_username")

# Where each phase of a failed login points (LoginFailed.phase -> fault code).
LOGIN_FAULT_BY_PHASE = {
    "start": "login-start-failed",
    "authorize": "authorize-rejected",
    "flow": "flow-rejected",
    "callback": "callback-rejected",
    "session": "session-missing",
}


def is_hashed_subject(username: str) -> bool:
    """Whether a Mastodon username is the 30-character prefix of a hex digest
    (Authentik's default ``sub`` with ``OIDC_UID_FIELD=sub``).

    >>> is_hashed_subject("3f2a9c" * 5), is_hashed_subject("testuser")
    (True, False)
    """
    return len(username) == 30 and all(c in "0123456789abcdef" for c in username)


def _login(target: Target, credentials: Credentials, session: requests.Session, *,
           allow_consent: bool, timeout: float) -> MastodonLogin:
    def executor(s: requests.Session, origin: str) -> FlowExecutor:
        return FlowExecutor(s, origin, credentials, allow_consent=allow_consent, timeout=timeout)

    return MastodonLogin(session, domain=target.domain, auth_host=target.auth_host,
                         executor_factory=executor, timeout=timeout)


def _oidc_account(target: Target) -> tuple[Account, Secret]:
    account = target.account("oidc")
    if account.password is None:
        raise LookupError(f"target {target.name}: the oidc account has no password")
    return account, account.password


# ------------------------------------------------------------------ oidc.discovery


@live_check(
    "oidc.discovery",
    faults={
        "discovery-unreachable": "<OIDC_ISSUER>.well-known/openid-configuration does not answer "
                                 "a JSON document over verified HTTPS",
        "issuer-mismatch": "the document's issuer is not OIDC_ISSUER exactly (trailing slash "
                           "included); Mastodon refuses such a provider",
        "endpoint-not-https": "an authorization, token, userinfo or JWKS endpoint is not https",
        "endpoint-unreachable": "an endpoint fails TLS or connection, or answers 5xx",
        "jwks-no-key-for-alg": "no key in the JWKS can verify the ID-token algorithm the "
                               "provider advertises",
    },
)
def check_discovery(target: Target, *, timeout: float = REQUEST_TIMEOUT_S) -> CheckResult:
    """The provider's discovery document, endpoints and signing keys are what Mastodon needs."""
    run = CheckRun("oidc.discovery", target.name)
    started = time.monotonic()
    with target.http() as session:
        try:
            metadata, url = fetch_metadata(session, target.oidc_issuer, timeout=timeout)
        except OIDCError as exc:
            run.fail("discovery-unreachable", str(exc))
            return run.result()
        run.observe()
        run.evidence.update(discovery_url=url, issuer=metadata.issuer,
                            expected_issuer=target.oidc_issuer, endpoints=metadata.endpoints(),
                            signing_algs=list(metadata.signing_algs))
        why = issuer_mismatch(target.oidc_issuer, metadata.issuer)
        run.expect(why is None, "issuer-mismatch",
                   f"discovery issuer {metadata.issuer!r} is not OIDC_ISSUER "
                   f"{target.oidc_issuer!r}: {why}")
        statuses: dict[str, int] = {}
        for name, endpoint in metadata.endpoints().items():
            run.observe()
            if not is_https(endpoint):
                run.fail("endpoint-not-https", f"{name} is {endpoint}, not an https URL")
                continue
            try:
                statuses[name] = probe(session, endpoint, timeout=timeout)
            except OIDCError as exc:
                run.fail("endpoint-unreachable", f"{name}: {exc}")
                continue
            if statuses[name] >= 500:
                run.fail("endpoint-unreachable", f"{name} {endpoint} answered HTTP {statuses[name]}")
        run.evidence["endpoint_status"] = statuses
        if is_https(metadata.jwks_uri) and statuses.get("jwks_uri", 500) < 500:
            _check_keys(run, session, metadata.jwks_uri, metadata.signing_algs, timeout)
    run.metrics["discovery_s"] = round(time.monotonic() - started, 4)
    return run.result()


def _check_keys(run: CheckRun, session: requests.Session, jwks_uri: str,
                algs: tuple[str, ...], timeout: float) -> None:
    try:
        jwks = fetch_jwks(session, jwks_uri, timeout=timeout)
    except OIDCError as exc:
        run.fail("endpoint-unreachable", str(exc))
        return
    run.observe()
    usable = {alg: usable_keys(jwks, alg) for alg in algs if is_asymmetric(alg)}
    run.evidence["jwks"] = {"keys": [{k: key.get(k) for k in ("kid", "kty", "alg", "use", "crv")}
                                     for key in jwks["keys"] if isinstance(key, dict)],
                            "usable": usable}
    if not any(usable.values()):
        kinds = ", ".join(f"{k.get('kty')}/{k.get('alg') or '-'}" for k in jwks["keys"]
                          if isinstance(k, dict)) or "no keys"
        wanted = ", ".join(algs) or "nothing"
        run.fail("jwks-no-key-for-alg",
                 f"the provider signs ID tokens with {wanted} but its JWKS ({kinds}) holds no key "
                 f"that verifies {'it' if len(algs) == 1 else 'any of them'}")


# ------------------------------------------------------------------ oidc.login


@live_check(
    "oidc.login",
    faults={
        "login-start-failed": "Mastodon's sign-in button does not lead to the provider "
                              "(CSRF token, OmniAuth discovery such as an issuer mismatch)",
        "authorize-rejected": "Authentik refuses Mastodon's authorization request (e.g. the "
                              "redirect URI is not registered)",
        "flow-rejected": "Authentik's flow stops at a stage (wrong password, access denied)",
        "unexpected-consent": "a consent stage appears in a flow meant to be implicit",
        "callback-rejected": "Mastodon rejects the callback (state, ID token signature, issuer)",
        "session-missing": "the callback completes but Mastodon shows no signed-in session",
        "account-mismatch": "the session belongs to an account with another username or email",
        "api-rejected": "an authenticated API call with the session's token fails",
    },
    mutating=True,
)
def check_login(
    target: Target,
    *,
    expected_username: str | None = None,
    allow_consent: bool = False,
    timeout: float = REQUEST_TIMEOUT_S,
) -> CheckResult:
    """A user logs in to Mastodon through Authentik without a browser, and the session works."""
    run = CheckRun("oidc.login", target.name)
    account, password = _oidc_account(target)
    expected = expected_username or mastodon_username_for(account.username)
    run.evidence.update(authentik_user=account.username, expected_username=expected)
    started = time.monotonic()
    with target.http() as session:
        login = _login(target, Credentials(account.username, password), session,
                       allow_consent=allow_consent, timeout=timeout)
        try:
            web = login.login()
        except LoginFailed as exc:
            code = LOGIN_FAULT_BY_PHASE[exc.phase]
            if exc.kind == "unexpected-consent":
                code = "unexpected-consent"
            run.fail(code, str(exc))
            web = None
        finally:
            run.evidence.update(trace=login.trace, stages=login.executor.stages)
            run.metrics.update({f"{phase}_s": s for phase, s in login.phases.items()})
        if web is None:
            return run.result()
        run.metrics["login_s"] = round(time.monotonic() - started, 4)
        run.observe()
        run.evidence.update(account_id=web.account_id, username=web.username)
        run.expect(web.username == expected, "account-mismatch",
                   f"the session is @{web.username}, expected @{expected} "
                   f"(derived from Authentik user {account.username!r})"
                   + (HASHED_SUB_HINT if is_hashed_subject(web.username or "") else ""))
    token = Secret(web.access_token or "", "session token")
    _check_api(run, target, token, web.account_id or "", expected)
    _check_email(run, target, account, web.account_id or "")
    return run.result()


def _check_api(run: CheckRun, target: Target, token: Secret, account_id: str,
               expected: str) -> None:
    try:
        me = api(target, token).account_verify_credentials()
    except MastodonError as exc:
        run.fail("api-rejected", "GET /api/v1/accounts/verify_credentials with the session's "
                 f"access token failed: {type(exc).__name__}: {' '.join(str(exc).split())[:200]}")
        return
    run.observe()
    run.expect(str(me["id"]) == account_id and me["username"] == expected, "account-mismatch",
               f"verify_credentials answers @{me['username']} (id {me['id']}), "
               f"expected @{expected} (id {account_id})")


def _email_not_proven(run: CheckRun, reason: str) -> None:
    # Not a pass: the reports list it as NOT PROVEN (tootcheck.testing.record_unproven_parts).
    run.evidence["email"] = f"NOT PROVEN: {reason}"
    run.evidence.setdefault("not_proven", {})["email"] = reason


def _check_email(run: CheckRun, target: Target, account: Account, account_id: str) -> None:
    admin = target.accounts.get("admin")
    if not account.email or admin is None or admin.token is None:
        _email_not_proven(run, "needs the oidc account's email and an admin token")
        return
    try:
        record = api_as(target, "admin").admin_account(account_id)
    except MastodonError as exc:
        _email_not_proven(run, f"the admin API failed ({type(exc).__name__})")
        return
    run.observe()
    run.expect(str(record["email"]).lower() == account.email.lower(), "account-mismatch",
               f"the account's email is {record['email']!r}, expected {account.email!r}")


# ------------------------------------------------------------------ oidc.negative_paths


@live_check(
    "oidc.negative_paths",
    faults={
        "wrong-password-accepted": "a wrong password gets past Authentik or yields a session",
        "tampered-state-accepted": "Mastodon accepts a callback whose state it never issued",
        "unregistered-redirect-accepted": "Authentik accepts an authorization request for a "
                                          "redirect URI that is not registered",
        "probe-failed": "a probe could not reach the point it tests; the message says where "
                        "it stopped",
    },
    mutating=True,
)
def check_negative_paths(
    target: Target,
    *,
    client_id: str = DEFAULT_CLIENT_ID,
    timeout: float = REQUEST_TIMEOUT_S,
) -> CheckResult:
    """Wrong passwords, forged states and foreign redirect URIs are all refused."""
    run = CheckRun("oidc.negative_paths", target.name)
    account, password = _oidc_account(target)
    for name, probe_fn in (("wrong_password", _probe_wrong_password),
                           ("tampered_state", _probe_tampered_state)):
        started = time.monotonic()
        probe_fn(run, target, account, password, timeout)
        run.metrics[f"{name}_s"] = round(time.monotonic() - started, 4)
    started = time.monotonic()
    _probe_redirect_uris(run, target, client_id, timeout)
    run.metrics["unregistered_redirect_s"] = round(time.monotonic() - started, 4)
    return run.result()


def _expect_signed_out(run: CheckRun, login: MastodonLogin, code: str, what: str) -> None:
    try:
        web = login.home()
    except LoginFailed as exc:
        run.fail("probe-failed", f"after {what}, the home page could not be read: {exc}")
        return
    run.expect(not web.is_signed_in, code, f"after {what}, Mastodon shows @{web.username} "
               "signed in")


def _probe_wrong_password(run: CheckRun, target: Target, account: Account, _password: Secret,
                          timeout: float) -> None:
    wrong = Secret("tootcheck-wrong-" + secrets.token_urlsafe(18), "wrong password")
    with target.http() as session:
        login = _login(target, Credentials(account.username, wrong), session,
                       allow_consent=True, timeout=timeout)
        try:
            callback = login.authenticate(login.start())
        except LoginFailed as exc:
            run.evidence["wrong_password"] = {"stopped": exc.phase, "stage": exc.stage,
                                              "message": str(exc), "stages": exc.stages}
            if exc.phase == "flow" and exc.stage in (PASSWORD, IDENTIFICATION) \
                    and exc.kind in ("rejected", "denied"):
                run.observe()
            else:
                run.fail("probe-failed", f"the wrong-password probe stopped before the password "
                         f"was judged: {exc}")
        else:
            run.fail("wrong-password-accepted",
                     f"Authentik accepted a wrong password for {account.username!r}: the flow "
                     f"passed {', '.join(login.executor.stages)} and redirected to "
                     f"{urlsplit(callback).path}")
        _expect_signed_out(run, login, "wrong-password-accepted", "a wrong password")


def _probe_tampered_state(run: CheckRun, target: Target, account: Account, password: Secret,
                          timeout: float) -> None:
    with target.http() as session:
        login = _login(target, Credentials(account.username, password), session,
                       allow_consent=True, timeout=timeout)
        try:
            callback = login.authenticate(login.start())
        except LoginFailed as exc:
            run.fail("probe-failed", f"the tampered-state probe needs a real callback but the "
                     f"login stopped first: {exc}")
            return
        issued = dict(parse_qsl(urlsplit(callback).query)).get("state")
        forged = with_query_param(callback, "state", secrets.token_hex(16))
        try:
            web = login.finish(forged)
        except LoginFailed as exc:
            run.observe()
            run.evidence["tampered_state"] = {"issued_state_present": issued is not None,
                                              "rejected_at": exc.phase, "message": str(exc)}
        else:
            run.fail("tampered-state-accepted",
                     f"Mastodon accepted a callback with a state it never issued and signed in "
                     f"@{web.username}")
        _expect_signed_out(run, login, "tampered-state-accepted", "a tampered state")


def _probe_redirect_uris(run: CheckRun, target: Target, client_id: str, timeout: float) -> None:
    with target.http() as session:
        try:
            metadata, _ = fetch_metadata(session, target.oidc_issuer, timeout=timeout)
        except OIDCError as exc:
            run.fail("probe-failed", f"the redirect-URI probe needs the discovery document: {exc}")
            return
        outcomes: dict[str, str] = {}
        for uri in (f"https://unregistered.tootcheck.invalid{CALLBACK}",
                    f"https://{target.domain}{CALLBACK}-tootcheck-unregistered"):
            params = {"client_id": client_id, "redirect_uri": uri, "response_type": "code",
                      "scope": "openid profile email", "state": secrets.token_hex(16),
                      "nonce": secrets.token_hex(16)}
            try:
                response = session.get(metadata.authorization_endpoint, params=params,
                                       timeout=timeout, allow_redirects=False)
            except requests.RequestException as exc:
                run.fail("probe-failed", f"the authorize endpoint did not answer: "
                         f"{describe_error(exc)}")
                return
            outcomes[uri] = _judge_redirect_answer(run, target, response, uri, client_id)
        run.evidence["unregistered_redirect"] = outcomes


def _judge_redirect_answer(run: CheckRun, target: Target, response: requests.Response,
                           uri: str, client_id: str) -> str:
    status = response.status_code
    if status in (301, 302, 303, 307, 308):
        location = response.headers.get("Location", "")
        parts = urlsplit(location)
        if location.startswith(uri):
            run.fail("unregistered-redirect-accepted",
                     f"Authentik redirected to the unregistered redirect URI {uri}")
            return f"HTTP {status} to the unregistered URI"
        if parts.path.startswith(("/flows/", "/if/flow/")):
            run.fail("unregistered-redirect-accepted",
                     f"Authentik accepted redirect_uri {uri} for client {client_id!r} and sent the "
                     f"browser on to {parts.path} instead of refusing it")
            return f"HTTP {status} to {parts.path}"
        if "error" in dict(parse_qsl(parts.query)):
            run.observe()
            return f"HTTP {status} with an error to {parts.netloc}{parts.path}"
        run.fail("probe-failed", f"the authorize endpoint answered HTTP {status} to "
                 f"{parts.netloc}{parts.path} for redirect_uri {uri}")
        return f"HTTP {status} to {parts.path}"
    text = error_page(response.text) if 400 <= status < 500 else ""
    if "client id" in text.lower():
        run.fail("probe-failed", f"Authentik does not know client_id {client_id!r} ({text}); "
                 "the redirect-URI probe needs Mastodon's client id")
        return f"HTTP {status}: {text}"
    if 400 <= status < 500:
        run.observe()
        return f"HTTP {status}: {text or 'refused'}"
    run.fail("probe-failed", f"the authorize endpoint answered HTTP {status} for redirect_uri {uri}")
    return f"HTTP {status}"
