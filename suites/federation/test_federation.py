"""Federation on the target: a peer's Follow is accepted; Create and Delete reach it, signed.

Thin: one check from ``tootcheck.checks.federation`` (proven against the peer program and
a simulated sender in ``tests/checks/test_federation.py``). Mutating and kind-only: it
needs the in-cluster fediverse peer and ALLOWED_PRIVATE_ADDRESSES from the kind overlay.
"""

from __future__ import annotations

import pytest

from tootcheck.checks.federation import check_delivery
from tootcheck.clients.activitypub import PeerAdmin
from tootcheck.target import Target

pytestmark = pytest.mark.needs_target


@pytest.mark.check("federation.delivery")
def test_federation_delivery(target: Target, peer_admin: PeerAdmin) -> None:
    result = check_delivery(target, peer_admin)
    assert result.ok, result.summary
