"""The plan for gating a large file namespace by namespace: a quick pass over its text
finds each document's place (bytes, first line, object position) and guesses its kind
and the namespace it belongs to, then cuts the documents into batches of whole
namespaces.

The guesses come from the text alone (``kind:`` at the top level, ``namespace:`` or a
Namespace's ``name:`` one level under ``metadata:``). They need not be right: each
object is checked against its guess when it is parsed (:func:`belongs`), and a wrong
guess abandons the plan. Anything the pass cannot place (a ``List``, a document without
``kind:``, other line breaks than ``\\n``, a directive) means no plan, and says why.
"""

from __future__ import annotations

import bisect
import codecs
import re
from dataclasses import dataclass, field
from pathlib import Path

from tootcheck.policy.bundle import CLUSTER_SCOPED, K8sObject
from tootcheck.policy.fastparse import PYYAML_ONLY
from tootcheck.policy.splitparse import beside_a_worker, split_point

SHARED = ""  # the group of cluster-scoped objects (Namespaces aside): in every batch
BATCH_OBJECTS = 400  # objects parsed and evaluated at a time (whole namespaces)
MAX_SHARED_SHARE = 0.05  # more cluster-scoped objects than this share: no plan
_BLOCK = 4 << 20
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9]*")
_TOP = re.compile(r"\n(?=[^ \t\n#])")  # a line at the top level
_CONTENT = re.compile(r"\n[ \t]*[^ \t\n#]")  # a line with content


@dataclass(slots=True)  # one per document: made fast (not frozen)
class Doc:
    """One document that holds an object."""

    start: int  # byte offsets in the file
    end: int
    line0: int  # line breaks before it
    position: int  # the object's position in the file (its ``doc``)
    kind: str
    group: str  # its namespace (a Namespace: its name); SHARED: cluster-scoped


@dataclass
class Plan:
    docs: list[Doc]
    shared: list[Doc]  # in every batch, evaluated once
    batches: list[list[Doc]] = field(default_factory=list)  # each in file order


def group_of(kind: str, namespace: str | None, name: str) -> str:
    """The group an object belongs to, as :class:`Doc.group` (from the parsed object)."""
    if kind == "Namespace":
        return name
    if kind in CLUSTER_SCOPED:
        return SHARED
    return namespace or ""


def belongs(obj: K8sObject, doc: Doc) -> bool:
    """Whether the parsed object is what the plan guessed for its document."""
    return obj.kind == doc.kind and group_of(obj.kind, obj.namespace, obj.name) == doc.group


def _value(text: str, at: int) -> str:
    """The scalar on the rest of the line from ``at``: a comment cut, quotes taken off
    (a guess: the parsed object is checked against it)."""
    end = text.find("\n", at)
    value = text[at:end if end >= 0 else len(text)].split(" #", 1)[0].strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1]
    return value


def _found(text: str, needle: str, lo: int, hi: int) -> list[int]:
    """Where ``needle`` occurs in ``text[lo:hi]`` (str.find: scanned at memchr speed)."""
    out = []
    at = text.find(needle, lo, hi)
    while at >= 0:
        out.append(at)
        at = text.find(needle, at + 1, hi)
    return out


def _meta(text: str, at: int, hi: int, key: str) -> str | None:
    """``key``'s value one level under the ``metadata:`` line (``at``: its line break)."""
    first = _CONTENT.search(text, at, hi)
    if first is None:
        return None
    indent = first.group(0)[1:-1]
    if not indent or indent.strip():
        return None
    hit = text.find(f"\n{indent}{key}:", at, hi)
    if hit < 0 or _TOP.search(text, at, hit) is not None:  # not under metadata
        return None
    return _value(text, hit + 2 + len(indent) + len(key))


class NoPlan(Exception):
    """Why the file cannot be planned."""


def _guesses(text: str, starts: list[int], ends: list[int],
             default_namespace: str) -> list[tuple[str, str] | None]:
    """(kind, group) of each document in ``text`` (None: empty); NoPlan when one
    cannot be placed."""
    hi = ends[-1]
    text_kinds: dict[int, list[str]] = {}
    for at in _found(text, "\nkind:", 0, hi):
        text_kinds.setdefault(bisect.bisect_right(starts, at) - 1, []).append(
            _value(text, at + 6))
    if text.startswith("kind:"):
        text_kinds.setdefault(0, []).insert(0, _value(text, 5))
    metas: dict[int, int] = {}  # document -> the line break ending its metadata: line
    for at in _found(text, "\nmetadata:\n", 0, hi):
        i = bisect.bisect_right(starts, at) - 1
        if i in metas:
            raise NoPlan("a document has two top-level metadata: lines")
        metas[i] = at + 10
    out: list[tuple[str, str] | None] = []
    for i, (a, b) in enumerate(zip(starts, ends, strict=True)):
        kinds = text_kinds.get(i)
        if kinds is None:
            if _CONTENT.search(text, a + 3 if text.startswith("---", a) else a, b):
                raise NoPlan("a document has no top-level kind: line")
            out.append(None)
            continue
        if len(kinds) != 1 or not _NAME.fullmatch(kinds[0]):
            raise NoPlan(f"a document's kind is not one plain word ({kinds[0]!r})")
        if kinds[0].endswith("List"):
            raise NoPlan(f"it holds a {kinds[0]}")
        kind = kinds[0]
        meta = metas.get(i)
        if kind == "Namespace":
            name = _meta(text, meta, b, "name") if meta is not None else None
            if not name:
                raise NoPlan("a Namespace's name is not a plain line under metadata:")
            out.append((kind, name))
        elif kind in CLUSTER_SCOPED:
            out.append((kind, SHARED))
        else:
            namespace = _meta(text, meta, b, "namespace") if meta is not None else None
            out.append((kind, namespace or default_namespace))
    return out


def read_plan(path: Path, default_namespace: str, *, workers: int = 1) -> Plan | str:
    """The file's plan, or why it cannot be planned (then gate it whole). With two
    ``workers`` a forked worker reads the second half of the file; if it fails (or
    finds a reason to give up) its half is read here, for the same reason."""
    try:
        found = split_point(path, path.stat().st_size) if workers > 1 else None
        if found is None:
            return batched(documents(path, default_namespace))
        offset, _, lines = found
        head, tail = beside_a_worker(lambda: documents(path, default_namespace, 0, offset),
                                     documents, (path, default_namespace, offset, None, lines))
        if tail is None:
            tail = documents(path, default_namespace, offset, None, lines)
        for d in tail:
            d.position += len(head)
        return batched(head + tail)
    except NoPlan as exc:
        return str(exc)
    except (OSError, UnicodeError) as exc:  # worded again when it is gated whole
        return f"cannot read it: {exc}"


def documents(path: Path, default_namespace: str, start: int = 0, end: int | None = None,
              line: int = 0) -> list[Doc]:
    """The documents of bytes ``start``..``end`` (a document boundary, ``line`` line
    breaks before it) that hold an object, positions counted from 0 there; NoPlan (or
    OSError, UnicodeError) when one cannot be placed."""
    docs: list[Doc] = []
    decoder = codecs.getincrementaldecoder("utf-8")()
    pending = ""  # text not yet cut into documents
    at_byte, left = start, (end - start if end is not None else -1)
    final = False
    with path.open("rb") as f:
        f.seek(start)
        while not final:
            chunk = f.read(_BLOCK if left < 0 else min(_BLOCK, left))
            left -= len(chunk)
            final = not chunk
            text = decoder.decode(chunk, final=final)
            if any(c in text for c in PYYAML_ONLY) or "\n%" in text or text.startswith("%"):
                # PyYAML alone (a directive across blocks fails to parse)
                raise NoPlan("other line breaks than \\n, a byte order mark or a directive")
            pending += text
            starts = [0] + [at + 1 for at in _found(pending, "\n---", 0, len(pending))
                            if pending[at + 4:at + 5] in ("", " ", "\t", "\n")]
            ends = [*starts[1:], len(pending)]
            if not final:  # the last document may go on in the next block
                starts, ends = starts[:-1], ends[:-1]
            if not starts:
                continue
            guesses = _guesses(pending, starts, ends, default_namespace)
            plain = pending.isascii()
            for a, b, guess in zip(starts, ends, guesses, strict=True):
                size = b - a if plain else len(pending[a:b].encode())
                if guess is not None:
                    docs.append(Doc(at_byte, at_byte + size, line, len(docs), *guess))
                at_byte += size
                line += pending.count("\n", a, b)
            pending = pending[ends[-1]:]
    return docs


def batched(docs: list[Doc]) -> Plan:
    """The plan of a file's documents; NoPlan when too many are cluster-scoped."""
    shared = [d for d in docs if d.group == SHARED]
    if len(shared) > MAX_SHARED_SHARE * len(docs):
        raise NoPlan(f"{len(shared):,} of its {len(docs):,} objects are cluster-scoped "
                      f"(more than {MAX_SHARED_SHARE:.0%})")
    groups: dict[str, list[Doc]] = {}
    for d in docs:
        if d.group != SHARED:
            groups.setdefault(d.group, []).append(d)
    plan = Plan(docs, shared)
    batch: list[Doc] = []
    for members in groups.values():
        batch.extend(members)
        if len(batch) >= BATCH_OBJECTS:
            plan.batches.append(sorted(batch, key=lambda d: d.position))
            batch = []
    if batch:
        plan.batches.append(sorted(batch, key=lambda d: d.position))
    return plan
