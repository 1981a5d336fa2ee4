"""The fediverse peer program and federation.delivery, with real HTTPS and real RSA signatures.

The peer is the program file the ConfigMap carries, run as a child process. The first
tests prove the peer and the verifier the check uses: a correctly signed activity is
accepted, an unsigned or altered one is refused at the inbox, and one signed by a key
that is not the published one fails verification. The check then runs against a
simulated Mastodon that signs its deliveries the way app/lib/request.rb does.
"""

from __future__ import annotations

import ast
import json
import sys
import time
from pathlib import Path

import pytest

from tests.peers.fediverse import FediversePeer
from tests.peers.mastodon_side import SimulatedMastodon, sign_like_mastodon
from tootcheck.checks.federation import check_delivery
from tootcheck.clients import activitypub as ap
from tootcheck.clients.pinning import pinned_session
from tootcheck.peers import fediverse_peer

FAST = 0.5  # the bound when a delivery is meant never to come (healthy ones take ms)
HEALTHY = 15.0  # generous: a healthy run returns as soon as the deliveries arrive


@pytest.fixture
def peer_session(fediverse_peer: FediversePeer, sinks_ca):
    return pinned_session(fediverse_peer.pins, sinks_ca.ca_file)


@pytest.fixture(scope="module")
def sender_key():
    """One RSA key for the module's sending actors (a 2048-bit key costs about 75 ms of
    CPU to make); each test still publishes its own actor with it."""
    return ap.generate_key()


@pytest.fixture
def sender(fediverse_peer: FediversePeer, sender_key):
    """A sending actor: its key, and the key the peer publishes for it."""
    key = sender_key
    name = f"sender-{time.monotonic_ns()}"
    actor = fediverse_peer.admin.put_actor(name, ap.public_pem(key))
    return key, f"{actor}#main-key"


def post(session, fediverse_peer, path: str, body: bytes, headers: dict[str, str]):
    mark = fediverse_peer.admin.last_seq()
    response = session.post(f"{fediverse_peer.public_url}{path}", data=body, headers=headers, timeout=10)
    record = fediverse_peer.admin.records(after=mark, kind="inbox")[-1]
    return response, record


def activity(kind: str = "Create") -> bytes:
    return json.dumps({"@context": ap.AS_CONTEXT, "id": "https://kirchner.social/a/1", "type": kind,
                       "actor": "https://kirchner.social/users/test",
                       "object": {"id": "https://kirchner.social/users/test/statuses/1"}}).encode()


# ------------------------------------------------------------------- the peer


def test_peer_serves_webfinger_and_actor(fediverse_peer, peer_session, sender):
    key, key_id = sender
    actor = key_id.removesuffix("#main-key")
    name = actor.rsplit("/", 1)[1]
    finger = peer_session.get(f"{fediverse_peer.public_url}/.well-known/webfinger",
                              params={"resource": f"acct:{name}@{fediverse_peer.host}"}, timeout=10)
    assert finger.status_code == 200
    assert finger.headers["Content-Type"] == "application/jrd+json"
    assert finger.json()["subject"] == f"acct:{name}@{fediverse_peer.host}"
    assert finger.json()["links"][0] == {"rel": "self", "type": ap.ACTIVITY_JSON, "href": actor}
    document, pem = ap.fetch_public_key(peer_session, key_id)  # what Mastodon's key fetch does
    assert document["preferredUsername"] == name and document["inbox"] == f"{actor}/inbox"
    assert pem == ap.public_pem(key)
    unknown = peer_session.get(f"{fediverse_peer.public_url}/users/nobody", timeout=10)
    assert unknown.status_code == 404


@pytest.mark.parametrize("signer", ["suite", "mastodon"])
def test_peer_accepts_a_correctly_signed_activity(fediverse_peer, peer_session, sender, signer):
    key, key_id = sender
    body = activity()
    url = f"{fediverse_peer.public_url}/inbox"
    headers = (ap.sign_request(key, key_id, "POST", url, body) if signer == "suite"
               else sign_like_mastodon(key, key_id, url, body))
    response, record = post(peer_session, fediverse_peer, "/inbox", body, headers)
    assert response.status_code == 202, response.text
    assert record.status == 202 and record.problem == ""
    _, pem = ap.fetch_public_key(peer_session, key_id)
    verdict = ap.verify_signature(record.method, record.target, record.headers, record.body, pem)
    assert verdict.ok, verdict.problem
    assert {"(request-target)", "host", "date", "digest", "content-type"} <= set(verdict.signed_headers)


def test_peer_rejects_an_unsigned_activity(fediverse_peer, peer_session):
    body = activity()
    response, record = post(peer_session, fediverse_peer, "/inbox", body,
                            {"Content-Type": ap.ACTIVITY_JSON, "Digest": fediverse_peer_digest(body)})
    assert response.status_code == 401
    assert record.problem == "unsigned: no Signature header"


def fediverse_peer_digest(body: bytes) -> str:
    return fediverse_peer.body_digest(body)


def test_peer_rejects_a_tampered_activity(fediverse_peer, peer_session, sender):
    key, key_id = sender
    body = activity()
    headers = ap.sign_request(key, key_id, "POST", f"{fediverse_peer.public_url}/inbox", body)
    response, record = post(peer_session, fediverse_peer, "/inbox", activity("Delete"), headers)
    assert response.status_code == 401
    assert "Digest does not match the body" in record.problem
    assert "Digest does not match" in response.json()["error"]


def test_peer_rejects_a_stale_date(fediverse_peer, peer_session, sender):
    key, key_id = sender
    body = activity()
    headers = ap.sign_request(key, key_id, "POST", f"{fediverse_peer.public_url}/inbox", body,
                              now=time.time() - 13 * 3600)
    response, record = post(peer_session, fediverse_peer, "/inbox", body, headers)
    assert response.status_code == 401 and "more than 12 h old" in record.problem


def test_a_key_that_is_not_the_published_one_fails_verification(fediverse_peer, peer_session, sender):
    """The peer cannot do RSA in a stock image; the verdict on the key is the suite's."""
    _, key_id = sender
    impostor = ap.generate_key()
    body = activity()
    headers = ap.sign_request(impostor, key_id, "POST", f"{fediverse_peer.public_url}/inbox", body)
    response, record = post(peer_session, fediverse_peer, "/inbox", body, headers)
    assert response.status_code == 202  # well-formed, digest matches
    _, pem = ap.fetch_public_key(peer_session, key_id)
    verdict = ap.verify_signature(record.method, record.target, record.headers, record.body, pem)
    assert not verdict.ok and "does not verify with the key published at" in verdict.problem


def test_a_signed_header_changed_after_signing_fails_verification(fediverse_peer, peer_session, sender):
    key, key_id = sender
    body = activity()
    headers = ap.sign_request(key, key_id, "POST", f"{fediverse_peer.public_url}/inbox", body)
    headers["Content-Type"] = "application/ld+json"
    _, record = post(peer_session, fediverse_peer, "/inbox", body, headers)
    _, pem = ap.fetch_public_key(peer_session, key_id)
    assert not ap.verify_signature(record.method, record.target, record.headers, record.body, pem).ok


def test_peer_records_push_requests(fediverse_peer, peer_session):
    mark = fediverse_peer.admin.last_seq()
    response = peer_session.post(f"{fediverse_peer.public_url}/push/abc", data=b"\x00\x01",
                                 headers={"Content-Encoding": "aes128gcm"}, timeout=10)
    assert response.status_code == 201
    (record,) = fediverse_peer.admin.records(after=mark, kind="push")
    assert record.path == "/push/abc" and record.body == b"\x00\x01"
    assert record.headers.get("content-encoding") == "aes128gcm"


def test_signature_header_parsing():
    params = fediverse_peer.parse_signature(
        'keyId="https://a.example/u#k",algorithm="rsa-sha256",headers="(request-target) host",'
        'signature="YWI="')
    assert params == {"keyId": "https://a.example/u#k", "algorithm": "rsa-sha256",
                      "headers": "(request-target) host", "signature": "YWI="}
    with pytest.raises(ValueError):
        fediverse_peer.parse_signature("keyId=unquoted-garbage")


def test_peer_program_is_standard_library_only():
    """It runs in a stock python image: every import is a standard-library module."""
    tree = ast.parse(Path(fediverse_peer.__file__).read_text())
    modules = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import)
               for alias in node.names}
    modules |= {node.module for node in ast.walk(tree)
                if isinstance(node, ast.ImportFrom) and node.module}
    outside = {m for m in modules if m.split(".")[0] not in sys.stdlib_module_names}
    assert modules and not outside, outside


# ------------------------------------------------------------------ the check


@pytest.fixture
def remote_key(monkeypatch: pytest.MonkeyPatch, sender_key) -> None:
    """The check's own remote actor signs with the module's key instead of a fresh one per
    run (what the check proves does not depend on which key its actor publishes)."""
    monkeypatch.setattr(ap, "generate_key", lambda: sender_key)


def run_check(mastodon_sim: SimulatedMastodon, fediverse_peer: FediversePeer, timeout: float = FAST):
    return check_delivery(mastodon_sim.target(), fediverse_peer.admin, timeout=timeout, interval=0.05)


def test_delivery_is_healthy(mastodon_sim, fediverse_peer, remote_key):
    from tootcheck.testing import expect_ok

    result = expect_ok(run_check(mastodon_sim, fediverse_peer, HEALTHY))
    assert [d["what"] for d in result.evidence["deliveries"]] == ["Accept", "Create", "Delete"]
    assert all(d["verified"] for d in result.evidence["deliveries"])
    assert result.evidence["key_id"] == "https://kirchner.social/users/test#main-key"
    assert set(result.metrics) == {"accept_latency_s", "create_latency_s", "delete_latency_s"}
    assert "Undo Follow answered HTTP 202" in result.evidence["cleanup"]
    mastodon_sim.drain()
    assert mastodon_sim.followers == {}


@pytest.mark.parametrize(("fault", "code", "mentions"), [
    ("actor-missing", "federation-actor-unavailable", "answered HTTP 404"),
    ("refuse-follow", "federation-follow-refused", "private network addresses are disallowed"),
    ("no-accept", "federation-follow-not-accepted", "no Accept of the Follow reached the peer within 0.5s"),
    ("no-create", "federation-not-delivered", "no Create of https://kirchner.social/users/test/statuses/"),
    ("no-delete", "federation-delete-not-delivered", "no Delete of https://kirchner.social/users/test/"),
    ("unsigned", "federation-signature-invalid", "unsigned: no Signature header (the peer answered 401"),
    ("tamper", "federation-signature-invalid", "Digest does not match the body"),
    ("wrong-key", "federation-signature-invalid", "RSA signature does not verify with the key published"),
    ("wrong-signer", "federation-wrong-signer", "signed with key https://kirchner.social/users/second#main-key"),
])
def test_broken_federation_is_caught(mastodon_sim, fediverse_peer, remote_key, fault, code,
                                    mentions):
    from tootcheck.testing import expect_fault

    mastodon_sim.reset(fault)
    timeout = FAST if fault.startswith("no-") else HEALTHY  # only absence waits out the bound
    expect_fault(run_check(mastodon_sim, fediverse_peer, timeout), code, mentions=mentions)
