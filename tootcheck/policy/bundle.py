"""Objects under test: rendered or live Kubernetes objects as plain dicts, with
where each came from (file and line) so reports can point at them.

YAML is parsed with PyYAML's C loader (YAML 1.1, the dialect kubectl's
sigs.k8s.io/yaml reads, so ``yes``/``on`` mean what they mean to the API server).
The composed node tree of each document is kept so a finding's field path can be
mapped back to its line.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import yaml

from tootcheck.errors import BadInput
from tootcheck.model import ObjectRef

PathPart = str | int
FieldPath = tuple[PathPart, ...]

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
MAX_EXPANDED_NODES = 1_000_000  # per document, aliases expanded
_ANCHOR = re.compile(r"(?:^|[\s\[{,])&[^\s\[\]{},&]")  # a superset of YAML anchors

# Kinds that are not namespaced (the ones this suite can meet).
CLUSTER_SCOPED = frozenset({
    "Namespace", "Node", "PersistentVolume", "StorageClass", "CSIDriver", "CSINode",
    "VolumeAttachment", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition",
    "IngressClass", "PriorityClass", "RuntimeClass", "APIService",
    "ValidatingWebhookConfiguration", "MutatingWebhookConfiguration",
    "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding", "ClusterIssuer",
    "GatewayClass", "IPAddressPool", "ClusterTriggerAuthentication",
})


def fmt_path(path: Sequence[PathPart]) -> str:
    """``('spec', 'containers', 0, 'image')`` -> ``spec.containers[0].image``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def get_path(data: Any, path: Iterable[PathPart]) -> Any:
    for part in path:
        try:
            data = data[part]
        except (KeyError, IndexError, TypeError):
            return None
    return data


@dataclass(eq=False)
class K8sObject:
    """One object: its data, its source and (for files) its line."""

    data: dict[str, Any]
    source: str  # repo-relative file, "<stdin>", a kustomize dir, or "live:<ctx>/<ns>"
    doc: int = 0  # position of the object in its source
    line: int = 0  # 1-based first line of the object, 0 when unknown (live)
    node: Any = None  # PyYAML node of the object, for field lines
    default_namespace: str = "mastodon"
    live_status: dict[str, Any] = field(default_factory=dict)  # kept from live status
    artifact: str = ""  # file a report should point at ("" = source)

    @cached_property
    def kind(self) -> str:
        return str(self.data.get("kind", ""))

    @cached_property
    def api_version(self) -> str:
        return str(self.data.get("apiVersion", ""))

    @cached_property
    def group(self) -> str:
        av = self.api_version
        return av.split("/", 1)[0] if "/" in av else ""

    @cached_property
    def meta(self) -> dict[str, Any]:
        meta = self.data.get("metadata")
        return meta if isinstance(meta, dict) else {}

    @property
    def name(self) -> str:
        return str(self.meta.get("name", "") or self.meta.get("generateName", "") or "?")

    @cached_property
    def declared_namespace(self) -> str | None:
        ns = self.meta.get("namespace")
        return str(ns) if ns else None

    @cached_property
    def namespace(self) -> str | None:
        """The namespace the object lands in (the default one if it names none)."""
        if self.kind in CLUSTER_SCOPED:
            return None
        return self.declared_namespace or self.default_namespace

    @property
    def labels(self) -> dict[str, str]:
        labels = self.meta.get("labels")
        return labels if isinstance(labels, dict) else {}

    @property
    def annotations(self) -> dict[str, str]:
        ann = self.meta.get("annotations")
        return ann if isinstance(ann, dict) else {}

    @cached_property
    def ref(self) -> ObjectRef:
        return ObjectRef(kind=self.kind, name=self.name, namespace=self.namespace,
                         api_version=self.api_version)

    @property
    def id(self) -> str:
        return str(self.ref)

    def get(self, *path: PathPart) -> Any:
        return get_path(self.data, path)

    def line_of(self, path: Sequence[PathPart]) -> int:
        """Line of the deepest existing node on ``path`` (the object's line if none)."""
        node, line = self.node, self.line
        if node is None:
            return line
        for part in path:
            nxt = None
            if isinstance(node, yaml.MappingNode) and isinstance(part, str):
                for key, value in node.value:
                    if getattr(key, "value", None) == part:
                        line = key.start_mark.line + 1
                        nxt = value
                        break
            elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) \
                    and 0 <= part < len(node.value):
                nxt = node.value[part]
                line = nxt.start_mark.line + 1
            if nxt is None:
                break
            node = nxt
        return line


class Bundle:
    """The objects one policy run looks at, with lookups rules share."""

    def __init__(self, objects: Iterable[K8sObject], *, mode: str = "offline",
                 label: str = "", sources: Sequence[str] = ()) -> None:
        self.objects: list[K8sObject] = list(objects)
        self.mode = mode  # "offline" | "live"
        self.label = label  # suffix on ids when several bundles are gated together
        self.sources = tuple(sources) or tuple(dict.fromkeys(o.source for o in self.objects))
        self._by_kind: dict[str, list[K8sObject]] = defaultdict(list)
        self._by_key: dict[tuple[str, str | None, str], K8sObject] = {}
        self.duplicates: list[tuple[K8sObject, K8sObject]] = []
        for obj in self.objects:
            self._by_kind[obj.kind].append(obj)
            key = (obj.kind, obj.namespace, obj.name)
            if key in self._by_key:
                self.duplicates.append((self._by_key[key], obj))
            else:
                self._by_key[key] = obj
        self.cache: dict[Any, Any] = {}  # per-bundle memo for shared derived data

    def __len__(self) -> int:
        return len(self.objects)

    def __iter__(self) -> Iterator[K8sObject]:
        return iter(self.objects)

    def of_kind(self, *kinds: str) -> list[K8sObject]:
        if len(kinds) == 1:
            return self._by_kind.get(kinds[0], [])
        return [o for k in kinds for o in self._by_kind.get(k, [])]

    def in_namespace(self, kind: str, namespace: str | None) -> list[K8sObject]:
        """Objects of ``kind`` in ``namespace`` (indexed once per kind)."""
        key = ("by-namespace", kind)
        index = self.cache.get(key)
        if index is None:
            index = {}
            for obj in self.of_kind(kind):
                index.setdefault(obj.namespace, []).append(obj)
            self.cache[key] = index
        return list(index.get(namespace, []))

    def find(self, kind: str, namespace: str | None, name: str) -> K8sObject | None:
        return self._by_key.get((kind, namespace, name))

    @property
    def kinds(self) -> set[str]:
        return set(self._by_kind)


# ------------------------------------------------------------------ parsing


def _not_object(source: str, doc: int, why: str) -> BadInput:
    return BadInput(f"{source}: document {doc + 1} is not a Kubernetes object ({why})")


def parse_stream(text: str, source: str, *, default_namespace: str = "mastodon",
                 artifact: str = "") -> list[K8sObject]:
    """Every Kubernetes object in a YAML (or JSON) stream; ``kind: List`` is expanded.

    Raises BadInput (one line) when the text is not YAML or a document is not an object.
    """
    objects: list[K8sObject] = []
    try:
        loader = _Loader(text)
    except UnicodeError as exc:  # e.g. undecodable bytes from stdin (surrogate escapes)
        raise BadInput(f"{source}: not UTF-8 text: {getattr(exc, 'reason', exc)}") from None
    doc = -1
    anchors = _ANCHOR.search(text) is not None  # without anchors nothing can be aliased
    try:
        while loader.check_node():
            node = loader.get_node()
            doc += 1
            if anchors and _expanded_size(node, MAX_EXPANDED_NODES) > MAX_EXPANDED_NODES:
                raise BadInput(f"{source}: document {doc + 1} expands its aliases to more than "
                               f"{MAX_EXPANDED_NODES:,} nodes (excessive aliasing)")
            data = loader.construct_document(node)
            if data is None:
                continue
            for item, item_node in _expand(data, node, source, doc):
                objects.append(K8sObject(
                    data=item, source=source, doc=len(objects),
                    line=item_node.start_mark.line + 1 if item_node is not None else 1,
                    node=item_node, default_namespace=default_namespace, artifact=artifact))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise BadInput(f"{source}: not valid YAML{where}: {problem}") from None
    except (TypeError, ValueError) as exc:  # e.g. unhashable keys
        raise BadInput(f"{source}: not valid YAML: {exc}") from None
    finally:
        loader.dispose()
    return objects


def _expanded_size(root: Any, limit: int) -> int:
    """Nodes in the document once every alias is expanded (stops counting past ``limit``).

    An alias is a reference, so a few lines of anchors can stand for billions of nodes
    that validation and messages would then walk; kubectl refuses such documents too."""
    sizes: dict[int, int] = {}
    open_: set[int] = set()
    stack: list[tuple[Any, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        if isinstance(node, yaml.MappingNode):
            children = [n for pair in node.value for n in pair]
        elif isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        else:
            children = []
        if children_done:
            open_.discard(key)
            sizes[key] = 1 + sum(sizes.get(id(c), 1) for c in children)  # a cycle counts once
            if sizes[key] > limit:
                return sizes[key]
        elif key not in sizes and key not in open_:
            open_.add(key)
            stack.append((node, True))
            stack.extend((c, False) for c in children)
    return sizes.get(id(root), 1)


def _expand(data: Any, node: Any, source: str, doc: int) -> Iterator[tuple[dict[str, Any], Any]]:
    if not isinstance(data, dict):
        raise _not_object(source, doc, f"a {type(data).__name__}, not a mapping")
    if not data.get("apiVersion") or not data.get("kind"):
        raise _not_object(source, doc, "no apiVersion/kind")
    if str(data["kind"]).endswith("List") and isinstance(data.get("items"), list):
        items_node = None
        if isinstance(node, yaml.MappingNode):
            items_node = next((v for k, v in node.value if getattr(k, "value", None) == "items"),
                              None)
        for i, item in enumerate(data["items"]):
            child = items_node.value[i] if isinstance(items_node, yaml.SequenceNode) else None
            yield from _expand(item, child, source, doc)
        return
    meta = data.get("metadata")
    if not isinstance(meta, dict) or not (meta.get("name") or meta.get("generateName")):
        raise _not_object(source, doc, f"{data['kind']} without metadata.name")
    yield data, node
