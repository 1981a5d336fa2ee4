"""OIDC on the target: Authentik's discovery and keys, the headless login, negative paths.

Thin: each test runs one check from ``tootcheck.checks.oidc`` (proven against local
peers in ``tests/checks/test_oidc.py``) and asserts it passed. The login and the
negative paths need the Authentik test user (``target.account("oidc")``: username,
password, and email for the email check); without it they skip with one line.
"""

from __future__ import annotations

import pytest

from tootcheck.checks.oidc import check_discovery, check_login, check_negative_paths
from tootcheck.target import Target
from tootcheck.testing import record_unproven_parts

pytestmark = pytest.mark.needs_target

NO_OIDC_USER = ("no OIDC test user on the target: set TOOTCHECK_OIDC_USERNAME and "
                "TOOTCHECK_OIDC_PASSWORD (or TOOTCHECK_OIDC_PASSWORD_FILE)")


@pytest.fixture
def oidc_target(target: Target) -> Target:
    """The target, when it names an Authentik user with a password; else a one-line skip."""
    account = target.accounts.get("oidc")
    if account is None or account.password is None:
        pytest.skip(NO_OIDC_USER)
    return target


@pytest.mark.check("oidc.discovery")
def test_discovery(target: Target) -> None:
    result = check_discovery(target)
    assert result.ok, result.summary


@pytest.mark.check("oidc.login")
def test_login(oidc_target: Target, request: pytest.FixtureRequest) -> None:
    result = check_login(oidc_target)
    record_unproven_parts(request.node, result)  # the e-mail comparison, without an admin token
    assert result.ok, result.summary


@pytest.mark.check("oidc.negative_paths")
def test_negative_paths(oidc_target: Target) -> None:
    result = check_negative_paths(oidc_target)
    assert result.ok, result.summary
