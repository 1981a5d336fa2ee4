"""How the rehearsal reaches the deployment it upgrades: the Mastodon pod at a
release, its PostgreSQL (a port-forward, the password from Secret mastodon-secrets)
and its Redis (the same)."""

from __future__ import annotations

import base64
import contextlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any
from urllib.parse import quote

from tootcheck.errors import BadInput
from tootcheck.kube.pods import MASTODON_SELECTOR, is_terminating, kube_for
from tootcheck.redaction import Secret
from tootcheck.rehearsal import plan as plan_mod
from tootcheck.rehearsal.verify import mastodon_tag
from tootcheck.target import Target

CONFIG_MAP = "mastodon-env"
SECRET = "mastodon-secrets"
POSTGRES_PORT = 5432
REDIS_PORT = 6379


def deployment_name(docs: Sequence[Mapping[str, Any]]) -> str:
    return str(plan_mod.mastodon_deployment(docs)["metadata"]["name"])


def running_tag(kube: Any, namespace: str, name: str) -> str:
    deployment = kube.get("apps/v1", "Deployment", name, namespace)
    if deployment is None:
        raise BadInput(f"Deployment {namespace}/{name} does not exist: the bring-up did not "
                       "deploy Mastodon")
    return mastodon_tag(deployment["spec"]["template"])


def upgraded_pod(kube: Any, namespace: str, tag: str,
                 selector: str = MASTODON_SELECTOR) -> dict[str, Any] | None:
    pods = [p for p in kube.list("v1", "Pod", namespace, label_selector=selector)
            if mastodon_tag(p) == tag and not is_terminating(p)]
    return max(pods, key=lambda p: p["metadata"].get("creationTimestamp", "")) if pods else None


def redis_client(target: Target, kube: Any) -> Callable[[], Any]:
    """A context manager factory: a Redis client on the pod's Redis (port-forward)."""
    @contextlib.contextmanager
    def connect() -> Iterator[Any]:
        import redis

        from tootcheck.kube.portforward import port_forward

        password = _decoded(kube.get("v1", "Secret", SECRET, target.namespace), "REDIS_PASSWORD")
        with port_forward(target, MASTODON_SELECTOR, REDIS_PORT) as port:
            client = redis.Redis(host="127.0.0.1", port=port, password=password,
                                 socket_timeout=30)
            try:
                yield client
            finally:
                client.close()
    return connect


def _decoded(secret: Mapping[str, Any] | None, key: str) -> str:
    data = (secret or {}).get("data") or {}
    if key not in data:
        raise BadInput(f"Secret {SECRET} has no {key}: cannot reach PostgreSQL")
    return base64.b64decode(data[key]).decode()


@contextlib.contextmanager
def database(target: Target, kube: Any = None) -> Iterator[Secret]:
    """A PostgreSQL URL (a Secret) for the pod's database through a port-forward."""
    from tootcheck.kube.portforward import port_forward

    kube = kube if kube is not None else kube_for(target)
    config = ((kube.get("v1", "ConfigMap", CONFIG_MAP, target.namespace) or {}).get("data")
              or {})
    password = Secret(_decoded(kube.get("v1", "Secret", SECRET, target.namespace), "DB_PASS"),
                      "DB_PASS")
    user = config.get("DB_USER", "mastodon")
    name = config.get("DB_NAME", "mastodon_production")
    with port_forward(target, MASTODON_SELECTOR, int(config.get("DB_PORT", POSTGRES_PORT))) as port:
        yield Secret(f"postgresql://{quote(user)}:{quote(password.reveal(), safe='')}"
                     f"@127.0.0.1:{port}/{quote(name)}?connect_timeout=10", "database URL")

