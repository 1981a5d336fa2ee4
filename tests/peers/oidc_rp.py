"""Mastodon's OIDC login as a local peer: a relying party on Authlib's OAuth 2 client.

Authlib (``authlib.integrations.requests_client.OAuth2Session``) builds the
authorization URL and redeems the code with client_secret_basic; joserfc verifies
the ID token's signature against the provider's JWKS and Authlib's
``authlib.oidc.core.CodeIDToken`` validates its claims. Around that, the peer
answers with Mastodon's paths and behaviour, from Mastodon's source
(Lastorder-DC/mastodon, ~4.5.0-alpha) and the gems it pins:

* ``GET /auth/sign_in`` (``app/views/auth/sessions/new.html.haml``): the layout's
  ``csrf_meta_tags``, the flash boxes (``app/views/application/_flashes.html.haml``)
  and the ``link_to ... method: :post`` button (``ApplicationHelper#provider_sign_in_link``);
* ``POST /auth/auth/openid_connect``: omniauth-rails_csrf_protection checks the
  Rails authenticity token (masked per request, as ``ActionController::RequestForgeryProtection``);
  omniauth_openid_connect 0.8.0 ``request_phase``: discovery from
  ``OIDC_ISSUER`` (openid_connect gem: exact issuer match, else "Issuer mismatch"),
  then a redirect with ``response_type=code``, scope, ``state`` and ``nonce`` (hex16, kept
  in the session as ``omniauth.state``/``omniauth.nonce``);
* ``GET /auth/auth/openid_connect/callback``: ``callback_phase`` (``error`` param,
  state check "Invalid 'state' parameter", code exchange, ``verify_id_token!``:
  exp, iss == OIDC_ISSUER, nonce, aud; userinfo merged with the ID token; uid from
  ``OIDC_UID_FIELD``). Any failure goes through OmniAuth's ``fail!`` (omniauth 2.1
  ``Strategy#call!`` rescues StandardError) to Devise's ``OmniauthCallbacksController#failure``:
  flash "Could not authenticate you from OpenIDConnect because “<reason>”." and a
  redirect to ``/auth/sign_in``;
* success (``app/controllers/auth/omniauth_callbacks_controller.rb``,
  ``app/models/concerns/user/omniauthable.rb``): the user is found by identity or
  created (username from the uid, ``ensure_valid_username``/``ensure_unique_username``),
  signed in (``_mastodon_session`` cookie, ``_session_id`` activation with a
  Doorkeeper token, ``config/initializers/devise.rb``, ``app/models/session_activation.rb``)
  and redirected to ``/``;
* ``GET /``: the web app's ``<script id="initial-state">`` carrying ``meta.access_token``
  (the session's token) and ``meta.me`` (``ApplicationHelper#render_initial_state``,
  ``InitialStateSerializer``);
* ``GET /api/v1/accounts/verify_credentials``: Doorkeeper bearer tokens only — the
  session cookie alone does not authenticate API calls (``Api::BaseController``,
  ``doorkeeper_authorize!``); ``GET /api/v1/admin/accounts/:id`` with an admin token
  shows the email (``REST::Admin::AccountSerializer``).

Break it through :class:`MastodonConfig`; ``reset()`` restores the healthy defaults.
"""

from __future__ import annotations

import base64
import hmac
import json
import secrets
import threading
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import requests
from authlib.integrations.requests_client import OAuth2Session
from authlib.oauth2.rfc6749.errors import OAuth2Error
from authlib.oidc.core import CodeIDToken
from flask import Flask, Response, jsonify, redirect, request, session
from joserfc import jwt
from joserfc.errors import (
    BadSignatureError,
    ExpiredTokenError,
    InvalidClaimError,
    InvalidKeyIdError,
    MissingClaimError,
)
from joserfc.jwk import KeySet
from joserfc.jws import JWSRegistry

from tests.peers.entities import account_entity, credential_account_entity, iso_timestamp, snowflake_id
from tests.peers.oidc_idp import AUTH_HOST, CLIENT_ID, REDIRECT_URI, PeerCA, PeerServer, Recorded, record
from tootcheck.clients.oidc import discovery_url, mastodon_username_for
from tootcheck.clients.pinning import PinMap, PinnedAdapter

DOMAIN = "kirchner.social"
PROVIDER = "openid_connect"
KIND = "OpenIDConnect"  # OmniAuth::Utils.camelize with the gem's add_camelization


@dataclass
class MastodonConfig:
    """The OIDC_* environment of the web container. Defaults: the reference ConfigMap."""

    issuer: str = f"https://{AUTH_HOST}/application/o/mastodon/"  # OIDC_ISSUER
    client_id: str = CLIENT_ID
    redirect_uri: str = REDIRECT_URI
    scope: tuple[str, ...] = ("openid", "profile", "email")  # OIDC_SCOPE
    uid_field: str = "sub"  # OIDC_UID_FIELD
    assume_email_is_verified: bool = True
    # faults a healthy Mastodon never shows
    check_state: bool = True
    sign_in: bool = True  # False: redirect home after the callback without a session
    api_accepts_session_token: bool = True


@dataclass
class MastodonUser:
    id: str
    username: str
    email: str
    display_name: str
    created_at: str


class OmniAuthFailure(Exception):
    """What OmniAuth's ``fail!`` hands Devise: the reason Devise humanizes into the flash."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def humanize(text: str) -> str:
    """ActiveSupport's ``String#humanize`` (enough of it for OmniAuth reasons).

    >>> humanize("authenticity_error"), humanize("JSON::JWS::VerificationFailed")
    ('Authenticity error', 'Json::jws::verificationfailed')
    """
    result = text.lstrip("_").removesuffix("_id").replace("_", " ").lower()
    return result[:1].upper() + result[1:]


def _ruby_reason(exc: BaseException) -> str:
    """The message the corresponding Ruby exception carries in Mastodon's stack."""
    if isinstance(exc, OmniAuthFailure):
        return exc.reason
    if isinstance(exc, BadSignatureError):
        return "JSON::JWS::VerificationFailed"
    if isinstance(exc, InvalidKeyIdError):
        return "JSON::JWK::Set::KidNotFound"
    if isinstance(exc, ExpiredTokenError):
        return "Invalid ID token: Expired token"
    if isinstance(exc, InvalidClaimError | MissingClaimError):
        claim = str(exc)
        if "iss" in claim:
            return "Invalid ID token: Issuer does not match"
        if "nonce" in claim:
            return "Invalid ID Token: Nonce does not match"
        if "aud" in claim:
            return "Invalid ID token: Audience does not match"
        return f"Invalid ID token: {claim}"
    if isinstance(exc, OAuth2Error):  # Rack::OAuth2::Client::Error -> fail!(response[:error])
        return exc.error or "invalid_request"
    if isinstance(exc, requests.Timeout):
        return "timeout"
    if isinstance(exc, requests.ConnectionError):
        return "failed_to_connect"
    return str(exc)


class MastodonPeer:
    """Mastodon's web process as far as the OIDC login and its proof look."""

    def __init__(self, ca: PeerCA, idp_pins: PinMap, *, client_secret: str,
                 admin_token: str) -> None:
        self.config = MastodonConfig()
        self._default = replace(self.config)
        self.ca_file = ca.ca_file
        self.idp_pins = idp_pins
        self.client_secret = client_secret
        self.admin_token = admin_token
        self.requests: list[Recorded] = []
        self.users: dict[str, MastodonUser] = {}
        self.identities: dict[tuple[str, str], str] = {}  # (provider, uid) -> user id
        self.activations: dict[str, tuple[str, str]] = {}  # _session_id -> (user id, token)
        self.tokens: dict[str, str] = {}  # Doorkeeper token -> user id
        self._lock = threading.RLock()
        self.app = self._build_app()
        self.server = PeerServer(self.app, ca.server_context(DOMAIN))
        self.port = self.server.port

    def reset(self) -> None:
        with self._lock:
            self.config = replace(self._default)
            self.requests.clear()
            self.users.clear()
            self.identities.clear()
            self.activations.clear()
            self.tokens.clear()

    def stop(self) -> None:
        self.server.stop()

    # ---------------------------------------------------------------- app

    def _build_app(self) -> Flask:
        app = Flask("mastodon-peer")
        app.secret_key = secrets.token_bytes(32)
        app.config.update(SESSION_COOKIE_NAME="_mastodon_session", SESSION_COOKIE_SECURE=True,
                          SESSION_COOKIE_SAMESITE="Lax", SESSION_COOKIE_HTTPONLY=True)
        app.before_request(lambda: record(self.requests))
        app.add_url_rule("/auth/sign_in", "sign_in", self._sign_in)
        app.add_url_rule("/auth/auth/openid_connect", "start", self._start, methods=["POST"])
        app.add_url_rule("/auth/auth/openid_connect/callback", "callback", self._callback,
                         methods=["GET", "POST"])
        app.add_url_rule("/", "home", self._home)
        app.add_url_rule("/api/v1/accounts/verify_credentials", "verify", self._verify_credentials)
        app.add_url_rule("/api/v1/admin/accounts/<account_id>", "admin_account",
                         self._admin_account)
        return app

    def _http(self) -> OAuth2Session:
        """Authlib's client over the pinned, CA-scoped transport Mastodon would use."""
        client = OAuth2Session(self.config.client_id, self.client_secret,
                               scope=" ".join(self.config.scope),
                               redirect_uri=self.config.redirect_uri,
                               token_endpoint_auth_method="client_secret_basic")
        client.trust_env = False
        client.verify = str(self.ca_file)
        client.mount("https://", PinnedAdapter(self.idp_pins))
        return client

    # ---------------------------------------------------------------- Rails CSRF

    def _csrf_token(self) -> str:
        raw = session.setdefault("_csrf_token", base64.b64encode(secrets.token_bytes(32)).decode())
        real = base64.b64decode(raw)
        pad = secrets.token_bytes(32)
        return base64.b64encode(pad + bytes(a ^ b for a, b in zip(pad, real, strict=True))).decode()

    def _verified_request(self) -> bool:
        raw = session.get("_csrf_token")
        given = request.form.get("authenticity_token") or request.headers.get("X-CSRF-Token")
        if not raw or not given:
            return False
        try:
            masked = base64.b64decode(given, validate=True)
        except ValueError:
            return False
        real = base64.b64decode(raw)
        if len(masked) == 64:
            masked = bytes(a ^ b for a, b in zip(masked[:32], masked[32:], strict=True))
        return hmac.compare_digest(masked, real)

    # ---------------------------------------------------------------- pages

    def _signed_in_user(self) -> tuple[MastodonUser, str] | None:
        activation = self.activations.get(session.get("_session_id", ""))
        if activation is None or session.get("user_id") != activation[0]:
            return None
        return self.users[activation[0]], activation[1]

    def _sign_in(self) -> Response:
        if self._signed_in_user():
            session.setdefault("flash", []).append(("alert", "You are already signed in."))
            return redirect("/")
        flashes = "".join(f'<div class="flash-message {kind}"><strong>{_escape(text)}</strong></div>'
                          for kind, text in session.pop("flash", []))
        page = ('<!DOCTYPE html><html><head><meta charset="utf-8">'
                f'<meta name="csrf-param" content="authenticity_token">'
                f'<meta name="csrf-token" content="{self._csrf_token()}">'
                f'<title>Log in - {DOMAIN}</title></head><body>{flashes}'
                '<div class="simple_form alternative-login"><h4>Log in with</h4><div class="actions">'
                '<a class="button button-openid_connect" rel="nofollow" data-method="post" '
                'href="/auth/auth/openid_connect">Authentik</a></div></div></body></html>')
        return Response(page, content_type="text/html; charset=utf-8")

    def _home(self) -> Response:
        signed_in = self._signed_in_user()
        meta: dict[str, Any] = {"access_token": None, "domain": DOMAIN, "locale": "en",
                                "title": DOMAIN, "version": "4.7.2"}
        accounts: dict[str, Any] = {}
        if signed_in:
            user, token = signed_in
            meta.update(access_token=token, me=user.id)
            accounts[user.id] = self._account(user)
        state = json.dumps({"meta": meta, "accounts": accounts, "compose": {}, "settings": {}})
        state = state.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
        page = ('<!DOCTYPE html><html><head><meta charset="utf-8"><title>Mastodon</title>'
                f'<script id="initial-state" type="application/json">{state}</script>'
                '</head><body><div class="app-holder" id="mastodon"></div></body></html>')
        return Response(page, content_type="text/html; charset=utf-8")

    # ---------------------------------------------------------------- OmniAuth

    def _failure(self, exc: BaseException) -> Response:
        """Devise::OmniauthCallbacksController#failure."""
        reason = humanize(_ruby_reason(exc))
        session.setdefault("flash", []).append(
            ("alert", f"Could not authenticate you from {KIND} because “{reason}”."))
        return redirect("/auth/sign_in")

    def _discover(self, client: OAuth2Session) -> dict[str, Any]:
        """OpenIDConnect::Discovery::Provider::Config.discover!(OIDC_ISSUER)."""
        try:
            response = client.get(discovery_url(self.config.issuer), timeout=10,
                                  withhold_token=True)
            doc = response.json()
        except (requests.RequestException, ValueError) as exc:
            raise OmniAuthFailure(f"SWD::Exception: {type(exc).__name__}") from None
        if doc.get("issuer") != self.config.issuer:
            raise OmniAuthFailure("Issuer mismatch")
        return doc

    def _start(self) -> Response:
        if not self._verified_request():  # omniauth-rails_csrf_protection
            return self._failure(OmniAuthFailure("authenticity_error"))
        session["omniauth.params"] = dict(request.args)
        try:
            client = self._http()
            metadata = self._discover(client)
        except Exception as exc:
            return self._failure(exc)
        state, nonce = secrets.token_hex(16), secrets.token_hex(16)
        session["omniauth.state"], session["omniauth.nonce"] = state, nonce
        url, _ = client.create_authorization_url(metadata["authorization_endpoint"], state=state,
                                                 nonce=nonce)
        return redirect(url)

    def _callback(self) -> Response:
        args = request.values
        stored_state = session.pop("omniauth.state", None)
        stored_nonce = session.pop("omniauth.nonce", None)
        session.pop("omniauth.params", None)
        error = args.get("error_reason") or args.get("error")
        if error:
            return self._failure(OmniAuthFailure(args.get("error_description") or error))
        if self.config.check_state and (not args.get("state") or args["state"] != stored_state):
            return self._failure(OmniAuthFailure("Invalid 'state' parameter"))
        if "code" not in args:
            return self._failure(OmniAuthFailure("missing_code"))
        try:
            client = self._http()
            metadata = self._discover(client)
            token = client.fetch_token(metadata["token_endpoint"], code=args["code"],
                                       grant_type="authorization_code",
                                       scope=" ".join(self.config.scope), timeout=10)
            claims = self._verify_id_token(client, metadata, token, stored_nonce)
            userinfo = client.get(metadata["userinfo_endpoint"], timeout=10)
            userinfo.raise_for_status()
            info = {**userinfo.json(), **claims}
        except Exception as exc:
            return self._failure(exc)
        uid = str(info.get(self.config.uid_field) or info["sub"])
        user = self._find_or_create(uid, info)
        if self.config.sign_in:
            session_id = secrets.token_hex(20)
            token_value = secrets.token_urlsafe(32)
            self.activations[session_id] = (user.id, token_value)
            self.tokens[token_value] = user.id
            session["user_id"], session["_session_id"] = user.id, session_id
        return redirect("/")

    def _verify_id_token(self, client: OAuth2Session, metadata: Mapping[str, Any],
                         token: Mapping[str, Any], nonce: str | None) -> dict[str, Any]:
        """omniauth_openid_connect ``decode_id_token`` + ``IdToken#verify!``."""
        jwks = client.get(metadata["jwks_uri"], timeout=10, withhold_token=True).json()
        decoded = jwt.decode(token["id_token"], KeySet.import_key_set(jwks),
                             registry=JWSRegistry(algorithms=["RS256", "ES256"]))
        claims = CodeIDToken(decoded.claims, decoded.header,
                             {"iss": {"essential": True, "value": self.config.issuer},
                              "aud": {"essential": True, "value": self.config.client_id}},
                             {"nonce": nonce, "client_id": self.config.client_id,
                              "access_token": token["access_token"]})
        claims.validate(leeway=0)
        return dict(claims)

    def _find_or_create(self, uid: str, info: Mapping[str, Any]) -> MastodonUser:
        """User.find_for_omniauth (User::Omniauthable)."""
        with self._lock:
            user_id = self.identities.get((PROVIDER, uid))
            if user_id:
                return self.users[user_id]
            username = base = mastodon_username_for(uid)
            taken = {u.username for u in self.users.values()}
            counter = 0
            while username in taken:
                counter += 1
                username = f"{base}_{counter}"
            email = info.get("email") or f"change@me-{uid}-{PROVIDER}.com"
            user = MastodonUser(snowflake_id(), username, email, str(info.get("name") or ""),
                                iso_timestamp())
            self.users[user.id] = user
            self.identities[(PROVIDER, uid)] = user.id
            return user

    # ---------------------------------------------------------------- API

    def _account(self, user: MastodonUser) -> dict[str, Any]:
        return account_entity(user.id, user.username, display_name=user.display_name,
                              created_at=user.created_at)

    def _bearer(self) -> str:
        scheme, _, value = request.headers.get("Authorization", "").partition(" ")
        return value if scheme.lower() == "bearer" else ""

    def _verify_credentials(self) -> Response:
        user_id = self.tokens.get(self._bearer())
        if user_id is None or not self.config.api_accepts_session_token:
            return jsonify(error="The access token is invalid"), 401
        return jsonify(credential_account_entity(self._account(self.users[user_id])))

    def _admin_account(self, account_id: str) -> Response:
        if not hmac.compare_digest(self._bearer(), self.admin_token):
            return jsonify(error="The access token is invalid"), 401
        user = self.users.get(account_id)
        if user is None:
            return jsonify(error="Record not found"), 404
        return jsonify({"id": user.id, "username": user.username, "domain": None,
                        "created_at": user.created_at, "email": user.email, "ip": None,
                        "ips": [], "locale": None, "invite_request": None,
                        "role": {"id": "-99", "name": "", "color": "", "permissions": "0",
                                 "highlighted": False},
                        "confirmed": True, "suspended": False, "silenced": False,
                        "sensitized": False, "disabled": False, "approved": True,
                        "account": self._account(user)})


def _escape(text: str) -> str:
    return (text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace('"', "&quot;"))
