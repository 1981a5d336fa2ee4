"""A local site for the availability probes: a real TLS server answering like Mastodon's
``/health`` and streaming's ``/api/v1/streaming/health`` (tests/peers/tls.py), reached
through the Target's name pinning, as the rehearsal reaches kind."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.peers.databases import scratch_dir
from tests.peers.tls import DOMAIN, LocalCA, MastodonSite, Reply, SitePeer, server_context
from tootcheck.clients.pinning import PinMap
from tootcheck.rehearsal.downtime import STREAMING_HEALTH_PATH
from tootcheck.target import Target

OK = Reply(200, {"Content-Type": "text/plain; charset=utf-8"}, b"OK")


@dataclass
class Site:
    site: MastodonSite
    peer: SitePeer
    target: Target

    def fail(self, path: str, status: int = 502) -> None:
        self.site.replies[path] = Reply(status, {"Content-Type": "text/plain"}, b"Bad Gateway")

    def heal(self, path: str) -> None:
        if path == STREAMING_HEALTH_PATH:
            self.site.replies[path] = OK
        else:
            self.site.replies.pop(path, None)


@pytest.fixture(scope="session")
def local_ca() -> LocalCA:
    return LocalCA(scratch_dir("rehearsal-ca"), "rehearsal test CA")


@contextlib.contextmanager
def running_site(ca: LocalCA) -> Iterator[Site]:
    """/health and streaming health answering 200 OK over TLS for kirchner.social."""
    mastodon = MastodonSite()
    mastodon.replies[STREAMING_HEALTH_PATH] = OK
    peer = SitePeer(mastodon, server_context(ca.issue()))
    target = Target(name="peer://rehearsal", domain=DOMAIN, ca_file=ca.ca_file,
                    pins=PinMap({(DOMAIN, 443): ("127.0.0.1", peer.port)}))
    try:
        yield Site(mastodon, peer, target)
    finally:
        peer.stop()


@pytest.fixture
def site(local_ca: LocalCA) -> Iterator[Site]:
    with running_site(local_ca) as running:
        yield running
