"""Fixtures for the mail, federation and web push self-tests (imported by tests/conftest.py).

Layered by cost: one local test CA, one SMTP sink, one fediverse peer process and one
simulated Mastodon per run; ``mastodon_sim`` resets the simulation's faults per test and, at
teardown, waits for its background jobs and surfaces any error they hit.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import trustme

from tests.peers.databases import scratch_dir
from tests.peers.fediverse import PUBLIC_HOST, FediversePeer
from tests.peers.mastodon_side import DOMAIN, SimulatedMastodon
from tests.peers.smtp import SmtpSink


@dataclass(frozen=True)
class SinksCA:
    ca_file: Path
    peer_cert: Path
    peer_key: Path
    web_cert: Path
    web_key: Path


@pytest.fixture(scope="session")
def sinks_ca() -> Iterator[SinksCA]:
    """A throw-away CA with certificates for the peer's and the instance's host names."""
    root = scratch_dir("sinks-ca")
    ca = trustme.CA()
    ca.cert_pem.write_to_path(str(root / "ca.pem"))
    paths = {}
    for label, host in (("peer", PUBLIC_HOST), ("web", DOMAIN)):
        leaf = ca.issue_cert(host)
        leaf.cert_chain_pems[0].write_to_path(str(root / f"{label}.crt"))
        for blob in leaf.cert_chain_pems[1:]:
            blob.write_to_path(str(root / f"{label}.crt"), append=True)
        leaf.private_key_pem.write_to_path(str(root / f"{label}.key"))
        paths[label] = (root / f"{label}.crt", root / f"{label}.key")
    yield SinksCA(root / "ca.pem", *paths["peer"], *paths["web"])
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def smtp_sink() -> Iterator[SmtpSink]:
    sink = SmtpSink().start()
    yield sink
    sink.stop()


@pytest.fixture(scope="session")
def fediverse_peer(sinks_ca: SinksCA) -> Iterator[FediversePeer]:
    peer = FediversePeer(sinks_ca.peer_cert, sinks_ca.peer_key)
    yield peer
    peer.stop()


@pytest.fixture(scope="session")
def simulated_mastodon(sinks_ca: SinksCA, fediverse_peer: FediversePeer,
                       smtp_sink: SmtpSink) -> Iterator[SimulatedMastodon]:
    sim = SimulatedMastodon(sinks_ca.ca_file, sinks_ca.web_cert, sinks_ca.web_key,
                            fediverse_peer.pins, smtp_sink.smtp_port).start()
    yield sim
    sim.stop()


@pytest.fixture
def mastodon_sim(simulated_mastodon: SimulatedMastodon) -> Iterator[SimulatedMastodon]:
    """The simulated Mastodon, healthy; call ``mastodon_sim.reset("<fault>")`` to break it."""
    simulated_mastodon.reset()
    yield simulated_mastodon
    simulated_mastodon.drain()
