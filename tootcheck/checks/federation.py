"""federation.delivery: Sidekiq's push queue delivers signed activities to a remote peer.

The suite plays a remote server through the in-cluster peer: it serves a fresh actor
(RSA key made here, public key served by the peer), the suite signs a Follow for it and
POSTs it to the test account's inbox (Mastodon verifies it by fetching the actor from the
peer: ActivityPub::FetchRemoteKeyService, SignatureVerification). Mastodon answers with
an Accept (AuthorizeFollowService -> ActivityPub::DeliveryWorker, queue ``push``). The
account then posts a public status (Create) and deletes it (Delete). Every delivery the
peer records is verified here against the key the account publishes at its actor URI.
Afterwards the suite sends an Undo of the Follow.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import requests
from mastodon import MastodonError

from tootcheck.checks.registry import live_check
from tootcheck.clients import activitypub as ap
from tootcheck.clients.mastodon import api_as
from tootcheck.model import CheckResult, CheckRun
from tootcheck.target import Target
from tootcheck.waiting import Poll, WaitTimeout, wait_until

NAME = "federation.delivery"
FAULTS = {
    "federation-actor-unavailable": "the account's actor document or public key cannot be fetched",
    "federation-follow-refused": "Mastodon's inbox refused the peer's signed Follow",
    "federation-follow-not-accepted": "no Accept for the peer's Follow reached the peer",
    "federation-not-delivered": "the public status' Create never reached the peer's inbox",
    "federation-delete-not-delivered": "deleting the status delivered no Delete to the peer",
    "federation-signature-invalid": "a delivery was unsigned, altered in transit, or its "
                                    "signature fails against the account's published key",
    "federation-wrong-signer": "a delivery was signed by, or names, another actor than the account",
}
REQUEST_TIMEOUT_S = 30.0


def resolve_actor(session: requests.Session, domain: str, username: str) -> str:
    """The ActivityPub id of ``username@domain`` by WebFinger."""
    url = f"https://{domain}/.well-known/webfinger"
    try:
        response = session.get(url, params={"resource": f"acct:{username}@{domain}"},
                               timeout=REQUEST_TIMEOUT_S)
    except requests.RequestException as exc:
        raise ap.ActorUnavailable(f"WebFinger {url} failed: {exc}") from exc
    if response.status_code != 200:
        raise ap.ActorUnavailable(f"WebFinger for {username}@{domain} answered HTTP "
                                  f"{response.status_code}")
    for link in response.json().get("links", []):
        if link.get("rel") == "self" and "activity+json" in str(link.get("type")):
            return str(link["href"])
    raise ap.ActorUnavailable(f"WebFinger for {username}@{domain} has no ActivityPub self link")


class _Remote:
    """The remote side the suite plays: a peer actor with its own key."""

    def __init__(self, peer: ap.PeerAdmin) -> None:
        self.key = ap.generate_key()
        self.name = f"tc-{uuid.uuid4().hex[:10]}"
        self.actor = peer.put_actor(self.name, ap.public_pem(self.key))
        self.key_id = f"{self.actor}#main-key"

    def post(self, session: requests.Session, inbox: str, activity: dict[str, Any]) -> requests.Response:
        body = json.dumps(activity).encode()
        headers = ap.sign_request(self.key, self.key_id, "POST", inbox, body)
        return session.post(inbox, data=body, headers=headers, timeout=REQUEST_TIMEOUT_S)


def _await_delivery(peer: ap.PeerAdmin, after: int, kind: str, object_uri: str,
                    timeout: float | str, interval: float) -> list[ap.Recorded]:
    def poll() -> Poll[list[ap.Recorded]]:
        records = peer.records(after=after, kind="inbox")
        found = ap.deliveries(records, kind, object_uri)
        if found:
            return Poll(True, found, f"{len(found)} {kind} delivery(ies)")
        kinds = sorted({str((r.activity() or {}).get("type")) for r in records})
        return Poll(False, state=f"{len(records)} inbox request(s), types {kinds or 'none'}")

    return wait_until(poll, what=f"a {kind} of {object_uri} at the peer", timeout=timeout,
                      interval=interval, retry_on=(ap.PeerError,)) or []


def _judge(run: CheckRun, what: str, records: list[ap.Recorded], actor: str, key_id: str,
           pem: str) -> None:
    """Pass if one delivery is signed by the account's key and names the account."""
    problems: list[tuple[str, str]] = []
    for record in records:
        verdict = ap.verify_signature(record.method, record.target, record.headers, record.body, pem)
        named = str((record.activity() or {}).get("actor"))
        run.evidence.setdefault("deliveries", []).append({
            "what": what, "key_id": verdict.key_id, "signed_headers": list(verdict.signed_headers),
            "peer_status": record.status, "verified": verdict.ok, "problem": verdict.problem,
        })
        if verdict.key_id and verdict.key_id != key_id:
            problems.append(("federation-wrong-signer",
                             f"the {what} was signed with key {verdict.key_id}, not {key_id}"))
        elif not verdict.ok:
            peer_said = f" (the peer answered {record.status}: {record.problem})" if record.problem else ""
            problems.append(("federation-signature-invalid",
                             f"the {what} from {actor} fails verification: {verdict.problem}{peer_said}"))
        elif named != actor:
            problems.append(("federation-wrong-signer", f"the {what} names actor {named}, not {actor}"))
        else:
            run.observe()
            return
    run.observe()
    if problems:
        code, message = problems[-1]
        run.fail(code, message)


@live_check(NAME, faults=FAULTS, modes=("gate", "rehearsal"), mutating=True)
def check_delivery(
    target: Target,
    peer: ap.PeerAdmin,
    *,
    role: str = "test",
    timeout: float | str = "federation",
    interval: float = 0.5,
) -> CheckResult:
    """A peer's Follow is accepted; a public status and its deletion reach the peer, signed by the account."""
    run = CheckRun(NAME, target.name)
    session = target.http()
    client = api_as(target, role)
    account = target.account(role)

    # The account as the fediverse sees it: actor id, inbox and published key.
    try:
        actor = resolve_actor(session, target.domain, account.username)
        document, pem = ap.fetch_public_key(session, f"{actor}#main-key")
    except (ap.ActorUnavailable, ValueError) as exc:
        run.fail("federation-actor-unavailable", str(exc))
        return run.result()
    key_id = f"{actor}#main-key"
    inbox = str(document.get("inbox", ""))
    run.evidence.update(actor=actor, key_id=key_id, inbox=inbox)
    run.observe()

    remote: _Remote | None = None
    follow: dict[str, Any] = {}
    status_id: str | None = None
    followed = False
    try:
        remote = _Remote(peer)
        follow = ap.follow(remote.actor, actor)
        run.evidence.update(peer_actor=remote.actor, follow_id=follow["id"])
        mark = peer.last_seq()
        started = time.monotonic()
        try:
            response = remote.post(session, inbox, follow)
        except requests.RequestException as exc:
            run.fail("federation-follow-refused", f"POST {inbox} failed: {exc}")
            return run.result()
        run.observe()
        if not 200 <= response.status_code < 300:
            run.fail("federation-follow-refused",
                     f"POST {inbox} answered HTTP {response.status_code}: {response.text[:200]}")
            return run.result()
        followed = True
        try:
            accepts = _await_delivery(peer, mark, "Accept", follow["id"], timeout, interval)
        except WaitTimeout as exc:
            run.fail("federation-follow-not-accepted",
                     f"no Accept of the Follow reached the peer within {exc.timeout:g}s "
                     f"(last state: {exc.last_seen})")
            return run.result()
        run.metrics["accept_latency_s"] = round(time.monotonic() - started, 3)
        _judge(run, "Accept", accepts, actor, key_id, pem)

        nonce = uuid.uuid4().hex[:12]
        mark = peer.last_seq()
        started = time.monotonic()
        try:
            status = client.status_post(f"tootcheck federation probe {nonce}", visibility="public")
        except MastodonError as exc:
            run.fail("federation-not-delivered", f"could not post the probe status: {exc}")
            return run.result()
        status_id, status_uri = str(status["id"]), str(status["uri"])
        run.evidence["status_uri"] = status_uri
        try:
            creates = _await_delivery(peer, mark, "Create", status_uri, timeout, interval)
        except WaitTimeout as exc:
            run.fail("federation-not-delivered",
                     f"no Create of {status_uri} reached the peer within {exc.timeout:g}s "
                     f"(last state: {exc.last_seen})")
            return run.result()
        run.metrics["create_latency_s"] = round(time.monotonic() - started, 3)
        _judge(run, "Create", creates, actor, key_id, pem)

        mark = peer.last_seq()
        started = time.monotonic()
        try:
            client.status_delete(status_id)
        except MastodonError as exc:
            run.fail("federation-delete-not-delivered", f"could not delete the probe status: {exc}")
            return run.result()
        status_id = None
        try:
            deletes = _await_delivery(peer, mark, "Delete", status_uri, timeout, interval)
        except WaitTimeout as exc:
            run.fail("federation-delete-not-delivered",
                     f"no Delete of {status_uri} reached the peer within {exc.timeout:g}s "
                     f"(last state: {exc.last_seen})")
            return run.result()
        run.metrics["delete_latency_s"] = round(time.monotonic() - started, 3)
        _judge(run, "Delete", deletes, actor, key_id, pem)
    except ap.PeerError as exc:
        run.fail("federation-not-delivered", f"the peer's admin API failed: {exc}")
    finally:
        _clean_up(run, client, status_id, remote, session, inbox, follow if followed else None)
    return run.result()


def _clean_up(run: CheckRun, client: Any, status_id: str | None, remote: _Remote | None,
              session: requests.Session, inbox: str, follow: dict[str, Any] | None) -> None:
    notes = []
    if status_id is not None:
        try:
            client.status_delete(status_id)
            notes.append("probe status deleted")
        except MastodonError as exc:
            notes.append(f"could not delete probe status {status_id}: {exc}")
    if follow is not None and remote is not None:
        try:
            response = remote.post(session, inbox, ap.undo(remote.actor, follow))
            notes.append(f"Undo Follow answered HTTP {response.status_code}")
        except requests.RequestException as exc:
            notes.append(f"Undo Follow failed: {exc}")
    run.evidence["cleanup"] = notes
