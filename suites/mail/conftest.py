"""The mail suite's fixtures come from fixtures/incluster.py."""

from fixtures.incluster import mailpit_api, mastodon_env

__all__ = ["mailpit_api", "mastodon_env"]
