"""Mail on the target: a password-reset mail for the test account reaches Mailpit.

Thin: one check from ``tootcheck.checks.mail`` (proven against a real SMTP sink in
``tests/checks/test_mail.py``). Mutating and kind-only (modes gate and rehearsal): it
needs the in-cluster Mailpit the kind overlay points SMTP_SERVER at.
"""

from __future__ import annotations

import pytest

from tootcheck.checks.mail import check_delivery
from tootcheck.clients.mailsink import MailpitClient
from tootcheck.target import Target

pytestmark = pytest.mark.needs_target

MASTODON_DEFAULT_SENDER = "notifications@localhost"  # config/email.yml without SMTP_FROM_ADDRESS


@pytest.mark.check("mail.delivery")
def test_mail_delivery(target: Target, mailpit_api: MailpitClient, mastodon_env: dict[str, str]) -> None:
    email = target.account("test").email
    if not email:
        pytest.skip(f"target {target.name}: the test account has no e-mail address")
    result = check_delivery(target, mailpit_api, recipient=email,
                            expected_sender=mastodon_env.get("SMTP_FROM_ADDRESS", MASTODON_DEFAULT_SENDER))
    assert result.ok, result.summary
