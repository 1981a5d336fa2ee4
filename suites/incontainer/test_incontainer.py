"""Inside the Mastodon pod's containers, through testinfra's kubectl backend (read-only).

Persistent paths are NFS mounts writable by the container's user (Mastodon 991,
PostgreSQL and Redis 999); the expected processes run; Redis keeps an fsynced AOF on
its volume; PostgreSQL runs with fsync and full-page writes, its data on its volume.
Proven in tests/checks/test_incontainer.py with the local backend against real peers.
"""

from __future__ import annotations

import pytest
import testinfra

from tootcheck.checks.incontainer import (
    Volume,
    check_postgres_durability,
    check_processes,
    check_redis_durability,
    check_storage,
)
from tootcheck.errors import BadInput
from tootcheck.kube.pods import MASTODON_SELECTOR, kube_for, ready_pod
from tootcheck.target import Target

pytestmark = pytest.mark.needs_target

VOLUMES = {
    "web": [Volume("/opt/mastodon/public/system", uid=991, gids=(991,))],
    "sidekiq": [Volume("/opt/mastodon/public/system", uid=991, gids=(991,))],
    "postgres": [Volume("/var/lib/postgresql/data", uid=999, gids=(999,))],
    "redis": [Volume("/data", uid=999, gids=(1000,))],
}
PROCESSES = {
    "web": {"puma": r"^puma "},
    "streaming": {"node streaming": r"node .*streaming"},
    "sidekiq": {"sidekiq": r"^sidekiq \d"},
    "postgres": {"postgres": r"^postgres"},
    "redis": {"redis-server": r"redis-server"},
}


@pytest.fixture(scope="module")
def pod(target: Target) -> str:
    if target.kubeconfig is None and target.kube_context is None:
        pytest.skip(f"target {target.name} has no kubeconfig: the containers are not reachable")
    try:
        return ready_pod(kube_for(target), target.namespace, MASTODON_SELECTOR)
    except BadInput as exc:
        problem = str(exc)
    pytest.fail(problem, pytrace=False)


def container(target: Target, pod: str, name: str):
    options = {"container": name, "namespace": target.namespace}
    if target.kubeconfig is not None:
        options["kubeconfig"] = str(target.kubeconfig)
    if target.kube_context is not None:
        options["context"] = target.kube_context
    return testinfra.get_host(f"kubectl://{pod}", **options)


@pytest.mark.check("incontainer.storage")
@pytest.mark.parametrize("name", sorted(VOLUMES))
def test_volumes_are_nfs_and_writable(target: Target, pod: str, name: str) -> None:
    result = check_storage(container(target, pod, name), VOLUMES[name], target=f"{target.name}/{name}")
    assert result.ok, result.summary


@pytest.mark.check("incontainer.processes")
@pytest.mark.parametrize("name", sorted(PROCESSES))
def test_expected_processes_run(target: Target, pod: str, name: str) -> None:
    result = check_processes(container(target, pod, name), PROCESSES[name],
                             target=f"{target.name}/{name}")
    assert result.ok, result.summary


@pytest.mark.check("incontainer.redis_durability")
def test_redis_is_durable(target: Target, pod: str) -> None:
    result = check_redis_durability(container(target, pod, "redis"), target=f"{target.name}/redis")
    assert result.ok, result.summary


@pytest.mark.check("incontainer.postgres_durability")
def test_postgres_is_durable(target: Target, pod: str) -> None:
    result = check_postgres_durability(container(target, pod, "postgres"),
                                       target=f"{target.name}/postgres")
    assert result.ok, result.summary
