"""Authentik's answers that the peer builds by hand: error pages and error redirects
(``authentik/providers/oauth2/errors.py``, ``lib/views.py#bad_request_message``), token
errors, the CSRF check of DRF's SessionAuthentication, and the self-signed certificate of the
signing key (JWKS ``x5c``/``x5t``, md5 ``kid``)."""

from __future__ import annotations

import base64
import datetime
import hmac
import uuid
from html import escape
from urllib.parse import quote, urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
)
from cryptography.x509.oid import NameOID
from flask import Response, jsonify, request
from joserfc.jwk import RSAKey


def error_page(title: str, message: str) -> Response:
    """``bad_request_message``: ``error/generic.html`` with HTTP 400: the title in the card's
    ``<h1>``, the description in a ``<p>`` (as served by 2025.12.4, issue 11)."""
    body = ('<!DOCTYPE html><html><head><title>authentik</title></head><body>'
            '<div class="pf-c-login__main"><header class="pf-c-login__main-header">'
            f'<h1 class="pf-c-title pf-m-3xl">{escape(title)}</h1></header>'
            '<div class="pf-c-login__main-body"><form method="POST" class="pf-c-form">'
            f'<p>{escape(message)}</p>'
            '<a id="ak-back-home" href="/" class="pf-c-button pf-m-primary">Go home</a>'
            '</form></div></div></body></html>')
    return Response(body, status=400, content_type="text/html; charset=utf-8")


def private_pem(key: RSAKey) -> bytes:
    private = key.private_key
    assert isinstance(private, rsa.RSAPrivateKey)
    return private.private_bytes(Encoding.PEM, PrivateFormat.TraditionalOpenSSL, NoEncryption())


def self_signed(key: RSAKey) -> x509.Certificate:
    """Like "authentik Self-signed Certificate": a self-signed certificate for the signing key."""
    private = key.private_key
    assert isinstance(private, rsa.RSAPrivateKey)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "authentik Self-signed Certificate")])
    now = datetime.datetime.now(datetime.UTC)
    return (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(private.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=365))
            .sign(private, hashes.SHA256()))


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def authorize_error_uri(redirect_uri: str, error: str, state: str) -> str:
    """``AuthorizeError.create_uri`` (authentik/providers/oauth2/errors.py) for the code flow."""
    descriptions = {"invalid_request": "The request is otherwise malformed"}
    uri = f"{redirect_uri}?error={error}&error_description={quote(descriptions[error])}"
    return uri + (f"&state={state}" if state else "")


def token_client_id() -> str:
    """client_secret_basic or client_secret_post, like extract_client_auth."""
    if request.authorization and request.authorization.type == "basic":
        return request.authorization.username or ""
    return request.form.get("client_id", "")


def token_error(error: str) -> Response:
    """``TokenError.create_dict`` as ``TokenResponse`` (400, JSON; errors.py)."""
    descriptions = {"invalid_grant": (
        "The provided authorization grant or refresh token is invalid, expired, revoked, does "
        "not match the redirection URI used in the authorization request, or was issued to "
        "another client")}
    response = jsonify(error=error, error_description=descriptions[error],
                       request_id=uuid.uuid4().hex)
    response.status_code = 400
    return response


def csrf_failure() -> str | None:
    """Django's CsrfViewMiddleware as DRF's SessionAuthentication applies it (HTTPS)."""
    origin = f"https://{request.host}"
    if "Origin" in request.headers:
        if request.headers["Origin"] != origin:
            return f"Origin checking failed - {request.headers['Origin']} does not match any " \
                   "trusted origins."
    else:
        referer = request.headers.get("Referer")
        if not referer:
            return "Referer checking failed - no Referer."
        if f"https://{urlsplit(referer).netloc}" != origin:
            return f"Referer checking failed - {quote(referer)} does not match any trusted origins."
    cookie = request.cookies.get("authentik_csrf")
    if not cookie:
        return "CSRF cookie not set."
    header = request.headers.get("X-authentik-CSRF")
    if not header:
        return "CSRF token missing."
    if not hmac.compare_digest(header, cookie):
        return "CSRF token incorrect."
    return None
