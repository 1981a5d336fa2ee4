"""Sidekiq on the target: the pod's process beats and serves Mastodon's queues,
queues drain without failures, and a mention becomes a notification.

Thin: each test runs one check from ``tootcheck.checks.sidekiq`` (proven against a
real Sidekiq in ``tests/checks/test_sidekiq.py``) and asserts it passed.
``sidekiq.roundtrip`` posts (and deletes) an unlisted status as the test account;
nightly mode refuses it unless ``--allow-mutating=sidekiq.roundtrip``.
"""

from __future__ import annotations

import pytest
import redis

from tootcheck.checks.sidekiq import check_health, check_queues_drain, check_roundtrip
from tootcheck.target import Target

pytestmark = pytest.mark.needs_target


@pytest.mark.check("sidekiq.health")
def test_sidekiq_health(sidekiq_redis: redis.Redis, mastodon_pod: str,
                        sidekiq_run_started: float) -> None:
    result = check_health(sidekiq_redis, mastodon_pod, label=f"sidekiq://{mastodon_pod}")
    assert result.ok, result.summary


@pytest.mark.check("sidekiq.roundtrip")
def test_sidekiq_roundtrip(target: Target) -> None:
    result = check_roundtrip(target)
    assert result.ok, result.summary


@pytest.mark.check("sidekiq.queues_drain")
def test_sidekiq_queues_drain(sidekiq_redis: redis.Redis, sidekiq_run_started: float) -> None:
    # failures counted from the suite's start: the round trip's jobs are included
    result = check_queues_drain(sidekiq_redis, failures_since=sidekiq_run_started)
    assert result.ok, result.summary
