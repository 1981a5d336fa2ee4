"""A fake cluster for the kube layer's tests: objects as dicts, scripted behaviour.

It implements the read/write surface of :class:`tootcheck.kube.client.Kube` that
the waits, evidence collectors, bring-up steps and safety checks use.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from typing import Any

from tootcheck.errors import KindNotServed
from tootcheck.kube.client import ExecResult


def _matches(labels: Mapping[str, str], selector: str | None) -> bool:
    if not selector:
        return True
    for term in selector.split(","):
        key, _, value = term.partition("=")
        if labels.get(key.strip()) != value.strip():
            return False
    return True


class FakeKube:
    def __init__(self, objects: list[dict[str, Any]] | None = None) -> None:
        self.objects: dict[tuple[str, str | None, str], dict[str, Any]] = {}
        self.logs: dict[tuple[str, str, str, bool], str] = {}
        self.applied: list[dict[str, Any]] = []
        self.deleted: list[tuple[str, str | None, str]] = []
        self.exec_calls: list[tuple[str, str, str, tuple[str, ...]]] = []
        self.exec_handler: Callable[[str, str, str, tuple[str, ...]], ExecResult] | None = None
        self.fail: dict[str, BaseException] = {}  # operation name -> exception to raise
        self.on_poll: list[Callable[[FakeKube], None]] = []
        self.unserved: set[str] = set()  # kinds whose CRD is not served (yet): get/list raise
        self.context = "kind-tootcheck"
        self.server = "https://127.0.0.1:6443"
        self.kubeconfig = None
        for obj in objects or []:
            self.put(obj)

    # -- test helpers

    def put(self, obj: dict[str, Any]) -> None:
        meta = obj.setdefault("metadata", {})
        self.objects[(obj["kind"], meta.get("namespace"), meta["name"])] = obj

    def _maybe_fail(self, op: str) -> None:
        if op in self.fail:
            raise self.fail[op]

    def _served(self, api_version: str, kind: str) -> None:
        if kind in self.unserved:
            raise KindNotServed(f"cluster {self.server} serves no {kind} in {api_version} "
                                "(a CRD missing or not installed yet?)")

    # -- the Kube surface

    def get(self, api_version, kind, name, namespace=None):
        self._maybe_fail("get")
        for hook in self.on_poll:
            hook(self)
        self._served(api_version, kind)
        obj = self.objects.get((kind, namespace, name))
        return copy.deepcopy(obj) if obj else None

    def list(self, api_version, kind, namespace=None, *, label_selector=None, field_selector=None):
        self._maybe_fail(f"list:{kind}")
        self._maybe_fail("list")
        for hook in self.on_poll:
            hook(self)
        self._served(api_version, kind)
        out = []
        for (k, ns, _name), obj in self.objects.items():
            if k != kind or (namespace and ns != namespace):
                continue
            if _matches((obj.get("metadata") or {}).get("labels") or {}, label_selector):
                out.append(copy.deepcopy(obj))
        return out

    def apply(self, doc):
        self._maybe_fail("apply")
        self.applied.append(copy.deepcopy(dict(doc)))
        stored = copy.deepcopy(dict(doc))
        if stored["kind"] == "CustomResourceDefinition":  # the API server establishes CRDs
            stored["status"] = {"conditions": [{"type": "Established", "status": "True"}]}
        key = (stored["kind"], stored["metadata"].get("namespace"), stored["metadata"]["name"])
        if key in self.objects and "status" in self.objects[key]:
            stored["status"] = self.objects[key]["status"]  # apply does not touch status
        self.put(stored)
        return copy.deepcopy(stored)

    def delete(self, api_version, kind, name, namespace=None, *, grace_period_seconds=None):
        self._maybe_fail("delete")
        self.deleted.append((kind, namespace, name))
        return self.objects.pop((kind, namespace, name), None) is not None

    def namespaces(self):
        self._maybe_fail("namespaces")
        return sorted({ns for (_k, ns, _n) in self.objects if ns})

    def events(self, namespace=None):
        return self.list("v1", "Event", namespace)

    def pod_log(self, namespace, pod, container, *, previous=False, tail_lines=None):
        self._maybe_fail("pod_log")
        key = (namespace, pod, container, previous)
        if key not in self.logs:
            raise LookupError(f"no {'previous ' if previous else ''}log for {pod}/{container}")
        return self.logs[key]

    def exec(self, namespace, pod, container, argv, *, timeout=300.0):
        self._maybe_fail("exec")
        call = (namespace, pod, container, tuple(argv))
        self.exec_calls.append(call)
        if self.exec_handler is None:
            return ExecResult(0, "", "")
        return self.exec_handler(*call)

    def server_version(self, *, timeout=10.0):
        return "v1.34.0"


class Clock:
    """A fake clock: sleeping advances time, so waits run instantly."""

    def __init__(self) -> None:
        self.now = 0.0

    def time(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds
