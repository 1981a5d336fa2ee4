"""Fixtures for the suite's own tests: real local peers on 127.0.0.1."""

from tests.peers.fixtures import make_postgres, make_redis, postgres, redis_peer, sidekiq_peers
from tests.peers.sinks import fediverse_peer, mastodon_sim, simulated_mastodon, sinks_ca, smtp_sink

__all__ = ["make_postgres", "make_redis", "postgres", "redis_peer", "sidekiq_peers"]
__all__ += ["fediverse_peer", "mastodon_sim", "simulated_mastodon", "sinks_ca", "smtp_sink"]
