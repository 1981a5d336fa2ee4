"""Authentik as a local peer: a real OpenID Provider behind Authentik's flow executor.

The protocol core is Authlib (``authlib.integrations.flask_oauth2.AuthorizationServer``
with ``AuthorizationCodeGrant`` and ``authlib.oidc.core.grants.OpenIDCode``): it
validates authorization requests, issues codes, access tokens and RS256 ID
tokens signed with a joserfc key that the JWKS publishes. Only Authentik's own
surface is modelled, from goauthentik/authentik:

* paths and discovery fields: ``authentik/providers/oauth2/urls.py`` and
  ``views/provider.py`` (issuer ``https://<host>/application/o/<slug>/``, trailing slash);
  ``website/docs/add-secure-apps/providers/oauth2/index.mdx``;
* ``/application/o/authorize/`` (``providers/oauth2/views/authorize.py``): 404 without
  parameters; ``ClientIdError``/``RedirectUriError`` rendered by
  ``lib/views.py#bad_request_message`` (HTTP 400, ``error/generic.html``) before
  any login (the description in ``<p>``, the title in ``<h1>``); unauthenticated users
  are redirected straight to ``/if/flow/<authentication flow>/?next=<authorize URL>``
  (``policies/views.py#handle_no_permission``, one hop, as observed against 2025.12.4);
  authenticated ones get the authorization flow planned with ``OAuthFulfillmentStage``
  appended (``FlowPlan.to_redirect`` with ``allowed_silent_types=[OAuthFulfillmentStage]``):
  with implicit consent the plan holds only that silent stage, so /authorize answers with a
  302 straight to the callback; with explicit consent it redirects to
  ``/if/flow/<slug>/?<query>``;
* ``grant_types`` on the provider (2026.x, migration ``0032_oauth2provider_grant_types``,
  default ``[]``): /authorize refuses an unlisted grant with ``invalid_request``
  (``check_grant``) and /token with 400 ``invalid_grant`` (``TokenRequest.parse``);
* ``/flows/-/default/authentication/`` → ``/if/flow/<slug>/`` (``flows/views/executor.py#ToDefaultFlow``,
  still served, no longer on the login path);
* discovery carries ``acr_values_supported`` and ``backchannel_logout_*``; JWKS keys carry
  ``x5c``/``x5t``/``x5t#S256`` and a ``kid`` that is the md5 hex digest of the key
  (``CertificateKeyPair.kid``, ``crypto/models.py``), all as observed against 2025.12.4;
  ``/if/flow/<slug>/`` sets the ``authentik_csrf`` cookie (``core/urls.py``, ``ensure_csrf_cookie``);
* ``/api/v3/flows/executor/<slug>/`` (``flows/views/executor.py``): ``?query=``, plans kept
  in the ``authentik_session`` session, ``stage_ok`` → 302 back to the executor,
  ``_flow_done`` → ``xak-flow-redirect`` to ``next``, ``stage_invalid`` →
  ``ak-stage-access-denied``; challenges and ``response_errors`` as in
  ``flows/challenge.py`` and ``flows/stage.py#challenge_invalid``;
* stages: ``stages/identification/stage.py`` (``uid_field``, ``password`` with
  ``password_fields``, "Failed to authenticate."), ``stages/password/stage.py``
  ("Invalid password", cancel after ``failed_attempts_before_cancel``),
  ``stages/consent/stage.py`` (``token``), ``stages/user_login/stage.py`` (logs in; a
  ``remember_me`` challenge only with a remember-me offset);
* CSRF: ``root/settings.py`` (``authentik_csrf`` / ``X-authentik-CSRF``, DRF
  ``SessionAuthentication``): POSTs from an authenticated session need the header
  to match the cookie and a same-origin Origin or Referer, else 403
  ``{"detail": "CSRF Failed: ..."}``;
* ``sub``: the provider's ``sub_mode`` (default ``hashed_user_id``; ``user_username``).

The TLS server, CA and request recorder live in ``tests/peers/https_server.py`` (shared with
the Mastodon side, ``oidc_rp.py``); the hand-built answers (error pages, error redirects,
token errors, CSRF, the signing certificate) in ``tests/peers/authentik_responses.py``.

Break it through :class:`AuthentikConfig` (``peer.config.<field> = ...``); ``reset()``
restores the healthy defaults. Every request is recorded in ``peer.requests``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from secrets import token_hex, token_urlsafe
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from authlib.integrations.flask_oauth2 import AuthorizationServer
from authlib.integrations.flask_oauth2.requests import FlaskOAuth2Request
from authlib.oauth2 import OAuth2Error, OAuth2Request
from authlib.oauth2.rfc6749 import ClientMixin
from authlib.oauth2.rfc6749.grants import AuthorizationCodeGrant
from authlib.oidc.core import UserInfo
from authlib.oidc.core.grants import OpenIDCode
from authlib.oidc.core.models import AuthorizationCodeMixin
from cryptography.hazmat.primitives.serialization import Encoding
from flask import Flask, Response, g, jsonify, redirect, request
from flask import Request as FlaskRequest
from joserfc.jwk import ECKey, RSAKey
from werkzeug.test import EnvironBuilder

from tests.peers.authentik_responses import (
    authorize_error_uri,
    b64url,
    csrf_failure,
    error_page,
    private_pem,
    self_signed,
    token_client_id,
    token_error,
)
from tests.peers.https_server import PeerCA, PeerServer, Recorded, record

__all__ = ["AUTH_HOST", "CLIENT_ID", "REDIRECT_URI", "AuthentikConfig", "AuthentikPeer",
           "AuthentikUser", "PeerCA", "PeerServer", "Recorded", "record"]

AUTH_HOST = "auth.kirchner.social"
SLUG = "mastodon"
CLIENT_ID = "mastodon"
REDIRECT_URI = "https://kirchner.social/auth/auth/openid_connect/callback"
AUTHENTICATION_FLOW = "default-authentication-flow"
IMPLICIT_FLOW = "default-provider-authorization-implicit-consent"
EXPLICIT_FLOW = "default-provider-authorization-explicit-consent"
SCOPES = ("openid", "email", "profile")
AVATAR = "/static/dist/assets/images/user_default.png"
INSTALL_ID = "6c1f8e0a-tootcheck-peer"


# ------------------------------------------------------------------ configuration


@dataclass
class AuthentikConfig:
    """The provider, application and flows as configured in Authentik. Defaults are
    the reference deployment's blueprint; change a field to break the peer."""

    issuer: str | None = None  # what discovery and ID tokens say (None: per-provider issuer)
    client_id: str = CLIENT_ID
    redirect_uris: tuple[str, ...] = (REDIRECT_URI,)  # strict matching
    sub_mode: str = "user_username"  # or hashed_user_id (Authentik's default)
    consent: bool = False  # explicit-consent authorization flow
    password_fields: bool = False  # identification stage with the password stage attached
    remember_me_offset: bool = False  # the user-login stage asks "stay signed in?"
    failed_attempts_before_cancel: int = 5
    # OAuth2Provider.grant_types (the blueprint's list; [] is what 2026.x creates without one)
    grant_types: tuple[str, ...] = ("authorization_code", "refresh_token")
    # faults that a healthy Authentik never shows
    accept_any_password: bool = False
    accept_any_redirect: bool = False
    sign_with_foreign_key: bool = False  # ID tokens signed by a key the JWKS does not hold
    jwks: str = "rsa"  # rsa | ec-only | empty
    insecure_endpoint: str | None = None  # discovery field advertised as http://
    endpoint_status: dict[str, int] = field(default_factory=dict)  # route name -> forced status


@dataclass
class AuthentikUser:
    pk: int
    username: str
    email: str
    name: str
    password: str

    @property
    def hashed_id(self) -> str:  # authentik.core.models.User.uid
        return hashlib.sha256(f"{self.pk}-{INSTALL_ID}".encode()).hexdigest()


@dataclass
class _Plan:
    flow: str
    stages: list[str]
    context: dict[str, Any] = field(default_factory=dict)


# ------------------------------------------------------------------ Authlib models


class _Client(ClientMixin):
    def __init__(self, peer: AuthentikPeer, client_id: str, secret: str) -> None:
        self.peer, self.client_id, self.secret = peer, client_id, secret

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str:
        return self.peer.config.redirect_uris[0]

    def get_allowed_scope(self, scope: str) -> str:
        # Authentik narrows requested scopes to the provider's mappings.
        return " ".join(s for s in (scope or "").split() if s in SCOPES)

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return self.peer.config.accept_any_redirect or redirect_uri in self.peer.config.redirect_uris

    def check_client_secret(self, client_secret: str) -> bool:
        return hmac.compare_digest(client_secret.encode(), self.secret.encode())

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method in ("client_secret_basic", "client_secret_post")

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code"

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type == "authorization_code"


@dataclass
class _Code(AuthorizationCodeMixin):
    code: str
    client_id: str
    redirect_uri: str
    scope: str
    username: str
    nonce: str | None
    auth_time: int

    def get_redirect_uri(self) -> str:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope

    def get_nonce(self) -> str | None:
        return self.nonce

    def get_auth_time(self) -> int:
        return self.auth_time

    def get_acr(self) -> str:
        return "goauthentik.io/providers/oauth2/default"

    def get_amr(self) -> list[str]:
        return ["pwd"]


class _CodeGrant(AuthorizationCodeGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]
    peer: AuthentikPeer

    def save_authorization_code(self, code: str, req: OAuth2Request) -> None:
        self.peer.codes[code] = _Code(code, req.client.get_client_id(), req.payload.redirect_uri,
                                      req.scope, req.user.username, req.payload.data.get("nonce"),
                                      int(time.time()))

    def query_authorization_code(self, code: str, client: _Client) -> _Code | None:
        found = self.peer.codes.get(code)
        return found if found and found.client_id == client.get_client_id() else None

    def delete_authorization_code(self, authorization_code: _Code) -> None:
        self.peer.codes.pop(authorization_code.code, None)

    def authenticate_user(self, authorization_code: _Code) -> AuthentikUser | None:
        return self.peer.users.get(authorization_code.username)


class _OpenIDCode(OpenIDCode):
    def __init__(self, peer: AuthentikPeer) -> None:
        super().__init__(require_nonce=False)
        self.peer = peer

    def exists_nonce(self, nonce: str, req: OAuth2Request) -> bool:
        return any(code.nonce == nonce for code in self.peer.codes.values())

    def resolve_client_private_key(self, client: _Client) -> RSAKey:
        return self.peer.foreign_key if self.peer.config.sign_with_foreign_key else self.peer.key

    def get_client_algorithm(self, client: _Client) -> str:
        return "RS256"

    def get_encode_header(self, client: _Client) -> dict[str, str]:
        return {"alg": "RS256", "kid": self.peer.kid, "typ": "JWT"}

    def get_client_claims(self, client: _Client) -> dict[str, Any]:
        now = int(time.time())
        return {"iss": self.peer.issuer(), "aud": client.get_client_id(), "iat": now,
                "exp": now + 600}

    def generate_user_info(self, user: AuthentikUser, scope: str) -> UserInfo:
        return self.peer.claims(user, scope)


class _Server(AuthorizationServer):
    """Accepts an OAuth2Request built from a stored authorize URL (the fulfillment
    stage runs inside a later executor request)."""

    def create_oauth2_request(self, req: object) -> OAuth2Request:
        if isinstance(req, OAuth2Request):
            return req
        return FlaskOAuth2Request(req if req is not None else request)


# ------------------------------------------------------------------ the peer


class AuthentikPeer:
    """The provider ``mastodon`` on ``auth.kirchner.social`` with one test user."""

    def __init__(self, ca: PeerCA, *, username: str = "testuser", password: str,
                 email: str = "testuser@kirchner.social", name: str = "Test User") -> None:
        self.config = AuthentikConfig()
        self.client_secret = token_urlsafe(32)
        self.users = {username: AuthentikUser(7, username, email, name, password)}
        self._defaults = (replace(self.config), dict(self.users))
        self.requests: list[Recorded] = []
        self.sessions: dict[str, dict[str, Any]] = {}
        self.codes: dict[str, _Code] = {}
        self.tokens: dict[str, dict[str, str]] = {}
        self._lock = threading.RLock()
        self.key = RSAKey.generate_key(2048)
        self.certificate = self_signed(self.key)
        # CertificateKeyPair.kid: md5 hex digest of the key data (PEM), authentik/crypto/models.py
        self.kid = hashlib.md5(private_pem(self.key), usedforsecurity=False).hexdigest()
        self.foreign_key = RSAKey.generate_key(2048)
        self.ec_key = ECKey.generate_key("P-256")
        self.app = self._build_app()
        self.server = PeerServer(self.app, ca.server_context(AUTH_HOST))
        self.port = self.server.port

    # ---------------------------------------------------------------- control

    def reset(self) -> None:
        with self._lock:
            self.config = replace(self._defaults[0])
            self.users = {k: replace(v) for k, v in self._defaults[1].items()}
            self.requests.clear()
            self.sessions.clear()
            self.codes.clear()
            self.tokens.clear()

    def stop(self) -> None:
        self.server.stop()

    def issuer(self) -> str:
        return self.config.issuer or f"https://{AUTH_HOST}/application/o/{SLUG}/"

    def claims(self, user: AuthentikUser, scope: str) -> UserInfo:
        """The default scope mappings (openid/email/profile) of an Authentik provider."""
        sub = user.username if self.config.sub_mode == "user_username" else user.hashed_id
        info = UserInfo(sub=sub)
        if "email" in scope.split():
            info.update(email=user.email, email_verified=False)
        if "profile" in scope.split():
            info.update(name=user.name, given_name=user.name, preferred_username=user.username,
                        nickname=user.username, groups=[])
        return info

    # ---------------------------------------------------------------- app

    def _build_app(self) -> Flask:
        app = Flask("authentik-peer")
        app.config.update(OAUTH2_TOKEN_EXPIRES_IN={"authorization_code": 300})
        server = _Server(app, query_client=self._query_client, save_token=self._save_token)
        grant = type("PeerCodeGrant", (_CodeGrant,), {"peer": self})
        server.register_grant(grant, [_OpenIDCode(self)])
        self.oauth = server
        base = f"/application/o/{SLUG}"
        routes = {
            f"{base}/.well-known/openid-configuration": ("discovery", self._discovery, ["GET"]),
            f"{base}/jwks/": ("jwks", self._jwks, ["GET"]),
            f"{base}/end-session/": ("end_session", lambda: "", ["GET"]),
            "/application/o/authorize/": ("authorize", self._authorize, ["GET"]),
            "/application/o/token/": ("token", self._token, ["POST"]),
            "/application/o/userinfo/": ("userinfo", self._userinfo, ["GET", "POST"]),
            "/flows/-/default/authentication/": ("default_flow", self._default_flow, ["GET"]),
            "/if/flow/<slug>/": ("interface", self._interface, ["GET"]),
            "/api/v3/flows/executor/<slug>/": ("executor", self._executor, ["GET", "POST"]),
        }
        for rule, (name, view, methods) in routes.items():
            app.add_url_rule(rule, name, view, methods=methods)
        app.before_request(self._before)
        app.after_request(self._after)
        return app

    def _before(self) -> Response | None:
        record(self.requests)
        forced = self.config.endpoint_status.get(request.endpoint or "")
        if forced:
            return Response(f"forced {forced}", status=forced)
        return None

    def _after(self, response: Response) -> Response:
        if getattr(g, "new_session", None):
            response.set_cookie("authentik_session", g.new_session, secure=True, httponly=True,
                                samesite="None")
        return response

    def _session(self) -> dict[str, Any]:
        sid = request.cookies.get("authentik_session", "")
        with self._lock:
            if sid in self.sessions:
                return self.sessions[sid]
            sid = token_urlsafe(24)
            g.new_session = sid
            self.sessions[sid] = {}
            return self.sessions[sid]

    def _query_client(self, client_id: str) -> _Client | None:
        return _Client(self, client_id, self.client_secret) if client_id == self.config.client_id else None

    def _save_token(self, token: Mapping[str, Any], req: OAuth2Request) -> None:
        self.tokens[token["access_token"]] = {"username": req.user.username,
                                              "scope": token.get("scope", "")}

    # ---------------------------------------------------------------- provider endpoints

    def _discovery(self) -> Response:
        origin = f"https://{request.host}"
        doc = {
            "issuer": self.issuer(),
            "authorization_endpoint": f"{origin}/application/o/authorize/",
            "token_endpoint": f"{origin}/application/o/token/",
            "userinfo_endpoint": f"{origin}/application/o/userinfo/",
            "end_session_endpoint": f"{origin}/application/o/{SLUG}/end-session/",
            "introspection_endpoint": f"{origin}/application/o/introspect/",
            "revocation_endpoint": f"{origin}/application/o/revoke/",
            "device_authorization_endpoint": f"{origin}/application/o/device/",
            "response_types_supported": ["code", "id_token", "id_token token", "code token",
                                         "code id_token", "code id_token token"],
            "response_modes_supported": ["query", "fragment", "form_post"],
            "jwks_uri": f"{origin}/application/o/{SLUG}/jwks/",
            "grant_types_supported": ["authorization_code", "refresh_token", "implicit",
                                      "client_credentials", "password",
                                      "urn:ietf:params:oauth:grant-type:device_code"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "subject_types_supported": ["public"],
            "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
            "scopes_supported": list(SCOPES),
            "claims_supported": ["sub", "iss", "aud", "exp", "iat", "auth_time", "acr", "amr",
                                 "nonce", "email", "email_verified", "name", "given_name",
                                 "preferred_username", "nickname", "groups"],
            "code_challenge_methods_supported": ["plain", "S256"],
            "request_parameter_supported": False,
            "claims_parameter_supported": False,
            "acr_values_supported": ["goauthentik.io/providers/oauth2/default"],
            "backchannel_logout_supported": True,
            "backchannel_logout_session_supported": True,
        }
        if self.config.insecure_endpoint:
            doc[self.config.insecure_endpoint] = doc[self.config.insecure_endpoint].replace(
                "https://", "http://", 1)
        return jsonify(doc)

    def _jwks(self) -> Response:
        keys: list[dict[str, Any]] = []
        if self.config.jwks == "rsa":
            # JWKSView.get_jwk_for_key: the public key plus the certificate chain and thumbprints
            der = self.certificate.public_bytes(Encoding.DER)
            keys.append({**self.key.as_dict(private=False), "kid": self.kid, "use": "sig",
                         "alg": "RS256", "x5c": [base64.b64encode(der).decode()],
                         "x5t": b64url(hashlib.sha1(der, usedforsecurity=False).digest()),
                         "x5t#S256": b64url(hashlib.sha256(der).digest())})
        elif self.config.jwks == "ec-only":
            keys.append({**self.ec_key.as_dict(private=False), "kid": self.kid, "use": "sig",
                         "alg": "ES256"})
        return jsonify({"keys": keys})

    def _authorize(self) -> Response:
        if not request.args:
            return Response("Not Found", status=404)
        client = self._query_client(request.args.get("client_id", ""))
        if client is None:
            return error_page("Client ID Error",
                               "The client identifier (client_id) is missing or invalid.")
        redirect_uri = request.args.get("redirect_uri", "")
        if not redirect_uri or not client.check_redirect_uri(redirect_uri):
            return error_page("Redirect URI Error",
                               "The request fails due to a missing, invalid, or mismatching "
                               "redirection URI (redirect_uri).")
        if request.args.get("response_type") == "code" and \
                "authorization_code" not in self.config.grant_types:
            # check_grant: AuthorizeError(redirect_uri, "invalid_request", ...).get_response
            return redirect(authorize_error_uri(redirect_uri, "invalid_request",
                                                 request.args.get("state", "")))
        oauth_request = FlaskOAuth2Request(request)
        try:
            self.oauth.get_consent_grant(request=oauth_request, end_user=None)
        except OAuth2Error as error:
            return self.oauth.handle_error_response(oauth_request, error)
        session = self._session()
        if not session.get("user"):
            session["application_pre"] = "Mastodon"
            return redirect(f"/if/flow/{AUTHENTICATION_FLOW}/?"
                            + urlencode({"next": request.full_path}, safe="/"))
        if not self.config.consent:
            # FlowPlan.to_redirect: only the silent OAuthFulfillmentStage is left, so the
            # executor is skipped and /authorize redirects straight to the callback.
            return redirect(self._fulfil(session, request.query_string.decode()))
        session["plan"] = _Plan(EXPLICIT_FLOW, ["consent", "fulfillment"],
                                {"authorize": request.query_string.decode(),
                                 "application": "Mastodon"})
        return redirect(f"/if/flow/{EXPLICIT_FLOW}/?{request.query_string.decode()}")

    def _token(self) -> Response:
        grant_type = request.form.get("grant_type", "")
        if self._query_client(token_client_id()) is not None and \
                grant_type not in self.config.grant_types:
            # TokenRequest.parse: TokenError("invalid_grant"), cause grant_type_not_configured,
            # rendered by TokenResponse(error.create_dict(request), status=400)
            return token_error("invalid_grant")
        return self.oauth.create_token_response()

    def _userinfo(self) -> Response:
        scheme, _, value = request.headers.get("Authorization", "").partition(" ")
        token = self.tokens.get(value) if scheme.lower() == "bearer" else None
        if token is None:
            return Response("", status=401, headers={"WWW-Authenticate": 'error="invalid_token"'})
        return jsonify(dict(self.claims(self.users[token["username"]], token["scope"])))

    # ---------------------------------------------------------------- flows

    def _default_flow(self) -> Response:
        query = request.query_string.decode()
        return redirect(f"/if/flow/{AUTHENTICATION_FLOW}/" + (f"?{query}" if query else ""))

    def _interface(self, slug: str) -> Response:
        if slug not in (AUTHENTICATION_FLOW, IMPLICIT_FLOW, EXPLICIT_FLOW):
            return Response("Not Found", status=404)
        self._session()
        response = Response(f'<!DOCTYPE html><html><head><title>authentik</title></head><body>'
                            f'<ak-flow-executor flowSlug="{slug}"></ak-flow-executor></body></html>',
                            content_type="text/html; charset=utf-8")
        if "authentik_csrf" not in request.cookies:  # ensure_csrf_cookie
            response.set_cookie("authentik_csrf", token_hex(16), secure=True, samesite="Lax")
        return response

    def _executor(self, slug: str) -> Response:
        if slug not in (AUTHENTICATION_FLOW, IMPLICIT_FLOW, EXPLICIT_FLOW):
            return jsonify(detail="Not found."), 404
        session = self._session()
        with self._lock:
            if request.method == "POST" and session.get("user"):
                failure = csrf_failure()
                if failure:
                    return jsonify(detail=f"CSRF Failed: {failure}"), 403
            plan: _Plan | None = session.get("plan")
            if plan is not None and plan.flow != slug:
                plan = None
                session.pop("plan", None)
            session["get"] = dict(parse_qsl(request.args.get("query", "")))
            if plan is None:
                if slug != AUTHENTICATION_FLOW:
                    return self._denied(session, "Flow not applicable to current user.")
                if session.get("user"):
                    return self._flow_done(session)
                stages = ["identification"] + ([] if self.config.password_fields else ["password"])
                plan = session["plan"] = _Plan(slug, [*stages, "user_login"],
                                               {"application": session.get("application_pre")})
            return self._dispatch(session, plan)

    def _dispatch(self, session: dict[str, Any], plan: _Plan) -> Response:
        if not plan.stages:
            return self._flow_done(session)
        stage = plan.stages[0]
        outcome = getattr(self, f"_stage_{stage}")(session, plan)
        if outcome is not None:
            return outcome
        plan.stages.pop(0)  # stage_ok
        if plan.stages:
            return redirect(request.full_path)  # redirect_with_qs(flow-executor, request.GET)
        return self._flow_done(session)

    def _flow_done(self, session: dict[str, Any]) -> Response:
        target = session.get("get", {}).get("next", "/if/user/")
        session.pop("plan", None)
        session.pop("get", None)
        if urlsplit(target).scheme or urlsplit(target).netloc:
            return self._denied(session, "Invalid next URL")
        return jsonify(component="xak-flow-redirect", to=target)

    def _challenge(self, component: str, plan: _Plan | None, **data: Any) -> Response:
        title = "Welcome to authentik!" if plan is None or plan.flow == AUTHENTICATION_FLOW \
            else "Redirecting to Mastodon"
        return jsonify(flow_info={"title": title,
                                  "background": "/static/dist/assets/images/flow_background.jpg",
                                  "cancel_url": "/flows/-/cancel/", "layout": "stacked"},
                       component=component, **data)

    def _denied(self, session: dict[str, Any], message: str) -> Response:
        plan = session.pop("plan", None)
        session.pop("get", None)
        pending = (plan.context.get("pending_user", "") if plan else "")
        return self._challenge("ak-stage-access-denied", plan, pending_user=pending,
                               pending_user_avatar=AVATAR, error_message=message)

    @staticmethod
    def _errors(**fields_: tuple[str, str]) -> dict[str, list[dict[str, str]]]:
        return {name: [{"string": text, "code": code}] for name, (text, code) in fields_.items()}

    # ---------------------------------------------------------------- stages

    def _stage_identification(self, session: dict[str, Any], plan: _Plan) -> Response | None:
        def challenge(**extra: Any) -> Response:
            return self._challenge("ak-stage-identification", plan,
                                   user_fields=["email", "username"],
                                   password_fields=self.config.password_fields,
                                   allow_show_password=False, application_pre="Mastodon",
                                   flow_designation="authentication", captcha_stage=None,
                                   primary_action="Log in", sources=[], show_source_labels=False,
                                   enable_remember_me=True, passkey_challenge=None, **extra)

        if request.method == "GET":
            return challenge()
        data = request.get_json(silent=True) or {}
        uid = data.get("uid_field")
        if not uid:
            return challenge(response_errors=self._errors(
                non_field_errors=("No identification data provided.", "invalid")))
        user = next((u for u in self.users.values() if uid in (u.username, u.email)), None)
        plan.context["pending_user"] = user.username if user else uid
        if self.config.password_fields and not self._password_ok(user, data.get("password")):
            return challenge(response_errors=self._errors(
                non_field_errors=("Failed to authenticate.", "invalid")))
        if self.config.password_fields and user:
            plan.context["user"] = user.username
        return None  # pretend_user_exists: an unknown user fails at the password stage

    def _password_ok(self, user: AuthentikUser | None, password: object) -> bool:
        if user is None or not isinstance(password, str):
            return False
        return self.config.accept_any_password or hmac.compare_digest(password, user.password)

    def _stage_password(self, session: dict[str, Any], plan: _Plan) -> Response | None:
        pending = plan.context.get("pending_user", "")

        def challenge(**extra: Any) -> Response:
            return self._challenge("ak-stage-password", plan, pending_user=pending,
                                   pending_user_avatar=AVATAR, allow_show_password=False, **extra)

        if request.method == "GET":
            return challenge()
        data = request.get_json(silent=True) or {}
        if not isinstance(data.get("password"), str):
            return challenge(response_errors=self._errors(
                password=("This field is required.", "required")))
        user = self.users.get(pending)
        if self._password_ok(user, data["password"]):
            plan.context["user"] = pending
            return None
        plan.context["failures"] = plan.context.get("failures", 0) + 1
        if plan.context["failures"] >= self.config.failed_attempts_before_cancel:
            return self._denied(session, "Invalid password")
        return challenge(response_errors=self._errors(password=("Invalid password", "invalid")))

    def _stage_user_login(self, session: dict[str, Any], plan: _Plan) -> Response | None:
        if self.config.remember_me_offset:
            data = (request.get_json(silent=True) or {}) if request.method == "POST" else {}
            if not isinstance(data.get("remember_me"), bool):
                extra = {} if request.method == "GET" else {"response_errors": self._errors(
                    remember_me=("This field is required.", "required"))}
                return self._challenge("ak-stage-user-login", plan,
                                       pending_user=plan.context["user"],
                                       pending_user_avatar=AVATAR, **extra)
        session["user"] = plan.context["user"]
        session["auth_time"] = int(time.time())
        return None

    def _stage_consent(self, session: dict[str, Any], plan: _Plan) -> Response | None:
        data = (request.get_json(silent=True) or {}) if request.method == "POST" else {}
        if request.method == "POST" and data.get("token") == session.get("consent_token"):
            return None
        token = str(uuid.uuid4())
        session["consent_token"] = token
        scope = dict(parse_qsl(plan.context["authorize"])).get("scope", "")
        return self._challenge("ak-stage-consent", plan, pending_user=session["user"],
                               pending_user_avatar=AVATAR,
                               header_text="You're about to sign into Mastodon.",
                               permissions=[{"id": s, "name": ""} for s in scope.split()
                                            if s in SCOPES],
                               additional_permissions=[], token=token)

    def _stage_fulfillment(self, session: dict[str, Any], plan: _Plan) -> Response | None:
        """OAuthFulfillmentStage in the executor (after a consent stage)."""
        location = self._fulfil(session, plan.context["authorize"])
        session.pop("plan", None)
        return jsonify(component="xak-flow-redirect", to=location)

    def _fulfil(self, session: dict[str, Any], authorize_query: str) -> str:
        """OAuthFulfillmentStage: issue the code for an authorize request; the callback URL."""
        environ = EnvironBuilder(method="GET", base_url=f"https://{request.host}",
                                 path="/application/o/authorize/",
                                 query_string=authorize_query).get_environ()
        oauth_request = FlaskOAuth2Request(FlaskRequest(environ))
        user = self.users[session["user"]]
        grant = self.oauth.get_consent_grant(request=oauth_request, end_user=user)
        response = self.oauth.create_authorization_response(request=oauth_request,
                                                            grant_user=user, grant=grant)
        return str(response.headers["Location"])
