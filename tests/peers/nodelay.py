"""The request handler of the suite's werkzeug peers over TLS: TCP_NODELAY on every
connection.

Without it a TLS peer's response waited in the kernel until werkzeug closed the
connection (it first waits 10 ms for unread request data): Nagle's algorithm holds a
small segment while an earlier one is unacknowledged, and the client, waiting for the
response, acknowledges late. That was 10 ms of wall time on every request (measured on
loopback: 12 ms from request to response, 1 ms with TCP_NODELAY). The servers in front
of Mastodon (Puma, Traefik) set TCP_NODELAY too.
"""

from __future__ import annotations

import socket

from werkzeug.serving import WSGIRequestHandler


class NoDelayHandler(WSGIRequestHandler):
    """werkzeug's handler with TCP_NODELAY set before the request is read."""

    def setup(self) -> None:
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().setup()
