"""Objects under test: rendered or live Kubernetes objects as plain dicts, with
where each came from (file and line) so reports can point at them.

YAML is parsed with PyYAML's C loader (YAML 1.1, the dialect kubectl's
sigs.k8s.io/yaml reads, so ``yes``/``on`` mean what they mean to the API server);
without libyaml, PyYAML's pure-Python loader does the same, slower. Files are read as
a stream, one document at a time. Each document is composed in C, turned into plain
data without PyYAML's generic constructor where it holds only plain mappings,
sequences and scalars, and its node tree is then dropped: an object keeps where its
text is (a character span), and a finding's field path is mapped back to a line by
composing that span again, only when a report asks for it.

One module of about 540 lines on purpose: the fast loader, the spans and the line
lookup share one parser state; splitting them would expose its internals.
"""

from __future__ import annotations

import contextlib
import gc
import re
import sys
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import cached_property as _locked_cached_property
from pathlib import Path
from typing import Any, TypeVar, overload

import yaml

from tootcheck.errors import BadInput
from tootcheck.model import ObjectRef
from tootcheck.redaction import secret_setting_values

PathPart = str | int
FieldPath = tuple[PathPart, ...]

_BaseLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
LIBYAML = _BaseLoader is not yaml.SafeLoader
_PLAIN_TAGS: dict[str, str] = {}  # plain scalar -> its implicit tag (short scalars only)


class _Loader(_BaseLoader):  # type: ignore[misc,valid-type]
    """The safe loader with its per-scalar tag resolution memoised: a plain scalar's
    implicit tag depends only on its text (there are no path resolvers)."""

    def resolve(self, kind: Any, value: Any, implicit: Any) -> Any:
        if kind is yaml.ScalarNode and implicit[0] and len(value) <= 64:
            tag = _PLAIN_TAGS.get(value)
            if tag is None:
                tag = super().resolve(kind, value, implicit)
                if len(_PLAIN_TAGS) < 100_000:
                    _PLAIN_TAGS[value] = tag
            return tag
        return super().resolve(kind, value, implicit)

    if not _BaseLoader.yaml_path_resolvers:
        # Path resolvers are never registered here, so these per-node hooks (called
        # from C for every node) have nothing to do: make them C callables that ignore
        # their arguments instead of Python methods.
        descend_resolver = staticmethod(slice)
        ascend_resolver = staticmethod(tuple)

MAX_EXPANDED_NODES = 1_000_000  # per document, aliases expanded
# A superset of YAML anchors: "&name" at the start or after a space or [ { ,. The
# patterns start with the literal "&" (a fast scan); what precedes it is looked at after.
_ANCHOR = re.compile(r"&[^\s\[\]{},&]")
_ANCHOR_BEFORE = frozenset(" \t\n\r\x0b\x0c\x85\u2028\u2029\xa0[{,")
# The same over UTF-8 bytes; \x85/\xa8/\xa9 end YAML 1.1's NEL, LS and PS line breaks.
_ANCHOR_BYTES = re.compile(rb"&[^\s\[\]{},&]")
_ANCHOR_BEFORE_BYTES = frozenset(b" \t\n\r\x0b\x0c\x85\xa8\xa9\xa0[{,")


def _may_anchor(text: str | bytes) -> bool:
    """Whether ``text`` may hold an anchor (a superset: it never misses one)."""
    if isinstance(text, bytes):
        return any(m.start() == 0 or text[m.start() - 1] in _ANCHOR_BEFORE_BYTES
                   or not text[m.start() - 1:m.start()].isascii()
                   for m in _ANCHOR_BYTES.finditer(text))
    return any(m.start() == 0 or text[m.start() - 1] in _ANCHOR_BEFORE
               or not text[m.start() - 1:m.start()].isascii()
               for m in _ANCHOR.finditer(text))
_CHUNK = 1 << 20

# Kinds that are not namespaced (the ones this suite can meet).
CLUSTER_SCOPED = frozenset({
    "Namespace", "Node", "PersistentVolume", "StorageClass", "CSIDriver", "CSINode",
    "VolumeAttachment", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition",
    "IngressClass", "PriorityClass", "RuntimeClass", "APIService",
    "ValidatingWebhookConfiguration", "MutatingWebhookConfiguration",
    "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding", "ClusterIssuer",
    "GatewayClass", "IPAddressPool", "ClusterTriggerAuthentication",
})


_T = TypeVar("_T")


class cached_property(_locked_cached_property[_T]):
    """functools.cached_property without the lock Python 3.11 takes on every first access
    (removed in 3.12); objects are built and read by one thread."""

    @overload
    def __get__(self, instance: None, owner: type[Any] | None = None) -> cached_property[_T]: ...
    @overload
    def __get__(self, instance: object, owner: type[Any] | None = None) -> _T: ...
    def __get__(self, instance: object, owner: type[Any] | None = None) -> _T | cached_property[_T]:
        if instance is None:
            return self
        assert self.attrname is not None
        value: _T = self.func(instance)
        instance.__dict__[self.attrname] = value
        return value


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
    node: Any = None  # PyYAML node of the object, for field lines (composed on demand)
    span: TextSpan | None = None  # where the object's text is, to compose ``node`` again
    default_namespace: str = "mastodon"
    live_status: dict[str, Any] = field(default_factory=dict)  # kept from live status
    artifact: str = ""  # file a report should point at ("" = source)
    field_lines: dict[FieldPath, int] | None = None  # lines found before the data was dropped

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

    @cached_property  # read by most rules, like ``id`` (which is made from it)
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

    @cached_property
    def id(self) -> str:
        return str(self.ref)

    def get(self, *path: PathPart) -> Any:
        return get_path(self.data, path)

    def line_of(self, path: Sequence[PathPart]) -> int:
        """Line of the deepest existing node on ``path`` (the object's line if none)."""
        if self.field_lines is not None and tuple(path) in self.field_lines:
            return self.field_lines[tuple(path)]
        node, line, shift = self.node, self.line, 0
        if node is None and self.span is not None:
            node = self.node = self.span.compose()
            self.span = None
        if node is None:
            return line
        if getattr(node, "tootcheck_line0", None) is not None:
            shift = node.tootcheck_line0  # composed again from the span: lines from 0
        for part in path:
            nxt = None
            if isinstance(node, yaml.MappingNode) and isinstance(part, str):
                for key, value in node.value:
                    if getattr(key, "value", None) == part:
                        line = key.start_mark.line + 1 + shift
                        nxt = value
                        break
            elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) \
                    and 0 <= part < len(node.value):
                nxt = node.value[part]
                line = nxt.start_mark.line + 1 + shift
            if nxt is None:
                break
            node = nxt
        return line


class Objects(list[K8sObject]):
    """A file's objects and the values of the secret-valued settings in them, collected
    as they were parsed (so the caller need not walk every object again to register them
    with the redactor)."""

    def __init__(self, objects: Iterable[K8sObject], secret_values: list[str]) -> None:
        super().__init__(objects)
        self.secret_values = secret_values


def secret_values_of(objects: Sequence[K8sObject]) -> list[str]:
    """The values of the secret-valued settings in ``objects``, for the redactor: the ones
    collected as they were parsed (:class:`Objects`), else found by a walk over them."""
    if isinstance(objects, Objects):
        return objects.secret_values
    return secret_setting_values([o.data for o in objects])


class OutsideSlice(Exception):
    """A rule asked what only objects outside a :class:`NamespaceSlice` could answer."""


@dataclass(frozen=True)
class NamespaceSlice:
    """A bundle that holds only some namespaces of its input (with every object of
    those, and all cluster-scoped objects): ``held`` of ``known``, all of the input's."""

    held: frozenset[str]
    known: frozenset[str]


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
        self.slice: NamespaceSlice | None = None  # set when it holds some namespaces only

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


class SourceText:
    """A source's text, kept (stdin, a kustomize render) or read again from its file
    the first time a finding needs a line."""

    def __init__(self, text: str | None = None, path: Path | None = None) -> None:
        self._text, self._path = text, path

    def text(self) -> str | None:
        if self._text is None and self._path is not None:
            try:
                self._text = self._path.read_text()
            except (OSError, UnicodeError):
                self._path = None
        return self._text


class TextSpan:
    """An object's characters in its source, to compose its node again."""

    __slots__ = ("column", "end", "line0", "source", "start")

    def __init__(self, source: SourceText, start: int, end: int, column: int,
                 line0: int) -> None:
        self.source, self.start, self.end, self.column, self.line0 = (
            source, start, end, column, line0)

    def compose(self) -> Any:
        """The node, its lines counted from 0 (``tootcheck_line0`` says where that is);
        None when it cannot be composed alone (then findings point at the object)."""
        text = self.source.text()
        if text is None:
            return None
        try:
            loader = _Loader(" " * self.column + text[self.start:self.end])
            try:
                node = loader.get_single_node()
            finally:
                loader.dispose()
        except yaml.YAMLError:
            return None
        if node is not None:
            node.tootcheck_line0 = self.line0
        return node


def parse_stream(text: str, source: str, *, default_namespace: str = "mastodon",
                 artifact: str = "") -> list[K8sObject]:
    """Every Kubernetes object in a YAML (or JSON) stream; ``kind: List`` is expanded.

    Raises BadInput (one line) when the text is not YAML or a document is not an object.
    """
    try:
        loader = _Loader(text)
    except UnicodeError as exc:  # e.g. undecodable bytes from stdin (surrogate escapes)
        raise BadInput(f"{source}: not UTF-8 text: {getattr(exc, 'reason', exc)}") from None
    anchors = _may_anchor(text)  # without anchors nothing can be aliased
    return _parse(loader, SourceText(text=text), anchors, source, default_namespace, artifact)


Halves = Callable[[Path, str, str, str], list[K8sObject] | None]
# bytes start..end (None: to the end) of a file -> its objects, or None (then PyYAML)
Fast = Callable[[Path, int, "int | None", "SourceText", str, str, str], list[K8sObject] | None]


def parse_file(path: Path, source: str, *, default_namespace: str = "mastodon",
               artifact: str = "", halves: Halves | None = None,
               fast: Fast | None = None) -> list[K8sObject]:
    """:func:`parse_stream` over a file, read as a stream (its text is not held).
    ``halves`` may parse a large file on two cores and ``fast`` its plain documents
    faster (:func:`tootcheck.policy.splitparse.parse_file` passes both); None from
    either means: parse with PyYAML, in one piece."""
    try:
        anchors = _has_anchor(path)
        stream = path.open("rb")
    except OSError as exc:
        raise BadInput(f"{source}: cannot read: {exc.strerror}") from None
    except UnicodeError as exc:
        raise BadInput(f"{source}: cannot read: {exc}") from None
    with stream:
        if not LIBYAML:  # the pure-Python reader wants text
            try:
                text = stream.read().decode("utf-8")
            except UnicodeDecodeError as exc:
                raise BadInput(f"{source}: cannot read: {exc}") from None
            return parse_stream(text, source, default_namespace=default_namespace,
                                artifact=artifact)
        if not anchors and halves is not None:  # a large file: its halves on two cores
            parsed = halves(path, source, default_namespace, artifact)
            if parsed is not None:
                return parsed
        kept = SourceText(path=path)
        if not anchors and fast is not None:
            parsed = fast(path, 0, None, kept, source, default_namespace, artifact)
            if parsed is not None:
                return parsed
        return _parse(_Loader(stream), kept, anchors, source, default_namespace, artifact)


def _has_anchor(path: Path) -> bool:
    """Whether the file may hold a YAML anchor; raises UnicodeError for UTF-16 (libyaml
    would decode it, and a manifest must be UTF-8)."""
    with path.open("rb") as f:
        tail = b"\n"
        while chunk := f.read(_CHUNK):
            if tail == b"\n" and chunk[:2] in (b"\xff\xfe", b"\xfe\xff"):
                raise UnicodeError("a UTF-16 byte order mark: manifests are UTF-8")
            if _may_anchor(tail + chunk):
                return True
            tail = chunk[-1:]
    return False


@contextlib.contextmanager
def collector_paused(*, keep: bool = False) -> Iterator[None]:
    """The cyclic garbage collector off for a while, then as it was. For objects made in
    bulk that hold no reference cycles: reference counting frees what is dropped, and
    each collection would only walk all of them again. ``keep``: what is alive then
    lives until the process ends, so it is frozen first (``gc.freeze``), or the
    collector's first pass would walk it all (0.3 s at 100,000 objects)."""
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if keep:
            gc.freeze()
        if collecting:
            gc.enable()


def _parse(loader: Any, text: SourceText, anchors: bool, source: str,
           default_namespace: str, artifact: str) -> list[K8sObject]:
    objects: list[K8sObject] = []
    doc = -1
    # The documents hold no reference cycles (aliases aside): see collector_paused.
    with collector_paused():
        try:
            while loader.check_node():
                node = loader.get_node()
                doc += 1
                if anchors and _expanded_size(node, MAX_EXPANDED_NODES) > MAX_EXPANDED_NODES:
                    raise BadInput(f"{source}: document {doc + 1} expands its aliases to more than "
                                   f"{MAX_EXPANDED_NODES:,} nodes (excessive aliasing)")
                data = _construct(loader, node, anchors)
                if data is None:
                    continue
                for item, item_node in _expand(data, node, source, doc):
                    span = None
                    if item_node is not None:
                        start = item_node.start_mark
                        span = TextSpan(text, start.index, item_node.end_mark.index, start.column,
                                        start.line)
                    objects.append(K8sObject(
                        data=item, source=source, doc=len(objects),
                        line=item_node.start_mark.line + 1 if item_node is not None else 1,
                        span=span, default_namespace=default_namespace, artifact=artifact))
        except yaml.reader.ReaderError as exc:  # bytes that are not UTF-8 text
            raise BadInput(f"{source}: cannot read: {exc.reason} at character "
                           f"{exc.position}") from None
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" at line {mark.line + 1}" if mark is not None else ""
            problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
            raise BadInput(f"{source}: not valid YAML{where}: {problem}") from None
        except (TypeError, ValueError) as exc:  # e.g. unhashable keys
            raise BadInput(f"{source}: not valid YAML: {exc}") from None
        except UnicodeError as exc:  # a file that is not UTF-8
            raise BadInput(f"{source}: not UTF-8 text: {getattr(exc, 'reason', exc)}") from None
        finally:
            loader.dispose()
    return objects


_intern = sys.intern
INTERNED_LEN = 64  # strings up to this long are interned: names and values recur in every object


def interned(value: Any) -> Any:
    """``value``, interned if it is a string short enough (the rule of the parsers)."""
    return _intern(value) if value.__class__ is str and len(value) <= INTERNED_LEN else value
_STR = "tag:yaml.org,2002:str"
_MAP = "tag:yaml.org,2002:map"
_SEQ = "tag:yaml.org,2002:seq"
_MERGE = "tag:yaml.org,2002:merge"
_SCALAR_TAGS = frozenset({"tag:yaml.org,2002:int", "tag:yaml.org,2002:float",
                          "tag:yaml.org,2002:bool", "tag:yaml.org,2002:null",
                          "tag:yaml.org,2002:timestamp", "tag:yaml.org,2002:binary"})


class _Generic(Exception):
    """The document needs PyYAML's generic constructor (merge keys, !!set, complex keys)."""


def _construct(loader: Any, node: Any, anchors: bool) -> Any:
    """The document's data: as PyYAML's SafeConstructor would build it, faster for the
    plain documents Kubernetes manifests are; anything else goes to that constructor."""
    if node is None:
        return None
    if not anchors:  # aliases share nodes (and may form cycles): leave those to PyYAML
        try:
            return _build(node, loader)
        except _Generic:
            pass
    return loader.construct_document(node)


def _build(node: Any, loader: Any) -> Any:
    cls = node.__class__
    tag = node.tag
    if cls is yaml.ScalarNode:
        if tag == _STR:
            value = node.value  # values repeat across objects: one shared string each
            return _intern(value) if len(value) <= INTERNED_LEN else value
        if tag in _SCALAR_TAGS:  # PyYAML's own constructors: same values, same errors
            return loader.yaml_constructors[tag](loader, node)
        raise _Generic
    if cls is yaml.MappingNode:
        if tag != _MAP:
            raise _Generic
        out = {}
        for key_node, value_node in node.value:
            if key_node.__class__ is not yaml.ScalarNode or key_node.tag == _MERGE:
                raise _Generic
            # Keys repeat in every object: one shared string each (memory, not speed).
            key = _intern(key_node.value) if key_node.tag == _STR else _build(key_node, loader)
            out[key] = _build(value_node, loader)
        return out
    if cls is yaml.SequenceNode and tag == _SEQ:
        return [_build(item, loader) for item in node.value]
    raise _Generic


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
