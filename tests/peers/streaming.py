"""A local Mastodon for the streaming checks: streaming server, REST API and an ingress.

Three servers on 127.0.0.1, wired like the reference deployment, each in its own module:

- :class:`~tests.peers.streaming_server.StreamingPeer` (``streaming_server``): Mastodon's
  streaming server as ``streaming/index.js`` behaves (see that module for what is modelled
  and docs/streaming.md "Fidelity" for the tests that pin it). It listens on the Redis-style
  channels of a :class:`~tests.peers.streaming_broker.Broker` (``timeline:<account_id>``,
  ``timeline:public:local``, ...).
- :class:`~tests.peers.streaming_rest.RestPeer` (``streaming_rest``): statuses and
  credentials; publishes what Rails would.
- :class:`~tests.peers.streaming_ingress.Ingress` (``streaming_ingress``): TLS for
  ``kirchner.social`` and path routing like the Traefik Ingress (``/api/v1/streaming`` to
  streaming, ``/`` to REST), so the checks use exactly the production path.

Accounts, tokens and lists live in a shared :class:`~tests.peers.streaming_broker.Directory`.
Faults are plain mutable dataclasses (``StreamingFaults``, ``RestFaults``) that a test flips
before running a check.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import ssl
from collections.abc import Iterator
from pathlib import Path

from tests.peers.streaming_broker import (
    AccountRecord,
    Broker,
    Directory,
    PeerLoop,
    TokenRecord,
)
from tests.peers.streaming_ingress import Ingress
from tests.peers.streaming_rest import RestFaults, RestPeer
from tests.peers.streaming_server import (
    HEALTH_PATH,
    KEEPALIVE_S,
    STREAMING_PATH,
    StreamingFaults,
    StreamingPeer,
    normalize_hashtag,
)
from tootcheck.clients.pinning import PinMap
from tootcheck.redaction import Secret
from tootcheck.target import Account, Target

__all__ = ["HEALTH_PATH", "KEEPALIVE_S", "STREAMING_PATH", "AccountRecord", "Broker", "Directory", "Ingress",
           "MastodonPeer", "PeerLoop", "RestFaults", "RestPeer", "StreamingFaults",
           "StreamingPeer", "TokenRecord", "normalize_hashtag", "running_peer"]


class MastodonPeer:
    """REST + streaming + ingress for one domain, with a test account and token."""

    def __init__(self, server_ssl: ssl.SSLContext, ca_file: Path,
                 domain: str = "kirchner.social", *,
                 ping_interval_s: float = KEEPALIVE_S) -> None:
        self.domain = domain
        self.ca_file = ca_file
        self.directory = Directory(domain)
        self.broker = Broker()
        self.streaming = StreamingPeer(self.directory, self.broker,
                                       ping_interval_s=ping_interval_s)
        self.rest = RestPeer(self.directory, self.broker.publish)
        self.account = self.directory.add_account("tootcheck")
        self.token = self.directory.add_token(self.account)
        self._server_ssl = server_ssl
        self._loop = PeerLoop()
        self.ingress: Ingress | None = None

    def start(self) -> MastodonPeer:
        self._loop.start()
        self.rest.start()
        self._loop.call(self.streaming.start())
        self.ingress = Ingress(self._server_ssl, {
            STREAMING_PATH: ("127.0.0.1", self.streaming.port),
            "/": ("127.0.0.1", self.rest.port),
        })
        self._loop.call(self.ingress.start())
        return self

    def stop(self) -> None:
        with contextlib.suppress(concurrent.futures.TimeoutError, RuntimeError):
            if self.ingress is not None:
                self._loop.call(self.ingress.stop())
            self._loop.call(self.streaming.stop())
        self.rest.stop()
        self._loop.stop()

    def stop_streaming(self) -> None:
        """Stop the streaming server only: the ingress then answers 502, like Traefik."""
        self._loop.call(self.streaming.stop())

    def target(self, token: str | None = "default", *, https_port: int | None = None) -> Target:
        """A Target pinning ``kirchner.social:443`` to the ingress; ``token=None``: no account."""
        assert self.ingress is not None, "start() the peer first"
        port = https_port if https_port is not None else self.ingress.port
        accounts: dict[str, Account] = {}
        if token is not None:
            value = self.token if token == "default" else token
            accounts["test"] = Account(username=self.account.username,
                                       token=Secret(value, "test_token"))
        return Target(
            name=f"peer://{self.domain}",
            domain=self.domain,
            ca_file=self.ca_file,
            pins=PinMap({(self.domain, 443): ("127.0.0.1", port)}),
            accounts=accounts,
        )


@contextlib.contextmanager
def running_peer(server_ssl: ssl.SSLContext, ca_file: Path, *,
                 ping_interval_s: float = KEEPALIVE_S) -> Iterator[MastodonPeer]:
    peer = MastodonPeer(server_ssl, ca_file, ping_interval_s=ping_interval_s).start()
    try:
        yield peer
    finally:
        peer.stop()
