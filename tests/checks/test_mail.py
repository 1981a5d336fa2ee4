"""mail.delivery against a real SMTP sink (aiosmtpd) read through a Mailpit-style API.

The "Mastodon side" is simulated (tests/peers/mastodon_side.py): the check's real
password-reset trigger GETs the form over HTTPS, posts the CSRF token and e-mail, and a
background job sends the reset mail by SMTP to the sink. Each fault is caused for real
at the sender; the check's receiving logic reads the sink through its real client.
"""

from __future__ import annotations

from tests.peers.mastodon_side import SENDER, SimulatedMastodon
from tests.peers.smtp import SmtpSink
from tootcheck.checks.mail import check_delivery, csrf_token
from tootcheck.clients.mailsink import MailpitClient
from tootcheck.testing import expect_fault, expect_ok

FAST = 0.5  # seconds: the bound when the mail is meant never to come (a healthy one takes ms)
HEALTHY = 15.0


def run_check(mastodon_sim: SimulatedMastodon, sink: SmtpSink, **kwargs):
    target = mastodon_sim.target()
    kwargs.setdefault("timeout", HEALTHY)
    kwargs.setdefault("interval", 0.05)
    return check_delivery(target, MailpitClient(sink.api_url), recipient=target.account("test").email,
                          expected_sender=SENDER, **kwargs)


def test_reset_mail_is_delivered(mastodon_sim, smtp_sink):
    result = expect_ok(run_check(mastodon_sim, smtp_sink))
    assert result.metrics["delivery_latency_s"] < HEALTHY
    assert result.evidence["reset_links"] == ["https://kirchner.social/auth/password/edit"]
    assert "reset_password_token" not in str(result.evidence)  # the live token is never kept
    assert result.evidence["cleanup"] == "reset mail deleted from the sink"


def test_no_mail_is_a_fault(mastodon_sim, smtp_sink):
    mastodon_sim.reset("no-mail")
    expect_fault(run_check(mastodon_sim, smtp_sink, timeout=FAST), "mail-not-delivered",
                 mentions="within 0.5s")


def test_wrong_recipient_is_named(mastodon_sim, smtp_sink):
    mastodon_sim.reset("mail-wrong-recipient")
    expect_fault(run_check(mastodon_sim, smtp_sink), "mail-wrong-recipient",
                 mentions="went to someone-else@kirchner.social, not test@kirchner.social")


def test_link_to_another_host_is_a_fault(mastodon_sim, smtp_sink):
    mastodon_sim.reset("mail-wrong-host")
    result = expect_fault(run_check(mastodon_sim, smtp_sink), "mail-link-wrong-host",
                          mentions="https://localhost:3000/auth/password/edit")
    assert result.fault_codes == ("mail-link-wrong-host",)


def test_wrong_sender_is_a_fault(mastodon_sim, smtp_sink):
    mastodon_sim.reset("mail-wrong-sender")
    expect_fault(run_check(mastodon_sim, smtp_sink), "mail-wrong-sender",
                 mentions="came from root@localhost, but SMTP_FROM_ADDRESS is notifications@kirchner.social")


def test_refused_trigger_is_a_fault(mastodon_sim, smtp_sink):
    mastodon_sim.reset("throttled")
    expect_fault(run_check(mastodon_sim, smtp_sink), "mail-trigger-failed", mentions="HTTP 429 (throttled")


def test_unreachable_sink_is_a_fault(mastodon_sim, smtp_sink):
    target = mastodon_sim.target()
    closed = MailpitClient("http://127.0.0.1:9")  # discard port: nothing listens
    result = check_delivery(target, closed, recipient="test@kirchner.social", expected_sender=SENDER,
                            timeout=FAST)
    expect_fault(result, "mail-sink-unreachable", mentions="unreachable")


def test_csrf_token_is_read_from_the_meta_tag():
    page = '<head><meta content="abc+/=" name="csrf-token"><meta name="csrf-param" content="x"></head>'
    assert csrf_token(page) == "abc+/="
    assert csrf_token("<head></head>") is None


def test_client_reads_messages_as_mailpit_shapes_them(mastodon_sim, smtp_sink):
    """The sink's reader answers in Mailpit's field names; the client parses From/To/links."""
    mastodon_sim.reset("mail-wrong-host")
    mastodon_sim.send_reset_mail("test")  # synchronously, by SMTP
    client = MailpitClient(smtp_sink.api_url)
    newest = client.search("to:test@kirchner.social")[0]
    message = client.message(newest.id)
    assert message.sender.address == "notifications@kirchner.social"
    assert message.sender.name == "Mastodon"
    assert [a.address for a in message.to] == ["test@kirchner.social"]
    assert any(link.startswith("https://localhost:3000/auth/password/edit?") for link in message.links())
    client.delete([newest.id])
    assert newest.id not in {m.id for m in client.messages()}

