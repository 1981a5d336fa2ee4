"""mail.delivery: a mail Mastodon sends through Sidekiq's mailers queue reaches the sink.

The trigger is a password reset for the test account (``POST /auth/password`` with the
form's CSRF token). Devise calls ``UserMailer.reset_password_instructions(...).deliver_later``
(app/models/user.rb ``render_and_send_devise_message``), which Rails enqueues on the
``mailers`` queue (config/application.rb ``deliver_later_queue_name``); Sidekiq renders
it and sends it over SMTP to Mailpit. The reset only issues a token (valid 6 h); the
account's password is unchanged. Rack::Attack allows 5 resets per e-mail per 30 min.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from email.utils import parseaddr
from html.parser import HTMLParser
from typing import cast
from urllib.parse import urlsplit

import requests

from tootcheck.checks.registry import live_check
from tootcheck.clients.mailsink import MailpitClient, MailSinkError, Message
from tootcheck.model import CheckResult, CheckRun
from tootcheck.target import Target
from tootcheck.waiting import Poll, WaitTimeout, wait_until

NAME = "mail.delivery"
FAULTS = {
    "mail-sink-unreachable": "the mail sink's API cannot be read, so delivery cannot be judged",
    "mail-trigger-failed": "Mastodon refused the password-reset request (CSRF, throttling, error)",
    "mail-not-delivered": "no password-reset mail reached the sink within the bound",
    "mail-wrong-recipient": "the mail went to another address than the account's e-mail",
    "mail-wrong-sender": "the mail's From is not the configured SMTP_FROM_ADDRESS",
    "mail-link-wrong-host": "the mail's reset link does not point at https://<domain>/auth/password/edit",
}
RESET_MARKER = "reset_password_token="
RESET_PATH = "/auth/password/edit"
BASELINE_WINDOW = 100
REQUEST_TIMEOUT_S = 30.0

Trigger = Callable[[], None]


class TriggerFailed(Exception):
    """Mastodon did not accept the request meant to make it send a mail."""


class _CsrfMeta(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.token: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "meta" and values.get("name") == "csrf-token" and values.get("content"):
            self.token = values["content"]


def csrf_token(html: str) -> str | None:
    """The Rails ``<meta name="csrf-token">`` value of a page."""
    parser = _CsrfMeta()
    parser.feed(html)
    return parser.token


def request_password_reset(session: requests.Session, base_url: str, email: str) -> None:
    """Ask Mastodon for a password-reset mail, as the 'forgot password' form does."""
    form_url = f"{base_url}/auth/password/new"
    try:
        page = session.get(form_url, timeout=REQUEST_TIMEOUT_S)
    except requests.RequestException as exc:
        raise TriggerFailed(f"GET {form_url} failed: {exc}") from exc
    if page.status_code != 200:
        raise TriggerFailed(f"GET {form_url} answered HTTP {page.status_code}")
    token = csrf_token(page.text)
    if not token:
        raise TriggerFailed(f"{form_url} carries no csrf-token meta tag")
    try:
        response = session.post(
            f"{base_url}/auth/password",
            data={"authenticity_token": token, "user[email]": email},
            allow_redirects=False,
            timeout=REQUEST_TIMEOUT_S,
        )
    except requests.RequestException as exc:
        raise TriggerFailed(f"POST /auth/password failed: {exc}") from exc
    if response.status_code in (301, 302, 303):
        return
    hint = {
        422: " (CSRF token or session cookie rejected)",
        429: " (throttled by Rack::Attack: 5 resets per e-mail per 30 min)",
    }.get(response.status_code, "")
    raise TriggerFailed(f"POST /auth/password answered HTTP {response.status_code}{hint}")


def password_reset_trigger(target: Target, email: str) -> Trigger:
    def trigger() -> None:
        request_password_reset(target.http(), target.base_url, email)

    return trigger


def _without_query(url: str) -> str:
    """scheme://host/path only: reset links carry a live token in the query."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"


def _find_reset_mail(sink: MailpitClient, baseline: set[str]) -> Poll[Message]:
    new = [m for m in sink.messages(limit=BASELINE_WINDOW) if m.id not in baseline]
    for summary in reversed(new):  # oldest first
        message = sink.message(summary.id)
        if RESET_MARKER in message.text or RESET_MARKER in message.html:
            return Poll(True, message, f"reset mail {message.id} arrived")
    return Poll(False, state=f"{len(new)} new message(s) in the sink, none with a reset link")


@live_check(NAME, faults=FAULTS, modes=("gate", "rehearsal"), mutating=True)
def check_delivery(
    target: Target,
    sink: MailpitClient,
    *,
    recipient: str,
    expected_sender: str,
    trigger: Trigger | None = None,
    timeout: float | str = "mail",
    interval: float = 0.5,
) -> CheckResult:
    """A password-reset mail reaches the sink: right recipient, SMTP_FROM_ADDRESS, link to the instance."""
    run = CheckRun(NAME, target.name)
    run.evidence.update(recipient=recipient, expected_sender=expected_sender)
    trigger = trigger or password_reset_trigger(target, recipient)
    try:
        baseline = {m.id for m in sink.messages(limit=BASELINE_WINDOW)}
    except MailSinkError as exc:
        run.fail("mail-sink-unreachable", str(exc))
        return run.result()
    run.observe()

    started = time.monotonic()
    try:
        trigger()
    except TriggerFailed as exc:
        run.fail("mail-trigger-failed", str(exc))
        return run.result()
    try:
        found = wait_until(
            lambda: _find_reset_mail(sink, baseline),
            what="the password-reset mail in the sink",
            timeout=timeout,
            interval=interval,
            retry_on=(MailSinkError,),
        )
    except WaitTimeout as exc:
        run.fail("mail-not-delivered",
                 f"no password-reset mail reached the sink within {exc.timeout:g}s "
                 f"(last state: {exc.last_seen})")
        return run.result()
    message = cast(Message, found)  # a done Poll always carries the message
    latency = time.monotonic() - started
    run.metrics["delivery_latency_s"] = round(latency, 3)

    recipients = [a.address for a in message.to]
    reset_links = [_without_query(u) for u in message.links() if RESET_MARKER in u]
    run.evidence.update(
        message_id=message.id,
        subject=message.subject,
        sender=str(message.sender),
        to=recipients,
        reset_links=reset_links,
        delivery_latency_s=round(latency, 3),
    )

    run.expect(
        recipient.lower() in (a.lower() for a in recipients),
        "mail-wrong-recipient",
        f"the password-reset mail went to {', '.join(recipients) or 'nobody'}, not {recipient}",
    )
    configured = parseaddr(expected_sender)[1]
    run.expect(
        message.sender.address.lower() == configured.lower(),
        "mail-wrong-sender",
        f"the mail came from {message.sender.address or 'no sender'}, "
        f"but SMTP_FROM_ADDRESS is {configured}",
    )
    expected = f"{target.base_url}{RESET_PATH}"
    run.expect(
        expected in reset_links,
        "mail-link-wrong-host",
        f"the reset link points at {', '.join(reset_links) or 'nothing'}, not {expected}",
    )
    try:
        sink.delete([message.id])  # it carries a live reset token
        run.evidence["cleanup"] = "reset mail deleted from the sink"
    except MailSinkError as exc:
        run.evidence["cleanup"] = f"could not delete the reset mail: {exc}"
    return run.result()
