"""Fixtures for the HTTPS suite: what the served certificate is compared with.

``tls_secret`` reads the cert-manager Secret ``kirchner-social-tls`` (``tls.crt`` and
``ca.crt``) through the target's kubeconfig, so the suite ties the manifests to what is
served. Without cluster access (a nightly run with only a URL and a CA) it skips with
one line; an unreadable Secret fails with one line.
"""

from __future__ import annotations

import pytest

from suites.https.secret import TLS_SECRET, SecretUnreadable, TlsSecret, read_tls_secret
from tootcheck.clients.tls import require_ca
from tootcheck.errors import BadInput
from tootcheck.target import Target


@pytest.fixture(scope="session", autouse=True)
def usable_ca(target: Target) -> None:
    """A CA file that holds no CA certificate fails every test in one line, not a traceback."""
    try:
        require_ca(target.ca_file)
        return
    except BadInput as exc:
        problem = str(exc)
    pytest.fail(problem, pytrace=False)  # outside the except: no chained traceback


@pytest.fixture(scope="session")
def tls_secret(target: Target) -> TlsSecret:
    if target.kubeconfig is None:
        pytest.skip(f"target {target.name} has no kubeconfig: Secret {TLS_SECRET} not compared")
    try:
        return read_tls_secret(target.kubeconfig, target.kube_context, target.namespace)
    except SecretUnreadable as exc:
        problem = str(exc)
    pytest.fail(problem, pytrace=False)


@pytest.fixture(scope="session")
def account_username(target: Target) -> str:
    """The test account's username (webfinger needs no token); one-line skip without one."""
    try:
        return target.account("test").username
    except LookupError as exc:
        problem = str(exc)
    pytest.skip(problem)
