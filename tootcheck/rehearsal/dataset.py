"""A realistic amount of data across the upgrade, and what must survive it.

``--seed-scale N`` seeds, before the upgrade, N times a small instance through
``bin/rails runner`` in FROM's web container (:func:`seed_script`, model-level so it
follows each release's schema): local accounts, statuses, follows, notifications,
media attachments, a user with two-factor authentication, and remote accounts of
which some share one actor URI (the duplicates 4.7's ``accounts.uri`` unique index
has to merge). The REST markers (``tootcheck.checks.markers``) stay the exact, per-item
check; this is the volume.

Read before and after the upgrade, straight from PostgreSQL and Redis:

- :func:`counts`: rows per table (a drop is a loss; duplicates merged by 4.7 are
  reported, not counted as lost);
- :func:`actor_keys`: a digest of every local actor's public key, wherever the
  release keeps it (``accounts.public_key``, or 4.7's ``keypairs``): remote servers
  verify our signatures with them, so a changed key is a federation outage;
- :func:`hold_job` / :func:`held_job_present`: a Sidekiq job parked in the
  ``schedule`` set a day ahead must still be there after the upgrade;
- :func:`queue_latencies`: each Sidekiq queue's age of its oldest job (the report
  shows it during and after the upgrade).
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

COUNTED = ("accounts", "statuses", "follows", "notifications", "media_attachments", "users")
HELD_QUEUE = "schedule"  # Sidekiq's scheduled set: jobs wait there until their time


@dataclass(frozen=True)
class Scale:
    """What ``--seed-scale N`` writes."""

    n: int

    @property
    def accounts(self) -> int:
        return 10 * self.n

    @property
    def statuses(self) -> int:
        return 100 * self.n

    @property
    def follows(self) -> int:
        return min(20 * self.n, self.accounts * (self.accounts - 1))

    @property
    def notifications(self) -> int:
        return 50 * self.n

    @property
    def media(self) -> int:
        return 5 * self.n

    @property
    def remote_accounts(self) -> int:
        return 5 * self.n

    @property
    def duplicate_uris(self) -> int:
        return max(1, self.n)  # pairs of remote accounts sharing one actor URI


def parse_scale(text: str | int | None) -> Scale | None:
    from tootcheck.errors import BadInput

    if text in (None, "", 0, "0"):
        return None
    try:
        n = int(str(text))
    except ValueError:
        raise BadInput(f"--seed-scale {text!r} is not a whole number") from None
    if not 1 <= n <= 10_000:
        raise BadInput(f"--seed-scale {n} is outside 1..10000")
    return Scale(n)


def seed_script(scale: Scale, run_id: str) -> str:
    """Ruby for ``bin/rails runner`` (FROM's web container). Idempotent per ``run_id``
    (usernames carry it); prints one line ``tootcheck-seeded <json counts>``."""
    s = scale
    return f"""\
tag = {json.dumps(run_id[:8])}
png = Rails.root.join('app/javascript/images/logo.svg')
domain = 'remote-' + tag + '.example'
locals = (1..{s.accounts}).map do |i|
  name = "ts#{{tag}}#{{i}}"
  Account.find_by(username: name, domain: nil) || User.create!(
    email: "#{{name}}@tootcheck.invalid", password: SecureRandom.hex(16), agreement: true,
    confirmed_at: Time.now.utc, approved: true,
    account_attributes: {{ username: name }}).account
end
(1..{s.statuses}).each do |i|
  PostStatusService.new.call(locals[i % locals.size], text: "seed #{{tag}} #{{i}}")
end
pairs = locals.product(locals).reject {{ |a, b| a == b }}.first({s.follows})
pairs.each {{ |a, b| a.follow!(b) rescue nil }}
statuses = Status.where(account: locals).limit({s.notifications}).to_a
statuses.each_with_index do |st, i|
  fav = Favourite.find_or_create_by!(account: locals[(i + 1) % locals.size], status: st)
  Notification.find_or_create_by!(account: st.account, activity: fav, type: :favourite,
                                  from_account: fav.account)
end
(1..{s.media}).each do |i|
  MediaAttachment.create!(account: locals[i % locals.size], file: File.open(png),
                          description: "seed #{{tag}} #{{i}}") rescue nil
end
twofa = locals.first.user
twofa.update!(otp_required_for_login: true, otp_secret: User.generate_otp_secret)
(1..{s.remote_accounts}).each do |i|
  Account.create!(username: "r#{{tag}}#{{i}}", domain: domain, protocol: :activitypub,
                  uri: "https://#{{domain}}/users/r#{{i}}", inbox_url: "https://#{{domain}}/inbox",
                  public_key: OpenSSL::PKey::RSA.new(2048).public_key.to_pem) rescue nil
end
# duplicates as production has them: two remote accounts, one actor URI
(1..{s.duplicate_uris}).each do |i|
  Account.create!(username: "d#{{tag}}#{{i}}x", domain: domain, protocol: :activitypub,
                  uri: "https://#{{domain}}/users/r#{{i}}", inbox_url: "https://#{{domain}}/inbox",
                  public_key: '') rescue nil
end
puts 'tootcheck-seeded ' + {{ accounts: Account.count, statuses: Status.count,
  follows: Follow.count, notifications: Notification.count,
  media_attachments: MediaAttachment.count, users: User.count }}.to_json
"""


# ------------------------------------------------------------- PostgreSQL


def counts(conn: Any, tables: tuple[str, ...] = COUNTED) -> dict[str, int]:
    """Rows per table (a missing table counts -1: it was dropped)."""
    present = {r[0] for r in conn.execute(
        "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
    out = {}
    for table in tables:
        out[table] = (int(conn.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0])
                      if table in present else -1)
    return out


def duplicate_uris(conn: Any) -> int:
    """Accounts sharing an actor URI with another (4.7's de-duplication merges them)."""
    row = conn.execute("SELECT count(*) - count(DISTINCT uri) FROM accounts "
                       "WHERE uri IS NOT NULL AND uri <> ''").fetchone()
    return int(row[0])


@dataclass
class Snapshot:
    """What the data looked like at one moment (before, or after the upgrade)."""

    counts: dict[str, int]
    actor_keys: dict[int, str]
    duplicate_uris: int = 0
    held_jid: str = ""  # before: the job parked; after: "" when it is gone
    latencies: dict[str, float] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"counts": self.counts, "local_actors": len(self.actor_keys),
                "duplicate_uris": self.duplicate_uris, "held_jid": self.held_jid,
                "latencies": self.latencies}


def snapshot(conn: Any, redis: Any | None = None, *, hold: bool = False,
             held: str = "") -> Snapshot:
    """Counts and keys from PostgreSQL; with ``redis``: park a job (``hold``) or look
    for the parked one (``held``), and the queue latencies."""
    snap = Snapshot(counts(conn), actor_keys(conn), duplicate_uris(conn))
    if redis is not None:
        if hold:
            snap.held_jid = hold_job(redis)
        elif held:
            snap.held_jid = held if held_job_present(redis, held) else ""
        snap.latencies = queue_latencies(redis)
    return snap


def _digest(pem: str | None) -> str:
    body = "".join((pem or "").split())
    return hashlib.sha256(body.encode()).hexdigest()[:16] if body else ""


def actor_keys(conn: Any) -> dict[int, str]:
    """Local actors' public keys (digests), from ``keypairs`` when the release keeps
    them there (4.7), else from ``accounts.public_key``."""
    keys = {int(r[0]): _digest(r[1]) for r in conn.execute(
        "SELECT id, public_key FROM accounts WHERE domain IS NULL")}
    columns = {r[0] for r in conn.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_name = 'keypairs'")}
    if {"account_id", "public_key"} <= columns:
        # 4.7: one row per key; the actor's main key is '#main-key', not revoked
        where = ["account_id IS NOT NULL"]
        if "local_fragment" in columns:
            where.append("local_fragment = '#main-key'")
        if "revoked" in columns:
            where.append("NOT revoked")
        for account_id, pem in conn.execute(
                f"SELECT account_id, public_key FROM keypairs WHERE {' AND '.join(where)} "
                "ORDER BY id"):
            if int(account_id) in keys and _digest(pem):
                keys[int(account_id)] = _digest(pem)
    return keys


def key_changes(before: Mapping[int, str], after: Mapping[int, str]) -> list[str]:
    """Local actors whose public key changed or vanished (federation would reject
    their signatures)."""
    out = []
    for account_id, digest in sorted(before.items()):
        now = after.get(account_id)
        if now is None:
            out.append(f"account {account_id} is gone")
        elif digest and now != digest:
            out.append(f"account {account_id}: public key {digest} became {now or 'empty'}")
    return out


def count_losses(before: Mapping[str, int], after: Mapping[str, int], *,
                 merged_duplicates: int = 0) -> list[str]:
    """Tables with fewer rows after the upgrade (accounts may lose the merged duplicates)."""
    out = []
    for table, was in before.items():
        now = after.get(table, -1)
        allowed = merged_duplicates if table == "accounts" else 0
        if now < 0 <= was:
            out.append(f"table {table} is gone")
        elif now < was - allowed:
            out.append(f"{table}: {was} rows before, {now} after")
    return out


# ------------------------------------------------------------------ Redis


def hold_job(client: Any, *, now: float | None = None, delay_s: float = 86400.0) -> str:
    """Park a harmless Sidekiq job in the schedule set a day ahead; returns its jid."""
    now = time.time() if now is None else now
    jid = uuid.uuid4().hex[:24]
    job = {"class": "Scheduler::UserCleanupScheduler", "args": [], "queue": "scheduler",
           "jid": jid, "retry": False, "created_at": now, "enqueued_at": now,
           "tootcheck": "held across the upgrade"}
    client.zadd(HELD_QUEUE, {json.dumps(job, sort_keys=True): now + delay_s})
    return jid


def held_job_present(client: Any, jid: str) -> bool:
    return any(json.loads(raw).get("jid") == jid for raw in client.zrange(HELD_QUEUE, 0, -1))


def queue_latencies(client: Any, *, now: float | None = None) -> dict[str, float]:
    """Seconds the oldest job of each Sidekiq queue has waited (0 for an empty queue),
    as Sidekiq::Queue#latency computes it (``enqueued_at`` of the list's tail)."""
    now = time.time() if now is None else now
    out: dict[str, float] = {}
    for raw_name in client.smembers("queues"):
        name = raw_name.decode() if isinstance(raw_name, bytes) else str(raw_name)
        oldest = client.lindex(f"queue:{name}", -1)
        if oldest is None:
            out[name] = 0.0
            continue
        enqueued = json.loads(oldest).get("enqueued_at") or now
        if enqueued > 1e11:  # Sidekiq 8 stores milliseconds
            enqueued /= 1000.0
        out[name] = round(max(0.0, now - float(enqueued)), 1)
    return out
