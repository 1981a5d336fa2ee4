"""The web push suite's fixtures come from fixtures/incluster.py."""

from fixtures.incluster import mastodon_env, peer_admin

__all__ = ["mastodon_env", "peer_admin"]
