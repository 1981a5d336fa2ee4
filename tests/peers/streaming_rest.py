"""Mastodon's REST API for statuses and credentials, publishing what Rails would.

``POST /api/v1/statuses``, ``DELETE /api/v1/statuses/:id`` and ``GET
/api/v1/accounts/verify_credentials`` with Mastodon's scopes and entity shapes; it publishes
``update``/``delete`` to the channels Rails' FanOutOnWriteService/RemoveStatusService use. Its
``publish`` callable can be a redis-py client instead of the in-memory broker, to drive a real
streaming server.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flask import Flask, jsonify, request
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from tests.peers.entities import credential_account_entity, iso_timestamp, status_entity
from tests.peers.streaming_broker import STOP_TIMEOUT_S, Directory, TokenRecord


@dataclass
class RestFaults:
    """HTTP status codes the REST peer answers instead of doing the work (0: no fault)."""

    fail_verify: int = 0
    fail_post: int = 0
    fail_delete: int = 0


class _QuietHandler(WSGIRequestHandler):
    def log_request(self, *args: object, **kwargs: object) -> None:
        pass


class RestPeer:
    """Mastodon's REST API for statuses and credentials; publishes what Rails would."""

    def __init__(self, directory: Directory, publish: Callable[[str, str], Any]) -> None:
        self.directory = directory
        self.publish = publish
        self.faults = RestFaults()
        self.statuses: dict[str, tuple[str, str, dict[str, Any]]] = {}  # id: (author, text, entity)
        self.deleted: list[str] = []
        self.port = 0
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None
        self.app = self._build_app()

    def start(self) -> None:
        self._server = make_server("127.0.0.1", 0, self.app, threaded=True,
                                   request_handler=_QuietHandler)
        self.port = self._server.server_port
        # stop() waits up to one poll interval; a peer is started per test
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.01}, name="rest-peer",
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(STOP_TIMEOUT_S)

    def _auth(self, *scopes: str) -> TokenRecord | tuple[Any, int]:
        header = request.headers.get("Authorization", "")
        record = self.directory.lookup(header.removeprefix("Bearer ").strip() or None)
        if record is None:
            return jsonify(error="The access token is invalid"), 401
        if not record.has_any(*scopes):
            return jsonify(error="This action is outside the authorized scopes"), 403
        return record

    def _publish(self, channel: str, event: str, payload: Any) -> None:
        self.publish(channel, json.dumps({"event": event, "payload": payload}))

    def _build_app(self) -> Flask:
        app = Flask("tootcheck-rest-peer")

        @app.get("/api/v1/accounts/verify_credentials")
        def verify_credentials() -> Any:
            auth = self._auth("read", "read:accounts", "profile")
            if not isinstance(auth, TokenRecord):
                return auth
            if self.faults.fail_verify:
                return jsonify(error="peer fault"), self.faults.fail_verify
            account = self.directory.accounts[auth.account_id].entity
            return jsonify(credential_account_entity(account))

        @app.post("/api/v1/statuses")
        def post_status() -> Any:
            auth = self._auth("write", "write:statuses")
            if not isinstance(auth, TokenRecord):
                return auth
            if self.faults.fail_post:
                return jsonify(error="peer fault"), self.faults.fail_post
            params = request.get_json(silent=True) or request.form
            text = str(params.get("status") or "")
            if not text.strip():
                return jsonify(error="Validation failed: Text can't be blank"), 422
            visibility = str(params.get("visibility") or "public")
            language = params.get("language") or "en"
            account = self.directory.accounts[auth.account_id].entity
            created_at = iso_timestamp()
            own = status_entity(account, text, visibility=visibility, language=language,
                                domain=self.directory.domain, created_at=created_at)
            self.statuses[own["id"]] = (auth.account_id, text, own)
            # FanOutOnWriteService: the author's home (PushUpdateWorker, rendered
            # for the author), then the public streams (anonymous rendering).
            self._publish(f"timeline:{auth.account_id}", "update", own)
            if visibility == "public":
                anonymous = status_entity(account, text, status_id=own["id"],
                                          visibility=visibility, language=language,
                                          domain=self.directory.domain, viewer=False,
                                          created_at=created_at)
                self._publish("timeline:public", "update", anonymous)
                self._publish("timeline:public:local", "update", anonymous)
            return jsonify(own)

        @app.delete("/api/v1/statuses/<status_id>")
        def delete_status(status_id: str) -> Any:
            auth = self._auth("write", "write:statuses")
            if not isinstance(auth, TokenRecord):
                return auth
            if self.faults.fail_delete:
                return jsonify(error="peer fault"), self.faults.fail_delete
            stored = self.statuses.get(status_id)
            if stored is None or stored[0] != auth.account_id:
                return jsonify(error="Record not found"), 404
            del self.statuses[status_id]
            self.deleted.append(status_id)
            _, text, status = stored
            response = status_entity(status["account"], text, status_id=status_id,
                                     visibility=status["visibility"],
                                     language=status["language"],
                                     domain=self.directory.domain, source_requested=True,
                                     created_at=status["created_at"])
            # RemoveStatusService: the author's home first, then the public streams.
            self._publish(f"timeline:{auth.account_id}", "delete", status_id)
            if status["visibility"] == "public":
                self._publish("timeline:public", "delete", status_id)
                self._publish("timeline:public:local", "delete", status_id)
            return jsonify(response)

        return app
