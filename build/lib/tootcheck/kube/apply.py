"""Server-side apply of a rendered multi-document YAML (field manager ``tootcheck``).

Order: CustomResourceDefinitions first (and wait until they are Established),
then Namespaces, then everything else in render order. A document that fails to
apply raises :class:`ApplyError` naming the object and the API's message.
Splitting and ordering are pure functions.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Protocol

import yaml

from tootcheck.errors import BadInput
from tootcheck.kube.readiness import crd_readiness, object_id
from tootcheck.waiting import Poll, wait_until

Doc = dict[str, Any]

FIRST_KINDS = ("CustomResourceDefinition", "Namespace")
# libyaml when present: renders with CRDs are megabytes, and the pure-Python loader
# takes seconds per render.
SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
SAFE_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


class ApplyError(BadInput):
    """An object the API server refused."""


def split_documents(text: str, source: str = "render") -> list[Doc]:
    """Parse a multi-document YAML stream; ``List`` kinds are flattened."""
    try:
        loaded = list(yaml.load_all(text, Loader=SAFE_LOADER))
    except yaml.YAMLError as exc:
        raise BadInput(f"{source}: not valid YAML: {' '.join(str(exc).split())}") from None
    docs: list[Doc] = []
    for index, doc in enumerate(loaded):
        if doc is None:
            continue
        if not isinstance(doc, dict) or "kind" not in doc or "apiVersion" not in doc:
            raise BadInput(f"{source}: document {index + 1} is not a Kubernetes object")
        if doc["kind"].endswith("List") and isinstance(doc.get("items"), list):
            docs.extend(doc["items"])
        else:
            docs.append(doc)
    return docs


def apply_order(docs: Sequence[Doc]) -> list[Doc]:
    """CRDs, then Namespaces, then the rest; render order within each group."""
    def rank(doc: Doc) -> int:
        kind = doc.get("kind", "")
        return FIRST_KINDS.index(kind) if kind in FIRST_KINDS else len(FIRST_KINDS)

    return sorted(docs, key=rank)  # sorted() is stable


def images(docs: Iterable[Mapping[str, Any]]) -> list[str]:
    """Every container image a set of objects runs, in first-seen order."""
    found: list[str] = []

    def walk(spec: Mapping[str, Any]) -> None:
        for key in ("initContainers", "containers", "ephemeralContainers"):
            for c in spec.get(key) or []:
                image = c.get("image")
                if image and image not in found:
                    found.append(image)

    for doc in docs:
        spec = doc.get("spec") or {}
        kind = doc.get("kind")
        if kind == "Pod":
            walk(spec)
        elif kind == "CronJob":
            job = (spec.get("jobTemplate") or {}).get("spec") or {}
            walk((job.get("template") or {}).get("spec") or {})
        elif isinstance(spec.get("template"), dict):
            walk((spec["template"].get("spec")) or {})
    return found


class Applier(Protocol):
    def apply(self, doc: Mapping[str, Any]) -> dict[str, Any]: ...
    def get(self, api_version: str, kind: str, name: str,
            namespace: str | None = None) -> dict[str, Any] | None: ...


def apply_documents(kube: Applier, docs: Sequence[Doc], *, crd_timeout: float | str = "crd",
                    on_applied: Callable[[Doc], None] | None = None,
                    api_errors: tuple[type[BaseException], ...] = ()) -> list[str]:
    """Apply ``docs`` in :func:`apply_order`; wait for CRDs before the rest.

    Returns the ids applied. ``api_errors`` are the exception types that mean the
    server refused an object (the kubernetes ApiException in real use).
    """
    ordered = apply_order(docs)
    crds = [d for d in ordered if d.get("kind") == "CustomResourceDefinition"]
    rest = [d for d in ordered if d.get("kind") != "CustomResourceDefinition"]
    applied: list[str] = []

    def one(doc: Doc) -> None:
        try:
            kube.apply(doc)
        except api_errors as exc:
            raise ApplyError(f"apply {object_id(doc)} refused: {api_message(exc)}") from None
        applied.append(object_id(doc))
        if on_applied:
            on_applied(doc)

    for doc in crds:
        one(doc)
    if crds:
        wait_for_crds(kube, crds, timeout=crd_timeout)
    for doc in rest:
        one(doc)
    return applied


def wait_for_crds(kube: Applier, crds: Sequence[Doc], *, timeout: float | str = "crd") -> None:
    names = [d["metadata"]["name"] for d in crds]

    def established() -> Poll[None]:
        pending = []
        for name in names:
            obj = kube.get("apiextensions.k8s.io/v1", "CustomResourceDefinition", name)
            verdict = crd_readiness(obj or {})
            if verdict.failed:
                raise ApplyError(f"CustomResourceDefinition/{name}: {verdict.reason}")
            if not verdict.ready:
                pending.append(f"{name}: {verdict.reason if obj else 'not found'}")
        return Poll(not pending, state="; ".join(pending[:3]) + (
            f" (+{len(pending) - 3} more)" if len(pending) > 3 else ""))

    wait_until(established, what=f"{len(names)} CRD(s) Established", timeout=timeout, interval=1.0)


def api_message(exc: BaseException) -> str:
    """The ``message`` of a Kubernetes Status in an ApiException body, else its text."""
    body = getattr(exc, "body", None)
    if body:
        try:
            status = yaml.safe_load(body)
            if isinstance(status, dict) and status.get("message"):
                return " ".join(str(status["message"]).split())[:400]
        except yaml.YAMLError:
            pass
    return " ".join(str(getattr(exc, "reason", None) or exc).split())[:400]
