"""The federation suite's fixtures come from fixtures/incluster.py."""

from fixtures.incluster import peer_admin

__all__ = ["peer_admin"]
