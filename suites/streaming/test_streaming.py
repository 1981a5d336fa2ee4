"""The streaming API on the target: health, auth, delivery of update/delete, latency.

Thin: each test runs one check from ``tootcheck.checks.streaming`` (proven against
local peers in ``tests/checks/test_streaming.py``) and asserts it passed.
``streaming.delivery`` and ``streaming.latency`` post and delete public statuses
as the test account; the modes layer refuses them in nightly mode unless allowed
(``--allow-mutating=streaming.delivery,streaming.latency``).
"""

from __future__ import annotations

import pytest

from tootcheck.checks.streaming import check_auth, check_delivery, check_health, check_latency
from tootcheck.target import Target

pytestmark = pytest.mark.needs_target


@pytest.mark.check("streaming.health")
def test_streaming_health(target: Target) -> None:
    result = check_health(target)
    assert result.ok, result.summary


@pytest.mark.check("streaming.auth")
def test_streaming_auth(target: Target) -> None:
    result = check_auth(target)
    assert result.ok, result.summary


@pytest.mark.check("streaming.delivery")
def test_streaming_delivery(target: Target) -> None:
    result = check_delivery(target)
    assert result.ok, result.summary


@pytest.mark.check("streaming.latency")
def test_streaming_latency(target: Target) -> None:
    result = check_latency(target)
    assert result.ok, result.summary
