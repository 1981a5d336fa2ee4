"""An inner-run plugin standing in for the cluster API: ``-p tests.nightly.fake_cluster
--fake-cluster=<json>``.

The live suites reach the cluster through ``tootcheck.kube.pods.kube_for`` (objects,
Secrets, pods) and ``tootcheck.kube.portforward.port_forward`` (the pod's Redis).
Loaded with ``-p`` (before any suite's conftest is imported), this plugin replaces
those two at import time with a fake that serves objects from a JSON file and forwards "to the pod"
by yielding the port of a local peer. Everything else is the real suite code
talking to real peers. Only for the suite's own tests; never in production runs.

JSON: ``{"objects": [<API objects>], "forward": {"<remote port>": <local port>}}``.
"""

from __future__ import annotations

import contextlib
import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest


def _matches(labels: dict[str, str], selector: str | None) -> bool:
    pairs = [term.partition("=") for term in (selector or "").split(",") if term]
    return all(labels.get(key.strip()) == value.strip() for key, _, value in pairs)


class FakeCluster:
    def __init__(self, objects: list[dict[str, Any]]) -> None:
        self.objects = {(o["kind"], (o["metadata"].get("namespace") or None),
                         o["metadata"]["name"]): o for o in objects}
        self.context = "fake"
        self.server = "https://fake.invalid"
        self.kubeconfig = None

    def get(self, api_version: str, kind: str, name: str, namespace: str | None = None):
        found = self.objects.get((kind, namespace or None, name))
        return copy.deepcopy(found) if found else None

    def list(self, api_version: str, kind: str, namespace: str | None = None, *,
             label_selector: str | None = None, field_selector: str | None = None):
        return [copy.deepcopy(o) for (k, ns, _), o in self.objects.items()
                if k == kind and (not namespace or ns == namespace)
                and _matches((o["metadata"].get("labels") or {}), label_selector)]


_STATE: dict[str, Any] = {}


def kube_for(target: Any) -> FakeCluster:
    return _STATE["cluster"]


@contextlib.contextmanager
def port_forward(target: Any, selector: str, remote_port: int, **_: Any) -> Iterator[int]:
    yield _STATE["forward"][remote_port]


def _install() -> None:
    """Replace the cluster access now: pytest imports the conftests of the paths on the
    command line before ``pytest_configure``, and they import these names directly."""
    from tootcheck.kube import pods, portforward

    pods.kube_for = kube_for  # type: ignore[assignment]
    portforward.port_forward = port_forward  # type: ignore[assignment]


_install()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--fake-cluster", required=True, help="JSON of a fake cluster (self-tests)")


def pytest_configure(config: pytest.Config) -> None:
    spec = json.loads(Path(config.getoption("fake_cluster")).read_text())
    _STATE["cluster"] = FakeCluster(spec.get("objects", []))
    _STATE["forward"] = {int(k): int(v) for k, v in (spec.get("forward") or {}).items()}
