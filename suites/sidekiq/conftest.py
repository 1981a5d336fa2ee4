"""Fixtures for the Sidekiq suite: the pod's name and its in-pod Redis.

Sidekiq's state lives in the Redis sidecar of the Mastodon pod. The suite reaches
it through a Kubernetes port-forward (``tootcheck.kube.portforward.port_forward``)
with the password from key ``REDIS_PASSWORD`` of Secret ``mastodon-secrets``; the
identity Sidekiq registers carries the pod name as its host name. Without cluster
access (a nightly run with only a URL) the Redis-based tests skip with one line.
"""

from __future__ import annotations

import base64
import contextlib
from collections.abc import Iterator

import pytest
import redis

from tootcheck.clients.sidekiq import redis_now
from tootcheck.errors import BadInput
from tootcheck.kube.pods import MASTODON_SELECTOR, kube_for, ready_pod
from tootcheck.kube.portforward import port_forward
from tootcheck.redaction import Secret
from tootcheck.target import Target
from tootcheck.waiting import WaitTimeout

SECRET_NAME = "mastodon-secrets"
PASSWORD_KEY = "REDIS_PASSWORD"
REDIS_PORT = 6379


def _need_cluster(target: Target) -> None:
    if target.kubeconfig is None and target.kube_context is None:
        pytest.skip(f"target {target.name} has no kubeconfig: Sidekiq's Redis is not reachable")


@pytest.fixture(scope="session")
def mastodon_pod(target: Target) -> str:
    """The Ready Mastodon pod; Sidekiq's identity host name is this name."""
    _need_cluster(target)
    try:
        return ready_pod(kube_for(target), target.namespace, MASTODON_SELECTOR)
    except BadInput as exc:
        problem = str(exc)
    pytest.fail(problem, pytrace=False)


@pytest.fixture(scope="session")
def redis_password(target: Target) -> Secret | None:
    _need_cluster(target)
    problem = ""
    try:
        secret = kube_for(target).get("v1", "Secret", SECRET_NAME, target.namespace)
    except BadInput as exc:
        problem, secret = str(exc), None
    if problem:
        pytest.fail(problem, pytrace=False)  # outside the except: no chained traceback
    if secret is None:
        pytest.fail(f"Secret {target.namespace}/{SECRET_NAME} not found", pytrace=False)
    raw = (secret.get("data") or {}).get(PASSWORD_KEY)
    if not raw:
        return None  # Redis without a password
    return Secret(base64.b64decode(raw).decode(), PASSWORD_KEY)


@pytest.fixture(scope="session")
def sidekiq_redis(target: Target, mastodon_pod: str,
                  redis_password: Secret | None) -> Iterator[redis.Redis]:
    """A client for the pod's Redis through a port-forward (closed at the end)."""
    with contextlib.ExitStack() as stack:
        problem = ""
        try:
            port = stack.enter_context(port_forward(target, MASTODON_SELECTOR, REDIS_PORT))
        except (BadInput, WaitTimeout) as exc:
            problem = f"port-forward to the pod's Redis failed: {exc}"
        if problem:
            pytest.fail(problem, pytrace=False)
        client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=10,
                             socket_connect_timeout=10,
                             password=redis_password.reveal() if redis_password else None)
        try:
            yield client
        finally:
            client.close()


@pytest.fixture(scope="session")
def sidekiq_run_started(sidekiq_redis: redis.Redis) -> float:
    """Redis's clock when the suite first touched Sidekiq: `retry` and `dead` must not
    grow from here to the end of the queues check."""
    return redis_now(sidekiq_redis)
