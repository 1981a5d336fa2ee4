"""HTTPS on the target: certificate, TLS versions, HTTP semantics, Mastodon endpoints, Host check.

Thin: each test runs one check from ``tootcheck.checks.https`` (proven against local
peers in ``tests/checks/test_https.py``) and asserts it passed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from tootcheck.checks.https import (
    CERT_MIN_DAYS,
    check_certificate,
    check_host_header,
    check_http_semantics,
    check_mastodon_endpoints,
    check_tls_versions,
    read_ca_file,
)
from tootcheck.target import Target

if TYPE_CHECKING:
    from suites.https.secret import TlsSecret

pytestmark = pytest.mark.needs_target


@pytest.mark.check("https.certificate")
def test_served_certificate(target: Target) -> None:
    result = check_certificate(target, issuer_pem=read_ca_file(target.ca_file),
                               min_days=CERT_MIN_DAYS)
    assert result.ok, result.summary


@pytest.mark.check("https.certificate")
def test_served_certificate_is_the_secrets(target: Target, tls_secret: TlsSecret) -> None:
    result = check_certificate(target, issuer_pem=tls_secret.ca_crt or read_ca_file(target.ca_file),
                               secret_cert_pem=tls_secret.tls_crt, min_days=CERT_MIN_DAYS)
    assert result.ok, result.summary


@pytest.mark.check("https.tls_versions")
def test_tls_versions(target: Target) -> None:
    result = check_tls_versions(target)
    assert result.ok, result.summary


@pytest.mark.check("https.http_semantics")
def test_http_semantics(target: Target) -> None:
    result = check_http_semantics(target)
    assert result.ok, result.summary


@pytest.mark.check("https.mastodon_endpoints")
def test_mastodon_endpoints(target: Target, account_username: str) -> None:
    result = check_mastodon_endpoints(target, username=account_username)
    assert result.ok, result.summary


@pytest.mark.check("https.host_header")
def test_foreign_host_refused(target: Target) -> None:
    result = check_host_header(target)
    assert result.ok, result.summary
