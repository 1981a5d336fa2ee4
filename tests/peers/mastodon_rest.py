"""A small Mastodon REST peer whose state lives in PostgreSQL, Redis and a media
directory, so restarting those for real is what the persistence markers survive.

It implements only the documented endpoints the markers and the Sidekiq round
trip use (docs.joinmastodon.org ``methods/statuses``, ``scheduled_statuses``,
``media``, ``accounts``, ``notifications``, ``instance``), answering with the
serializer shapes of ``tests/peers/entities.py``. Tables and columns are a
subset of Mastodon's ``db/schema.rb`` (accounts, users, oauth_access_tokens,
statuses, media_attachments, scheduled_statuses, follows, mentions,
notifications), so the suite's SQL verifier runs against the same names.

Work goes through the real Sidekiq peer the way Mastodon sends it:
- a posted status enqueues ``DistributionWorker`` on ``default``; the Ruby job
  enqueues ``LocalNotificationWorker`` per local mention, which writes the
  notification row (tests/peers/sidekiq_jobs/jobs.rb);
- a scheduled status is a ``scheduled_statuses`` row plus a
  ``PublishScheduledStatusWorker`` entry in the ``schedule`` sorted set at its
  time. (Mastodon adds that entry from ScheduledStatusesScheduler every 5 min for
  statuses due within 5 min; the peer adds it at once.)

Served over HTTPS with a certificate from a test CA (trustme) for the target's
host name; the suite reaches it through name pinning, exactly as it reaches
kind. Every request opens its own Redis connection and takes a PostgreSQL
connection that answers a ping (one an earlier request left idle, else a new
one: a backend start costs PostgreSQL about 6 ms of CPU), so a restarted
database is simply picked up by the next request, and one that is down fails
it as a new connection would.
"""

from __future__ import annotations

import contextlib
import json
import re
import secrets
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import redis
import trustme
from flask import Flask, Response, abort, jsonify, request, send_from_directory
from psycopg.rows import dict_row
from werkzeug.serving import BaseWSGIServer, make_server

from tests.peers.databases import free_port
from tests.peers.entities import (
    account_entity,
    credential_account_entity,
    iso_timestamp,
    media_attachment_entity,
    notification_entity,
    relationship_entity,
    scheduled_status_entity,
    snowflake_id,
    status_entity,
)
from tests.peers.nodelay import NoDelayHandler
from tests.peers.sidekiq import push_job
from tootcheck.clients.pinning import PinMap
from tootcheck.redaction import Secret
from tootcheck.target import Account, Target

VERSION = "4.5.0"
VISIBILITIES = ("public", "unlisted", "private", "direct", "limited")
MENTION_RE = re.compile(r"(?<![\w/@])@([a-z0-9_]+)(?:@([a-z0-9.\-]+))?", re.IGNORECASE)

SCHEMA = """
CREATE TABLE IF NOT EXISTS accounts (
  id bigint PRIMARY KEY, username varchar NOT NULL DEFAULT '', domain varchar,
  display_name varchar NOT NULL DEFAULT '', note text NOT NULL DEFAULT '',
  locked boolean NOT NULL DEFAULT false,
  created_at timestamp NOT NULL, updated_at timestamp NOT NULL);
CREATE TABLE IF NOT EXISTS users (
  id bigserial PRIMARY KEY, email varchar NOT NULL DEFAULT '', account_id bigint NOT NULL,
  created_at timestamp NOT NULL, updated_at timestamp NOT NULL);
CREATE TABLE IF NOT EXISTS oauth_access_tokens (
  id bigserial PRIMARY KEY, token varchar NOT NULL UNIQUE, resource_owner_id bigint,
  scopes varchar, revoked_at timestamp, created_at timestamp NOT NULL);
CREATE TABLE IF NOT EXISTS statuses (
  id bigint PRIMARY KEY, uri varchar, text text NOT NULL DEFAULT '',
  created_at timestamp NOT NULL, updated_at timestamp NOT NULL, in_reply_to_id bigint,
  sensitive boolean NOT NULL DEFAULT false, visibility integer NOT NULL DEFAULT 0,
  spoiler_text text NOT NULL DEFAULT '', language varchar, local boolean,
  account_id bigint NOT NULL, deleted_at timestamp, edited_at timestamp,
  ordered_media_attachment_ids bigint[]);
CREATE TABLE IF NOT EXISTS media_attachments (
  id bigint PRIMARY KEY, status_id bigint, file_file_name varchar, file_content_type varchar,
  file_file_size integer, file_updated_at timestamp, remote_url varchar NOT NULL DEFAULT '',
  created_at timestamp NOT NULL, updated_at timestamp NOT NULL, shortcode varchar,
  type integer NOT NULL DEFAULT 0, account_id bigint, description text,
  scheduled_status_id bigint, blurhash varchar);
CREATE TABLE IF NOT EXISTS scheduled_statuses (
  id bigserial PRIMARY KEY, account_id bigint NOT NULL, scheduled_at timestamp, params jsonb);
CREATE TABLE IF NOT EXISTS follows (
  id bigserial PRIMARY KEY, created_at timestamp NOT NULL, updated_at timestamp NOT NULL,
  account_id bigint NOT NULL, target_account_id bigint NOT NULL,
  show_reblogs boolean NOT NULL DEFAULT true, uri varchar, notify boolean NOT NULL DEFAULT false,
  UNIQUE (account_id, target_account_id));
CREATE TABLE IF NOT EXISTS mentions (
  id bigserial PRIMARY KEY, status_id bigint NOT NULL, created_at timestamp NOT NULL,
  updated_at timestamp NOT NULL, account_id bigint NOT NULL,
  silent boolean NOT NULL DEFAULT false);
CREATE TABLE IF NOT EXISTS notifications (
  id bigserial PRIMARY KEY, activity_id bigint NOT NULL, activity_type varchar NOT NULL,
  created_at timestamp NOT NULL, updated_at timestamp NOT NULL, account_id bigint NOT NULL,
  from_account_id bigint NOT NULL, type varchar);
"""


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def epoch(moment: datetime) -> float:
    return moment.replace(tzinfo=UTC).timestamp()


def id_partition(record_id: int) -> str:
    """Paperclip's :id_partition for Mastodon's bigint ids: 18 digits in groups of 3."""
    digits = str(record_id).rjust(18, "0")
    return "/".join(digits[i:i + 3] for i in range(0, 18, 3))


def image_type(data: bytes) -> tuple[str, str] | None:
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png", "png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg", "jpg"
    return None


class _QuietHandler(NoDelayHandler):
    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass


class ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class MastodonRestPeer:
    dsn: str
    redis_url: str
    media_dir: Path
    domain: str = "kirchner.social"
    min_schedule_offset_s: float = 300.0  # ScheduledStatus::MINIMUM_OFFSET
    port: int = field(default_factory=free_port)
    _server: BaseWSGIServer | None = field(default=None, repr=False)
    _thread: threading.Thread | None = field(default=None, repr=False)
    _idle: list[psycopg.Connection[dict[str, Any]]] = field(default_factory=list, repr=False)
    _idle_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    # ---------------------------------------------------------------- setup

    def migrate(self) -> None:
        """Create the tables if missing (what db:prepare does for Mastodon)."""
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            conn.execute(SCHEMA)

    def create_account(self, username: str) -> Account:
        """A local account with a user and an access token (the suite's roles)."""
        token = secrets.token_urlsafe(32)
        now = utcnow()
        account_id = int(snowflake_id())
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            conn.execute("INSERT INTO accounts (id, username, created_at, updated_at) "
                         "VALUES (%s, %s, %s, %s)", (account_id, username, now, now))
            conn.execute("INSERT INTO users (email, account_id, created_at, updated_at) "
                         "VALUES (%s, %s, %s, %s)",
                         (f"{username}@{self.domain}", account_id, now, now))
            conn.execute("INSERT INTO oauth_access_tokens (token, resource_owner_id, scopes, "
                         "created_at) VALUES (%s, %s, 'read write follow', %s)",
                         (token, account_id, now))
        return Account(username=username, token=Secret(token, f"{username}-token"),
                       email=f"{username}@{self.domain}")

    def start(self, server_context: ssl.SSLContext) -> None:
        self.media_dir.mkdir(parents=True, exist_ok=True)
        self._server = make_server("127.0.0.1", self.port, self.app(), threaded=True,
                                   ssl_context=server_context, request_handler=_QuietHandler)
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.02},  # stop() waits one
                                        name=f"mastodon-rest:{self.port}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        with self._idle_lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()

    def target(self, accounts: dict[str, Account], ca_file: Path) -> Target:
        return Target(
            name=f"peer://{self.domain}:{self.port}",
            domain=self.domain,
            ca_file=ca_file,
            pins=PinMap({(self.domain, 443): ("127.0.0.1", self.port)}),
            accounts=accounts,
        )

    # -------------------------------------------------------------- helpers

    @contextlib.contextmanager
    def db(self) -> Iterator[psycopg.Connection[dict[str, Any]]]:
        """A connection for one request; kept for the next one when the request ends
        cleanly (closed when it raised, or left a transaction open)."""
        conn = self._connection()
        try:
            yield conn
        except BaseException:
            conn.close()
            raise
        if conn.closed or conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
            conn.close()
            return
        with self._idle_lock:
            self._idle.append(conn)

    def _connection(self) -> psycopg.Connection[dict[str, Any]]:
        """An idle connection that still answers a ping, else a new one."""
        while True:
            with self._idle_lock:
                conn = self._idle.pop() if self._idle else None
            if conn is None:
                # no prepared statements: a kept connection must not hold plans across
                # the schema changes the rehearsal tests make
                return psycopg.connect(self.dsn, autocommit=True, connect_timeout=5,
                                       row_factory=dict_row, prepare_threshold=None)
            try:
                conn.execute("SELECT 1")
                return conn
            except psycopg.Error:  # the server restarted, stopped or ended it
                conn.close()

    def redis(self) -> redis.Redis:
        return redis.Redis.from_url(self.redis_url, socket_timeout=5, socket_connect_timeout=5)

    def _account(self, row: dict[str, Any], statuses_count: int = 0) -> dict[str, Any]:
        return account_entity(str(row["id"]), row["username"], domain=self.domain,
                              display_name=row["display_name"], statuses_count=statuses_count,
                              created_at=iso_timestamp(epoch(row["created_at"])))

    def _media_url(self, row: dict[str, Any]) -> str:
        return (f"https://{self.domain}/system/media_attachments/files/"
                f"{id_partition(row['id'])}/original/{row['file_file_name']}")

    def _media(self, row: dict[str, Any]) -> dict[str, Any]:
        return media_attachment_entity(str(row["id"]), self._media_url(row),
                                       description=row["description"])

    def _status(self, conn: psycopg.Connection[dict[str, Any]], row: dict[str, Any],
                *, source: bool = False) -> dict[str, Any]:
        author = conn.execute("SELECT * FROM accounts WHERE id = %s",
                              (row["account_id"],)).fetchone()
        entity = status_entity(self._account(author), row["text"], status_id=str(row["id"]),
                               visibility=VISIBILITIES[row["visibility"]],
                               language=row["language"], spoiler_text=row["spoiler_text"],
                               sensitive=row["sensitive"], domain=self.domain,
                               source_requested=source,
                               created_at=iso_timestamp(epoch(row["created_at"])))
        media = conn.execute("SELECT * FROM media_attachments WHERE status_id = %s ORDER BY id",
                             (row["id"],)).fetchall()
        entity["media_attachments"] = [self._media(m) for m in media]
        mentioned = conn.execute(
            "SELECT accounts.* FROM mentions JOIN accounts ON accounts.id = mentions.account_id "
            "WHERE mentions.status_id = %s ORDER BY mentions.id", (row["id"],)).fetchall()
        entity["mentions"] = [{"id": str(a["id"]), "username": a["username"],
                               "url": f"https://{self.domain}/@{a['username']}",
                               "acct": a["username"]} for a in mentioned]
        return entity

    def _current(self, conn: psycopg.Connection[dict[str, Any]]) -> dict[str, Any]:
        header = request.headers.get("Authorization", "")
        token = header[7:].strip() if header.lower().startswith("bearer ") else ""
        row = conn.execute(
            "SELECT accounts.* FROM oauth_access_tokens t JOIN accounts "
            "ON accounts.id = t.resource_owner_id WHERE t.token = %s AND t.revoked_at IS NULL",
            (token,)).fetchone() if token else None
        if row is None:
            raise ApiError(401, "The access token is invalid")
        return row

    @staticmethod
    def _int_id(raw: str) -> int:
        if not raw.isdigit():
            raise ApiError(404, "Record not found")
        return int(raw)

    def _visible_status(self, conn: psycopg.Connection[dict[str, Any]], status_id: str,
                        viewer: dict[str, Any] | None) -> dict[str, Any]:
        row = conn.execute("SELECT * FROM statuses WHERE id = %s AND deleted_at IS NULL",
                           (self._int_id(status_id),)).fetchone()
        if row is None:
            raise ApiError(404, "Record not found")
        if row["visibility"] >= 2:  # private, direct: the author or a mentioned account
            viewer_id = viewer["id"] if viewer else None
            mentioned = viewer_id is not None and conn.execute(
                "SELECT 1 FROM mentions WHERE status_id = %s AND account_id = %s",
                (row["id"], viewer_id)).fetchone()
            if viewer_id != row["account_id"] and not mentioned:
                raise ApiError(404, "Record not found")
        return row

    # ------------------------------------------------------------------ app

    def app(self) -> Flask:
        app = Flask(f"mastodon-rest-{self.port}")
        peer = self

        @app.errorhandler(ApiError)
        def api_error(exc: ApiError) -> tuple[Response, int]:
            return jsonify(error=str(exc)), exc.status

        @app.errorhandler(psycopg.OperationalError)
        def db_down(exc: psycopg.OperationalError) -> tuple[Response, int]:
            return jsonify(error="Service unavailable: database"), 503

        @app.errorhandler(redis.RedisError)
        def redis_down(exc: redis.RedisError) -> tuple[Response, int]:
            return jsonify(error="Service unavailable: redis"), 503

        @app.get("/api/v1/instance/", strict_slashes=False)
        def instance_v1() -> Response:
            with peer.db() as conn:
                users = conn.execute("SELECT count(*) AS n FROM users").fetchone()["n"]
            return jsonify(uri=peer.domain, title="tootcheck peer", version=VERSION,
                           stats={"user_count": users, "status_count": 0, "domain_count": 0})

        @app.get("/api/v2/instance/", strict_slashes=False)
        def instance_v2() -> Response:
            with peer.db() as conn:
                conn.execute("SELECT 1")
            return jsonify(domain=peer.domain, title="tootcheck peer", version=VERSION,
                           api_versions={"mastodon": 6})

        @app.get("/api/v1/accounts/verify_credentials")
        def verify_credentials() -> Response:
            with peer.db() as conn:
                me = peer._current(conn)
                count = conn.execute("SELECT count(*) AS n FROM statuses WHERE account_id = %s "
                                     "AND deleted_at IS NULL", (me["id"],)).fetchone()["n"]
                return jsonify(credential_account_entity(peer._account(me, count)))

        @app.get("/api/v1/accounts/lookup")
        def lookup() -> Response:
            acct = (request.args.get("acct") or "").lstrip("@")
            username, _, domain = acct.partition("@")
            with peer.db() as conn:
                row = None
                if not domain or domain == peer.domain:
                    row = conn.execute("SELECT * FROM accounts WHERE lower(username) = lower(%s) "
                                       "AND domain IS NULL", (username,)).fetchone()
                if row is None:
                    raise ApiError(404, "Record not found")
                return jsonify(peer._account(row))

        @app.get("/api/v1/accounts/relationships")
        def relationships() -> Response:
            ids = request.args.getlist("id[]") or request.args.getlist("id")
            with peer.db() as conn:
                me = peer._current(conn)
                out = []
                for raw in ids:
                    other = peer._int_id(raw)
                    following = conn.execute("SELECT 1 FROM follows WHERE account_id = %s AND "
                                             "target_account_id = %s", (me["id"], other)).fetchone()
                    followed = conn.execute("SELECT 1 FROM follows WHERE account_id = %s AND "
                                            "target_account_id = %s", (other, me["id"])).fetchone()
                    out.append(relationship_entity(raw, following=bool(following),
                                                   followed_by=bool(followed)))
                return jsonify(out)

        @app.get("/api/v1/accounts/<account_id>")
        def account(account_id: str) -> Response:
            with peer.db() as conn:
                row = conn.execute("SELECT * FROM accounts WHERE id = %s",
                                   (peer._int_id(account_id),)).fetchone()
                if row is None:
                    raise ApiError(404, "Record not found")
                return jsonify(peer._account(row))

        @app.get("/api/v1/accounts/<account_id>/statuses")
        def account_statuses(account_id: str) -> Response:
            limit = min(int(request.args.get("limit", 20)), 40)
            with peer.db() as conn:
                viewer = peer._current(conn)
                rows = conn.execute(
                    "SELECT * FROM statuses WHERE account_id = %s AND deleted_at IS NULL "
                    "AND (visibility < 2 OR account_id = %s) ORDER BY id DESC LIMIT %s",
                    (peer._int_id(account_id), viewer["id"], limit)).fetchall()
                return jsonify([peer._status(conn, r) for r in rows])

        @app.post("/api/v1/accounts/<account_id>/follow")
        def follow(account_id: str) -> Response:
            with peer.db() as conn:
                me = peer._current(conn)
                other = peer._int_id(account_id)
                if conn.execute("SELECT 1 FROM accounts WHERE id = %s", (other,)).fetchone() is None:
                    raise ApiError(404, "Record not found")
                now = utcnow()
                conn.execute("INSERT INTO follows (account_id, target_account_id, created_at, "
                             "updated_at) VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING",
                             (me["id"], other, now, now))
                return jsonify(relationship_entity(account_id, following=True))

        @app.post("/api/v1/accounts/<account_id>/unfollow")
        def unfollow(account_id: str) -> Response:
            with peer.db() as conn:
                me = peer._current(conn)
                conn.execute("DELETE FROM follows WHERE account_id = %s AND target_account_id = %s",
                             (me["id"], peer._int_id(account_id)))
                return jsonify(relationship_entity(account_id))

        @app.post("/api/v2/media")
        def media_create() -> tuple[Response, int]:
            upload = request.files.get("file")
            data = upload.read() if upload is not None else b""
            kind = image_type(data)
            if kind is None:
                raise ApiError(422, "File type of uploaded media could not be verified")
            with peer.db() as conn:
                me = peer._current(conn)
                media_id = int(snowflake_id())
                name = f"{secrets.token_hex(8)}.{kind[1]}"
                path = peer.media_dir / "media_attachments/files" / id_partition(media_id) \
                    / "original" / name
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(data)
                now = utcnow()
                row = conn.execute(
                    "INSERT INTO media_attachments (id, file_file_name, file_content_type, "
                    "file_file_size, file_updated_at, created_at, updated_at, account_id, "
                    "description) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING *",
                    (media_id, name, kind[0], len(data), now, now, now, me["id"],
                     request.form.get("description"))).fetchone()
                return jsonify(peer._media(row)), 200

        @app.get("/api/v1/media/<media_id>")
        def media_show(media_id: str) -> Response:
            with peer.db() as conn:
                me = peer._current(conn)
                # like Api::V1::MediaController#set_media_attachment: unattached only
                row = conn.execute("SELECT * FROM media_attachments WHERE id = %s AND "
                                   "account_id = %s AND status_id IS NULL",
                                   (peer._int_id(media_id), me["id"])).fetchone()
                if row is None:
                    raise ApiError(404, "Record not found")
                return jsonify(peer._media(row))

        @app.get("/system/<path:name>")
        def system(name: str) -> Response:
            return send_from_directory(peer.media_dir, name, max_age=0)

        @app.post("/api/v1/statuses")
        def status_create() -> Response:
            form = request.form if request.form else (request.get_json(silent=True) or {})
            text = str(form.get("status", ""))
            media_ids = request.form.getlist("media_ids[]") if request.form else \
                list(form.get("media_ids") or [])
            visibility = str(form.get("visibility") or "public")
            if visibility not in VISIBILITIES[:4]:
                raise ApiError(422, f"Validation failed: Visibility {visibility} is not valid")
            scheduled_at = None
            if form.get("scheduled_at"):
                try:
                    scheduled_at = datetime.fromisoformat(str(form["scheduled_at"]))
                except ValueError:
                    raise ApiError(422, "Validation failed: Scheduled at is invalid") from None
                if scheduled_at.tzinfo is None:
                    scheduled_at = scheduled_at.replace(tzinfo=UTC)
                scheduled_at = scheduled_at.astimezone(UTC).replace(tzinfo=None)
                if scheduled_at <= utcnow():
                    scheduled_at = None  # PostStatusService#scheduled_in_the_past?
                elif epoch(scheduled_at) <= time.time() + peer.min_schedule_offset_s:
                    raise ApiError(422, "Validation failed: Scheduled at The scheduled date "
                                        "must be in the future")
            if not text.strip() and not media_ids:
                raise ApiError(422, "Validation failed: Text can't be blank")
            with peer.db() as conn:
                me = peer._current(conn)
                media = []
                for raw in media_ids:
                    row = conn.execute("SELECT * FROM media_attachments WHERE id = %s AND "
                                       "account_id = %s AND status_id IS NULL",
                                       (peer._int_id(str(raw)), me["id"])).fetchone()
                    if row is None:
                        raise ApiError(422, f"Validation failed: media {raw} not found")
                    media.append(row)
                if scheduled_at is not None:
                    return jsonify(peer._schedule(conn, me, text, visibility, scheduled_at, media))
                return jsonify(peer._post(conn, me, text, visibility, form, media))

        @app.get("/api/v1/statuses/<status_id>")
        def status_show(status_id: str) -> Response:
            with peer.db() as conn:
                viewer = None
                with contextlib.suppress(ApiError):
                    viewer = peer._current(conn)
                return jsonify(peer._status(conn, peer._visible_status(conn, status_id, viewer)))

        @app.delete("/api/v1/statuses/<status_id>")
        def status_delete(status_id: str) -> Response:
            with peer.db() as conn:
                me = peer._current(conn)
                row = peer._visible_status(conn, status_id, me)
                if row["account_id"] != me["id"]:
                    raise ApiError(403, "This action is not allowed")
                entity = peer._status(conn, row, source=True)
                conn.execute("UPDATE statuses SET deleted_at = %s WHERE id = %s",
                             (utcnow(), row["id"]))
                return jsonify(entity)

        @app.get("/api/v1/scheduled_statuses/<scheduled_id>")
        def scheduled_show(scheduled_id: str) -> Response:
            with peer.db() as conn:
                me = peer._current(conn)
                row = conn.execute("SELECT * FROM scheduled_statuses WHERE id = %s AND "
                                   "account_id = %s", (peer._int_id(scheduled_id), me["id"])
                                   ).fetchone()
                if row is None:
                    raise ApiError(404, "Record not found")
                return jsonify(peer._scheduled_entity(conn, row))

        @app.delete("/api/v1/scheduled_statuses/<scheduled_id>")
        def scheduled_delete(scheduled_id: str) -> Response:
            with peer.db() as conn:
                me = peer._current(conn)
                deleted = conn.execute("DELETE FROM scheduled_statuses WHERE id = %s AND "
                                       "account_id = %s RETURNING id",
                                       (peer._int_id(scheduled_id), me["id"])).fetchone()
                if deleted is None:
                    raise ApiError(404, "Record not found")
                return jsonify({})

        @app.get("/api/v1/notifications")
        def notifications() -> Response:
            types = request.args.getlist("types[]") or request.args.getlist("types")
            limit = min(int(request.args.get("limit", 40)), 80)
            with peer.db() as conn:
                me = peer._current(conn)
                rows = conn.execute("SELECT * FROM notifications WHERE account_id = %s "
                                    "ORDER BY id DESC LIMIT %s", (me["id"], limit)).fetchall()
                out = []
                for row in rows:
                    if types and row["type"] not in types:
                        continue
                    sender = conn.execute("SELECT * FROM accounts WHERE id = %s",
                                          (row["from_account_id"],)).fetchone()
                    status = None
                    if row["activity_type"] == "Mention":
                        status_row = conn.execute(
                            "SELECT statuses.* FROM mentions JOIN statuses ON statuses.id = "
                            "mentions.status_id WHERE mentions.id = %s AND statuses.deleted_at "
                            "IS NULL", (row["activity_id"],)).fetchone()
                        if status_row is None:
                            continue
                        status = peer._status(conn, status_row)
                    out.append(notification_entity(
                        str(row["id"]), row["type"], peer._account(sender), status=status,
                        created_at=iso_timestamp(epoch(row["created_at"]))))
                return jsonify(out)

        @app.route("/api/<path:rest>", methods=["GET", "POST", "PUT", "DELETE", "PATCH"])
        def unknown(rest: str) -> Response:
            abort(404)

        return app

    def _post(self, conn: psycopg.Connection[dict[str, Any]], me: dict[str, Any], text: str,
              visibility: str, form: Any, media: list[dict[str, Any]]) -> dict[str, Any]:
        now = utcnow()
        status_id = int(snowflake_id())
        row = conn.execute(
            "INSERT INTO statuses (id, text, created_at, updated_at, visibility, spoiler_text, "
            "sensitive, language, local, account_id, ordered_media_attachment_ids) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, true, %s, %s) RETURNING *",
            (status_id, text, now, now, VISIBILITIES.index(visibility),
             str(form.get("spoiler_text") or ""),
             str(form.get("sensitive", "")).lower() in ("1", "true"),
             form.get("language") or "en", me["id"], [m["id"] for m in media] or None)).fetchone()
        for item in media:
            conn.execute("UPDATE media_attachments SET status_id = %s WHERE id = %s",
                         (status_id, item["id"]))
        for username, domain in MENTION_RE.findall(text):
            if domain and domain.lower() != self.domain:
                continue
            target = conn.execute("SELECT id FROM accounts WHERE lower(username) = lower(%s) "
                                  "AND domain IS NULL", (username,)).fetchone()
            if target is not None:
                conn.execute("INSERT INTO mentions (status_id, account_id, created_at, updated_at) "
                             "VALUES (%s, %s, %s, %s)", (status_id, target["id"], now, now))
        with self.redis() as client:
            push_job(client, "DistributionWorker", [status_id], queue="default")
        return self._status(conn, row)

    def _schedule(self, conn: psycopg.Connection[dict[str, Any]], me: dict[str, Any], text: str,
                  visibility: str, scheduled_at: datetime,
                  media: list[dict[str, Any]]) -> dict[str, Any]:
        params = {"text": text, "visibility": VISIBILITIES.index(visibility),
                  "media_ids": [m["id"] for m in media] or None}
        row = conn.execute("INSERT INTO scheduled_statuses (account_id, scheduled_at, params) "
                           "VALUES (%s, %s, %s) RETURNING *",
                           (me["id"], scheduled_at, json.dumps(params))).fetchone()
        for item in media:
            conn.execute("UPDATE media_attachments SET scheduled_status_id = %s WHERE id = %s",
                         (row["id"], item["id"]))
        with self.redis() as client:
            push_job(client, "PublishScheduledStatusWorker", [row["id"]], queue="default",
                     at=epoch(scheduled_at))
        return self._scheduled_entity(conn, row)

    def _scheduled_entity(self, conn: psycopg.Connection[dict[str, Any]],
                          row: dict[str, Any]) -> dict[str, Any]:
        params = dict(row["params"] or {})
        visibility = params.get("visibility")
        if isinstance(visibility, int):
            params["visibility"] = VISIBILITIES[visibility]
        media = conn.execute("SELECT * FROM media_attachments WHERE scheduled_status_id = %s",
                             (row["id"],)).fetchall()
        return scheduled_status_entity(str(row["id"]), iso_timestamp(epoch(row["scheduled_at"])),
                                       params, [self._media(m) for m in media])


def server_context(ca: trustme.CA, domain: str) -> ssl.SSLContext:
    """A TLS server context with a certificate for ``domain`` issued by the test CA."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(domain).configure_cert(context)
    return context


@contextlib.contextmanager
def running_rest_peer(
    dsn: str,
    redis_url: str,
    root: Path,
    *,
    roles: tuple[str, ...] = ("test", "second"),
    domain: str = "kirchner.social",
    min_schedule_offset_s: float = 0.0,
) -> Iterator[tuple[MastodonRestPeer, Target]]:
    """Migrate, create one account per role, serve HTTPS; yields the peer and a Target
    pinned to it that trusts only this peer's CA."""
    ca = trustme.CA()
    ca_file = root / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    peer = MastodonRestPeer(dsn, redis_url, root / "system", domain=domain,
                            min_schedule_offset_s=min_schedule_offset_s)
    peer.migrate()
    accounts = {role: peer.create_account(f"{role}{secrets.token_hex(3)}") for role in roles}
    peer.start(server_context(ca, domain))
    try:
        yield peer, peer.target(accounts, ca_file)
    finally:
        peer.stop()
