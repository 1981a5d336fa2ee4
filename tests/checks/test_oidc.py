"""oidc.* checks against real local peers: an Authlib OpenID Provider behind Authentik's
flow executor (tests/peers/oidc_idp.py) and an Authlib relying party with Mastodon's
login paths (tests/peers/oidc_rp.py), both over TLS from one test CA, reached
through the Target's PinMap exactly as the suite reaches kirchner.social.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
import trustme
from cryptography import x509
from joserfc.jwk import ECKey, RSAKey

from tests.peers.databases import scratch_dir
from tests.peers.oidc_idp import AUTH_HOST, AuthentikPeer, PeerCA, Recorded
from tests.peers.oidc_rp import DOMAIN, MastodonPeer
from tootcheck.checks.oidc import check_discovery, check_login, check_negative_paths
from tootcheck.clients.authentik import PASSWORD, flow_location, response_errors_text
from tootcheck.clients.oidc import (
    csrf_token_from,
    discovery_url,
    error_page,
    flash_messages,
    initial_state,
    issuer_mismatch,
    mastodon_username_for,
    usable_keys,
    web_session,
    with_query_param,
)
from tootcheck.clients.pinning import PinMap
from tootcheck.model import CheckResult
from tootcheck.redaction import Secret
from tootcheck.target import Account, Target
from tootcheck.testing import expect_fault, expect_ok

ISSUER = f"https://{AUTH_HOST}/application/o/mastodon/"
EXECUTOR_AUTH = "/api/v3/flows/executor/default-authentication-flow/"


@dataclass
class Peers:
    idp: AuthentikPeer
    rp: MastodonPeer
    target: Target
    password: str
    directory: Path

    def recorded(self) -> list[Recorded]:
        return [*self.idp.requests, *self.rp.requests]


@pytest.fixture(scope="module")
def oidc_peers() -> Iterator[Peers]:
    directory = scratch_dir("oidc")
    ca = PeerCA(directory)
    password = "pw-" + secrets.token_urlsafe(18)
    admin_token = secrets.token_urlsafe(32)
    idp = AuthentikPeer(ca, password=password)
    rp = None
    try:
        rp = MastodonPeer(ca, PinMap({(AUTH_HOST, 443): ("127.0.0.1", idp.port)}),
                          client_secret=idp.client_secret, admin_token=admin_token)
        target = Target(
            name="peer://oidc",
            domain=DOMAIN,
            auth_host=AUTH_HOST,
            oidc_issuer=ISSUER,
            ca_file=ca.ca_file,
            pins=PinMap({(AUTH_HOST, 443): ("127.0.0.1", idp.port),
                         (DOMAIN, 443): ("127.0.0.1", rp.port)}),
            accounts={
                "oidc": Account("testuser", password=Secret(password, "oidc password"),
                                email="testuser@kirchner.social"),
                "admin": Account("admin", token=Secret(admin_token, "admin token")),
            },
        )
        yield Peers(idp, rp, target, password, directory)
    finally:
        if rp is not None:
            rp.stop()
        idp.stop()
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def peers(oidc_peers: Peers) -> Peers:
    """The shared peers, healthy and empty again for this test."""
    oidc_peers.idp.reset()
    oidc_peers.rp.reset()
    return oidc_peers


def with_password(target: Target, password: str) -> Target:
    oidc = target.account("oidc")
    return target.with_(accounts={**target.accounts, "oidc": Account(
        oidc.username, password=Secret(password, "oidc password"), email=oidc.email)})


def password_carriers(peers: Peers) -> list[Recorded]:
    return [r for r in peers.recorded() if r.contains(peers.password)]


def assert_no_secret_in(result: CheckResult, secret: str) -> None:
    text = " ".join([result.summary, json.dumps(result.evidence, default=str),
                     json.dumps(result.metrics)])
    assert secret not in text, f"{result.check}: the password leaked into the result"


def healthy(result: CheckResult) -> CheckResult:
    """expect_ok, plus an assert in this module (the no-assertion guard counts these)."""
    expect_ok(result)
    assert result.ok
    return result


def caught(result: CheckResult, code: str, *, mentions: str | None = None) -> CheckResult:
    """expect_fault, plus an assert in this module (the no-assertion guard counts these)."""
    expect_fault(result, code, mentions=mentions)
    assert code in result.fault_codes
    return result


# ------------------------------------------------------------------ healthy peers


def test_discovery_passes_against_healthy_authentik(peers: Peers) -> None:
    result = healthy(check_discovery(peers.target))
    assert result.evidence["endpoint_status"]["jwks_uri"] == 200
    assert result.evidence["jwks"]["usable"]["RS256"]


@dataclass
class HealthyRuns:
    """check_negative_paths, then check_login, on freshly reset healthy peers: what the
    peers recorded and the Mastodon accounts after each (three tests read these; each
    used to run its own login and probes)."""

    negative: CheckResult
    users_after_negative: list[str]
    login: CheckResult
    users_after_login: list[str]
    idp_requests: list[Recorded]
    recorded: list[Recorded]


@pytest.fixture(scope="module")
def healthy_runs(oidc_peers: Peers) -> HealthyRuns:
    oidc_peers.idp.reset()
    oidc_peers.rp.reset()
    negative = check_negative_paths(oidc_peers.target)
    users_after_negative = [u.username for u in oidc_peers.rp.users.values()]
    login = check_login(oidc_peers.target)
    return HealthyRuns(negative, users_after_negative, login,
                       [u.username for u in oidc_peers.rp.users.values()],
                       list(oidc_peers.idp.requests), oidc_peers.recorded())


def test_login_passes_and_reports_timing(healthy_runs: HealthyRuns) -> None:
    result = healthy(healthy_runs.login)
    assert result.evidence["stages"][:2] == ["ak-stage-identification", "ak-stage-password"]
    assert result.evidence["username"] == "testuser"
    assert 0 < result.metrics["login_s"] < 10
    assert {"start_s", "authentik_s", "callback_s"} <= set(result.metrics)
    assert healthy_runs.users_after_login == ["testuser"]  # created on first login


def test_negative_paths_pass_against_healthy_peers(healthy_runs: HealthyRuns) -> None:
    result = healthy(healthy_runs.negative)
    assert result.evidence["wrong_password"]["stage"] == PASSWORD
    assert "Invalid 'state' parameter" in result.evidence["tampered_state"]["message"]
    assert all("Redirect URI Error" in v for v in result.evidence["unregistered_redirect"].values())
    assert not healthy_runs.users_after_negative, "no negative probe may create a Mastodon account"


def test_password_reaches_only_the_password_stage(oidc_peers: Peers,
                                                  healthy_runs: HealthyRuns) -> None:
    password = oidc_peers.password
    carriers = [r for r in healthy_runs.recorded if r.contains(password)]
    assert carriers, "the recorder saw no password at all: the test would prove nothing"
    for request in carriers:
        assert (request.host, request.method, request.path) == (AUTH_HOST, "POST", EXECUTOR_AUTH)
        body = json.loads(request.body)
        assert body["component"] == PASSWORD, f"password sent to {body['component']}"
        assert password not in request.query + "".join(request.headers.values())
    for result in (healthy_runs.login, healthy_runs.negative):
        healthy(result)
        assert_no_secret_in(result, password)
    # the cookie jar is host-scoped: Mastodon's session cookie never goes to Authentik
    assert not [r for r in healthy_runs.idp_requests
                if "_mastodon_session" in r.headers.get("Cookie", "")]


def test_combined_identification_stage_gets_the_password(peers: Peers) -> None:
    peers.idp.config.password_fields = True  # identification stage with the password stage attached
    result = healthy(check_login(peers.target))
    assert PASSWORD not in result.evidence["stages"]
    carriers = password_carriers(peers)
    assert [json.loads(r.body)["component"] for r in carriers] == ["ak-stage-identification"]


def test_stay_signed_in_question_is_answered(peers: Peers) -> None:
    peers.idp.config.remember_me_offset = True
    result = healthy(check_login(peers.target))
    assert "ak-stage-user-login" in result.evidence["stages"]


def test_explicit_consent_is_answered_with_the_csrf_header(peers: Peers) -> None:
    peers.idp.config.consent = True
    result = healthy(check_login(peers.target, allow_consent=True))
    assert "ak-stage-consent" in result.evidence["stages"]
    consent_posts = [r for r in peers.idp.requests if r.method == "POST"
                     and "consent" in r.path]
    assert consent_posts, "the consent stage was never answered"
    for request in consent_posts:
        cookie = request.headers["Cookie"].split("authentik_csrf=")[1].split(";")[0]
        assert request.headers["X-Authentik-Csrf"] == cookie


# ------------------------------------------------------------------ discovery faults


@pytest.mark.parametrize(("provider_issuer", "configured"), [
    (ISSUER.rstrip("/"), ISSUER),  # provider lacks the slash Mastodon's OIDC_ISSUER has
    (ISSUER, ISSUER.rstrip("/")),  # OIDC_ISSUER lacks the slash the provider has
], ids=["provider-without-slash", "configured-without-slash"])
def test_discovery_catches_issuer_mismatch(peers: Peers, provider_issuer: str,
                                           configured: str) -> None:
    peers.idp.config.issuer = provider_issuer
    caught(check_discovery(peers.target.with_(oidc_issuer=configured)), "issuer-mismatch",
                 mentions="trailing slash")


def test_discovery_catches_plain_http_endpoint(peers: Peers) -> None:
    peers.idp.config.insecure_endpoint = "token_endpoint"
    caught(check_discovery(peers.target), "endpoint-not-https", mentions="token_endpoint")


def test_discovery_catches_failing_endpoint(peers: Peers) -> None:
    peers.idp.config.endpoint_status = {"userinfo": 503}
    caught(check_discovery(peers.target), "endpoint-unreachable", mentions="HTTP 503")


@pytest.mark.parametrize("jwks", ["ec-only", "empty"])
def test_discovery_catches_jwks_without_a_usable_key(peers: Peers, jwks: str) -> None:
    peers.idp.config.jwks = jwks
    caught(check_discovery(peers.target), "jwks-no-key-for-alg", mentions="RS256")


def test_discovery_catches_missing_document(peers: Peers) -> None:
    peers.idp.config.endpoint_status = {"discovery": 404}
    caught(check_discovery(peers.target), "discovery-unreachable", mentions="HTTP 404")


def test_discovery_trusts_the_target_ca_only(peers: Peers) -> None:
    other = peers.directory / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(other))
    caught(check_discovery(peers.target.with_(ca_file=other)), "discovery-unreachable",
                 mentions="TLS certificate verify failed")


# ------------------------------------------------------------------ login faults


def test_login_wrong_password_says_where_it_stopped(peers: Peers) -> None:
    result = check_login(with_password(peers.target, "not-the-password-" + secrets.token_hex(4)))
    caught(result, "flow-rejected", mentions="at ak-stage-password: password: Invalid password")
    assert not peers.rp.users


@pytest.mark.parametrize(("provider_issuer", "configured"), [
    (ISSUER.rstrip("/"), ISSUER),
    (ISSUER, ISSUER.rstrip("/")),
], ids=["provider-without-slash", "configured-without-slash"])
def test_login_catches_issuer_mismatch_at_mastodon(peers: Peers, provider_issuer: str,
                                                   configured: str) -> None:
    peers.idp.config.issuer = provider_issuer
    peers.rp.config.issuer = configured  # Mastodon's OIDC_ISSUER
    caught(check_login(peers.target), "login-start-failed", mentions="Issuer mismatch")


def test_login_catches_unregistered_callback(peers: Peers) -> None:
    peers.idp.config.redirect_uris = ("https://kirchner.social/auth/auth/oidc/callback",)
    caught(check_login(peers.target), "authorize-rejected", mentions="Redirect URI Error")


def test_login_catches_bad_token_signature(peers: Peers) -> None:
    peers.idp.config.sign_with_foreign_key = True
    caught(check_login(peers.target), "callback-rejected",
                 mentions="Json::jws::verificationfailed")
    assert not peers.rp.users


def test_login_catches_unexpected_consent(peers: Peers) -> None:
    peers.idp.config.consent = True
    result = caught(check_login(peers.target), "unexpected-consent",
                          mentions="expected to be implicit")
    assert result.evidence["stages"][-1] == "ak-stage-consent"


def test_login_catches_missing_session(peers: Peers) -> None:
    peers.rp.config.sign_in = False
    caught(check_login(peers.target), "session-missing", mentions="no signed-in user")


def test_login_catches_hashed_subject_username(peers: Peers) -> None:
    peers.idp.config.sub_mode = "hashed_user_id"  # Authentik's default with OIDC_UID_FIELD=sub
    result = caught(check_login(peers.target), "account-mismatch",
                          mentions="expected @testuser")
    caught(result, "account-mismatch", mentions="set the provider's sub_mode to user_username")


def test_login_catches_wrong_email(peers: Peers) -> None:
    peers.idp.users["testuser"].email = "someone-else@kirchner.social"
    caught(check_login(peers.target), "account-mismatch", mentions="email")


def test_login_catches_rejected_api_call(peers: Peers) -> None:
    peers.rp.config.api_accepts_session_token = False
    caught(check_login(peers.target), "api-rejected", mentions="verify_credentials")


# ------------------------------------------------------------------ negative-path faults


def test_negative_paths_catch_accepted_wrong_password(peers: Peers) -> None:
    peers.idp.config.accept_any_password = True
    caught(check_negative_paths(peers.target), "wrong-password-accepted",
                 mentions="accepted a wrong password")


def test_negative_paths_catch_accepted_tampered_state(peers: Peers) -> None:
    peers.rp.config.check_state = False
    caught(check_negative_paths(peers.target), "tampered-state-accepted",
                 mentions="state it never issued")


def test_negative_paths_catch_accepted_unregistered_redirect(peers: Peers) -> None:
    peers.idp.config.accept_any_redirect = True
    caught(check_negative_paths(peers.target), "unregistered-redirect-accepted",
                 mentions="unregistered.tootcheck.invalid")


def test_negative_paths_say_when_a_probe_cannot_run(peers: Peers) -> None:
    result = check_negative_paths(with_password(peers.target, "not-the-password"))
    caught(result, "probe-failed", mentions="tampered-state probe")
    caught(check_negative_paths(peers.target, client_id="not-mastodon"), "probe-failed",
                 mentions="client_id 'not-mastodon'")


# ------------------------------------------------------------------ pure helpers


def test_discovery_url_joins_like_the_openid_connect_gem() -> None:
    assert discovery_url(ISSUER) == discovery_url(ISSUER.rstrip("/")) == \
        f"{ISSUER}.well-known/openid-configuration"


def test_issuer_mismatch_names_the_trailing_slash() -> None:
    assert issuer_mismatch(ISSUER, ISSUER) is None
    assert "lacks the trailing slash" in issuer_mismatch(ISSUER, ISSUER.rstrip("/"))
    assert "has a trailing slash" in issuer_mismatch(ISSUER.rstrip("/"), ISSUER)
    assert issuer_mismatch(ISSUER, "https://other/") == "the issuers differ"


def test_usable_keys_match_type_curve_use_and_alg() -> None:
    rsa = RSAKey.generate_key(2048).as_dict(private=False)
    p256 = ECKey.generate_key("P-256").as_dict(private=False)
    p384 = ECKey.generate_key("P-384").as_dict(private=False)
    jwks = {"keys": [{**rsa, "kid": "rsa"}, {**rsa, "kid": "enc", "use": "enc"},
                     {**rsa, "kid": "ps", "alg": "PS256"}, {**p256, "kid": "p256"},
                     {**p384, "kid": "p384"}, {"kty": "RSA", "kid": "broken"}]}
    assert usable_keys(jwks, "RS256") == ["rsa"]
    assert usable_keys(jwks, "ES256") == ["p256"]
    assert usable_keys(jwks, "HS256") == []


def test_page_readers() -> None:
    assert csrf_token_from('<meta name="csrf-param" content="x"><meta name="csrf-token" '
                           'content="tok">') == "tok"
    assert flash_messages('<div class="flash-message alert"><strong>Could not '
                          'authenticate</strong></div><p>x</p>') == ["Could not authenticate"]
    state = initial_state('<script id="initial-state" type="application/json">'
                          '{"meta":{"access_token":"t","me":"1"},"accounts":{"1":{"username":"u"}}}'
                          '</script>')
    assert web_session(state).is_signed_in and web_session(state).username == "u"
    assert not web_session(initial_state("<html></html>")).is_signed_in


def test_flow_helpers() -> None:
    assert flow_location("https://a/if/flow/x-y/?next=%2F") == ("x-y", "next=%2F")
    assert response_errors_text({"non_field_errors": [{"string": "Failed to authenticate.",
                                                       "code": "invalid"}]}) == \
        "Failed to authenticate."
    assert with_query_param("https://h/cb?state=a&code=b", "state", "z") == \
        "https://h/cb?state=z&code=b"
    assert mastodon_username_for("Jane.Doe+x@example.org") == "JaneDoex"


# ------------------------------------------------------------------ fidelity to Authentik
# What the peer does the way Authentik itself does it (observed against 2025.12.4 from source,
# issue 11; the grant_types behaviour read from 2026.x source, docs/oidc.md "Fidelity").

AUTHORIZE = f"https://{AUTH_HOST}/application/o/authorize/"
CALLBACK = "https://kirchner.social/auth/auth/openid_connect/callback"


def authorize_params(**extra: str) -> dict[str, str]:
    return {"client_id": "mastodon", "redirect_uri": CALLBACK, "response_type": "code",
            "scope": "openid email profile", "state": secrets.token_hex(8), **extra}


def executor_login(peers: Peers, session: Any, next_url: str) -> list[int]:
    """Identification then password through the executor; the status of each answer."""
    query = urlencode({"next": next_url})
    session.get(f"https://{AUTH_HOST}/if/flow/default-authentication-flow/?{query}", timeout=5)
    executor = f"https://{AUTH_HOST}{EXECUTOR_AUTH}?" + urlencode({"query": query})
    statuses = [session.get(executor, timeout=5).status_code]
    for body in ({"component": "ak-stage-identification", "uid_field": "testuser"},
                 {"component": "ak-stage-password", "password": peers.password}):
        answer = session.post(executor, json=body, timeout=5, allow_redirects=False)
        statuses.append(answer.status_code)
        if answer.status_code == 302:
            follow = session.get(f"https://{AUTH_HOST}{answer.headers['Location']}", timeout=5)
            statuses.append(follow.status_code)
            last = follow.json()
    assert last["component"] == "xak-flow-redirect" and last["to"] == next_url
    return statuses


def test_fidelity_authorize_sends_anonymous_browser_straight_to_the_flow(peers: Peers) -> None:
    with peers.target.http() as session:
        answer = session.get(AUTHORIZE, params=authorize_params(), allow_redirects=False,
                             timeout=5)
    location = urlsplit(answer.headers["Location"])
    assert answer.status_code == 302
    assert location.path == "/if/flow/default-authentication-flow/"  # no /flows/-/default/ hop
    (next_url,) = parse_qs(location.query)["next"]
    assert next_url.startswith("/application/o/authorize/?client_id=mastodon")


def test_fidelity_password_answer_gets_302_then_the_redirect(peers: Peers) -> None:
    """stage_ok answers 302 to the executor; the user-login stage has no challenge, so the
    GET that follows the password answer already ends the flow with xak-flow-redirect."""
    with peers.target.http() as session:
        statuses = executor_login(peers, session, "/application/o/authorize/?x=1")
    assert statuses == [200, 302, 200, 302, 200]


def test_fidelity_implicit_consent_redirects_straight_to_the_callback(peers: Peers) -> None:
    params = authorize_params()
    with peers.target.http() as session:
        next_url = "/application/o/authorize/?" + urlencode(params)
        executor_login(peers, session, next_url)
        answer = session.get(AUTHORIZE, params=params, allow_redirects=False, timeout=5)
    location = urlsplit(answer.headers["Location"])
    assert answer.status_code == 302 and location.geturl().startswith(CALLBACK + "?")
    query = parse_qs(location.query)
    assert query["state"] == [params["state"]] and query["code"][0]


def test_fidelity_error_page_description_in_p_reaches_the_evidence(peers: Peers) -> None:
    with peers.target.http() as session:
        answer = session.get(AUTHORIZE, params=authorize_params(
            redirect_uri="https://elsewhere.invalid/cb"), allow_redirects=False, timeout=5)
    assert answer.status_code == 400 and "<h3>" not in answer.text
    assert "<p>The request fails due to a missing, invalid, or mismatching redirection URI" \
        in answer.text
    assert error_page(answer.text) == (
        "Redirect URI Error: The request fails due to a missing, invalid, or mismatching "
        "redirection URI (redirect_uri).")
    result = healthy(check_negative_paths(peers.target))
    assert all("mismatching redirection URI" in v
               for v in result.evidence["unregistered_redirect"].values())


def test_error_page_reads_h1_with_p_or_h3() -> None:
    assert error_page("<h1>T</h1><form><p>why <b>so</b></p><p>other</p></form>") == "T: why so"
    assert error_page("<h1>T</h1><div><h3>old</h3></div><p>x</p>") == "T: old"
    assert error_page("<html></html>") == ""


def test_fidelity_discovery_and_jwks_fields(peers: Peers) -> None:
    with peers.target.http() as session:
        doc = session.get(discovery_url(ISSUER), timeout=5).json()
        (key,) = session.get(doc["jwks_uri"], timeout=5).json()["keys"]
    assert doc["acr_values_supported"] == ["goauthentik.io/providers/oauth2/default"]
    assert doc["backchannel_logout_supported"] is True
    assert doc["backchannel_logout_session_supported"] is True
    der = base64.b64decode(key["x5c"][0])
    cert = x509.load_der_x509_certificate(der)
    assert cert.public_key().public_numbers().n == int.from_bytes(  # type: ignore[union-attr]
        base64.urlsafe_b64decode(key["n"] + "=="), "big")
    assert key["x5t"] == base64.urlsafe_b64encode(
        hashlib.sha1(der).digest()).rstrip(b"=").decode()
    assert key["x5t#S256"] == base64.urlsafe_b64encode(
        hashlib.sha256(der).digest()).rstrip(b"=").decode()
    assert re.fullmatch(r"[0-9a-f]{32}", key["kid"])  # md5 hex of the key data
    healthy(check_discovery(peers.target))


@pytest.mark.parametrize("grant_types", [(), ("refresh_token",)], ids=["empty", "no-code"])
def test_fidelity_unlisted_grant_is_refused_at_authorize(peers: Peers,
                                                         grant_types: tuple[str, ...]) -> None:
    peers.idp.config.grant_types = grant_types
    with peers.target.http() as session:
        answer = session.get(AUTHORIZE, params=authorize_params(), allow_redirects=False,
                             timeout=5)
    location = answer.headers["Location"]
    assert answer.status_code == 302 and location.startswith(CALLBACK + "?error=invalid_request&")
    query = parse_qs(urlsplit(location).query)
    assert query["error_description"] == ["The request is otherwise malformed"]
    caught(check_login(peers.target), "callback-rejected", mentions="otherwise malformed")
    assert not peers.rp.users


def test_fidelity_unlisted_grant_is_refused_at_token(peers: Peers) -> None:
    peers.idp.config.grant_types = ("authorization_code",)
    with peers.target.http() as session:
        answer = session.post(f"https://{AUTH_HOST}/application/o/token/", timeout=5,
                              auth=("mastodon", peers.idp.client_secret),
                              data={"grant_type": "refresh_token", "refresh_token": "x"})
    assert answer.status_code == 400
    body = answer.json()
    assert set(body) == {"error", "error_description", "request_id"}  # OAuth2Error.create_dict
    assert body["error"] == "invalid_grant"
    assert body["error_description"].startswith("The provided authorization grant")
def test_login_without_admin_token_reports_the_email_as_not_proven(peers: Peers) -> None:
    accounts = {k: v for k, v in peers.target.accounts.items() if k != "admin"}
    result = check_login(peers.target.with_(accounts=accounts))
    assert result.ok, result.summary
    assert "admin token" in result.evidence["not_proven"]["email"]
    assert result.evidence["email"].startswith("NOT PROVEN")
