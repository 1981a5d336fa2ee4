"""Plumbing the OIDC peers share: a trustme CA, a Flask app served over TLS on 127.0.0.1
(werkzeug's threaded server), and a recorder of every request a peer receives."""

from __future__ import annotations

import ssl
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import trustme
from flask import Flask, request
from werkzeug.serving import BaseWSGIServer, make_server

from tests.peers.nodelay import NoDelayHandler


@dataclass(frozen=True)
class Recorded:
    """One request a peer received, as it arrived (for "where did the password go")."""

    host: str
    method: str
    path: str
    query: str
    headers: Mapping[str, str]
    body: str

    def contains(self, secret: str) -> bool:
        return any(secret in part for part in (self.path, self.query, self.body,
                                               *self.headers.values()))


def record(log: list[Recorded]) -> None:
    """A Flask before_request hook body that appends the current request to ``log``."""
    log.append(Recorded(
        host=request.host, method=request.method, path=request.path,
        query=request.query_string.decode("latin-1"),
        headers={k: v for k, v in request.headers.items()},
        body=request.get_data(as_text=True),
    ))


class PeerCA:
    """A trustme CA for the peers; ``ca_file`` is what the Target trusts."""

    def __init__(self, directory: Path) -> None:
        self.ca = trustme.CA()
        self.ca_file = directory / "oidc-peers-ca.pem"
        self.ca.cert_pem.write_to_path(str(self.ca_file))

    def server_context(self, host: str) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        self.ca.issue_cert(host).configure_cert(context)
        return context


class _QuietHandler(NoDelayHandler):
    def log(self, type: str, message: str, *args: object) -> None:
        pass


class PeerServer:
    """A Flask app on 127.0.0.1 over TLS (werkzeug's threaded server); ``stop()`` ends it."""

    def __init__(self, app: Flask, context: ssl.SSLContext) -> None:
        self._server: BaseWSGIServer = make_server("127.0.0.1", 0, app, threaded=True,
                                                   ssl_context=context,
                                                   request_handler=_QuietHandler)
        self.port: int = self._server.socket.getsockname()[1]
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.05},
                                        name=f"oidc-peer-{self.port}", daemon=True)
        self._thread.start()  # already listening: no readiness wait

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
