"""A faster parse of plain manifests: each document that a text check proves plain is
built by ``oryaml`` (dicts and lists made in native code); every other document is
parsed by PyYAML as before (``bundle._parse``), so both give the same Python objects.

Why they agree: ``oryaml`` is serde_yaml over ``unsafe-libyaml``, libyaml 0.2.5
translated to Rust, the scanner and parser under PyYAML's C loader. The two read the
same tokens and scalar texts; they differ only in what they make of them: a *plain*
scalar is resolved by YAML 1.1 in PyYAML (``yes``/``on``, ``0755`` octal, ``1_000``,
``12:30``, dates) and by serde_yaml's 1.2 rules (``0o17``, ``1e3``, leading zeros as
decimals); tags, anchors and aliases, merge keys (``<<``), ``=`` and duplicate keys
(PyYAML: last wins; oryaml: an error) differ too. A document goes to oryaml only when
no line of it may hold such a thing: a superset check per line (``_RISKY``), memoised on
the line's text, since manifests repeat their lines. Plain numbers pass only where
both read the same value (``-?(0|[1-9][0-9]{0,17})(\\.[0-9]+)?``); quoted and block
scalars are strings in both. Whatever oryaml rejects, and every document that is not
a plain object (a ``List``, not a mapping, no name, a flow mapping as in JSON, whose
span PyYAML ends at its bracket), goes to PyYAML; an error there,
or a file with other line breaks than ``\\n`` or a byte order mark, makes the caller
parse the range with PyYAML alone, so errors read as they did.

An object keeps its text span and line as PyYAML's would (the first content line of
its document), so field lines are found by composing that span again, as before.
``tests/policy/test_fastparse.py`` compares both paths on every committed YAML file and
on generated mutations.
"""

from __future__ import annotations

import bisect
import codecs
import itertools
import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

try:
    import oryaml
except ImportError:  # an install without it parses everything with PyYAML
    oryaml = None  # type: ignore[assignment]

from tootcheck.errors import BadInput
from tootcheck.policy.bundle import (
    INTERNED_LEN,
    K8sObject,
    Objects,
    SourceText,
    TextSpan,
    _Loader,
    _may_anchor,
    _parse,
    collector_paused,
)
from tootcheck.redaction import own_secret_values, secret_setting_values

_BLOCK = 4 << 20  # bytes read at a time (the text is not held whole)
_TERM = r"[ \t]*(?:$|[ \t]#|:(?:[ \t]|$)|[,\[\]{}])"  # what may end a plain scalar
_SAME = r"-?(?:0|[1-9][0-9]{0,17})(?:\.[0-9]+)?" + _TERM  # numbers both read alike
_NUMBERS = "|".join((
    # PyYAML's int, float (YAML 1.1, sexagesimal included) ...
    r"[-+]?0b[0-1_]+|[-+]?0[0-7_]+|[-+]?(?:0|[1-9][0-9_]*)|[-+]?0x[0-9a-fA-F_]+",
    r"[-+]?[1-9][0-9_]*(?::[0-5]?[0-9])+",
    r"[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+][0-9]+)?|\.[0-9_]+(?:[eE][-+][0-9]+)?",
    r"[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\.[0-9_]*|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN)",
    # ... and serde_yaml's int and float (Rust's f64 grammar; .inf/.nan)
    r"[-+]?(?:[0-9]+|0x[0-9a-fA-F]+|0o[0-7]+|0b[01]+)",
    r"[-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?",
    r"[-+]?\.(?:inf|Inf|INF|nan|NaN|NAN)",
))
# A line that may hold a plain scalar the two read differently, or a tag, anchor,
# alias, complex key, directive, document end or content on the "---" line. A plain
# scalar starts at the line's start or after a space, tab, "[", "{", "," or ":" (JSON's
# {"a":1}): every such place is looked at (a superset).
_RISKY = re.compile(
    r"(?:^|(?<=[ \t\[{,:]))(?:"
    r"(?!" + _SAME + r")(?:" + _NUMBERS + r")" + _TERM
    + r"|[0-9]{4}-[0-9][0-9]?-[0-9][0-9]?"  # PyYAML's timestamps (a line may continue)
    + r"|(?:yes|Yes|YES|no|No|NO|on|On|ON|off|Off|OFF|=|<<)" + _TERM
    + r"|[!&*]|\?(?:[ \t]|$))"
    r"|^(?:%|\.\.\.|---[ \t]+[^ \t#])|[\]}][ \t]*:(?:[ \t]|$)|\t")
# A line whose value is one quoted scalar: the quote follows ": ", where a scalar starts
# (in a block or flow mapping), and the line ends after it (or a comment).
_QUOTED_VALUE = re.compile(
    r"""([^"'\n]*?:[ \t]+)(?:"(?:[^"\\\n]|\\.)*"|'(?:[^'\n]|'')*')[ \t]*(?:#.*)?""")
# Other line breaks than "\n", and a byte order mark: text holding one is PyYAML's alone.
PYYAML_ONLY = ("\r", "\x85", "\u2028", "\u2029", "\ufeff")
_DOC = re.compile(r"\n---(?=[ \t\n]|\Z)")
# The "---" line, blank and comment lines before a document's first content.
_LEAD = re.compile(r"(?:---[ \t]*(?:#[^\n]*)?(?:\n|\Z))?(?:[ \t]*(?:#[^\n]*)?\n)*")
_INDENT = re.compile(r" *")
_SAFE_LINES: set[str] = set()  # lines found plain (memo, bounded; one file at a time)
_MAX_SAFE = 100_000
_intern = sys.intern


class _Fallback(Exception):
    """The range must be parsed by PyYAML alone (an error, or text it cannot split)."""


def parse_range(path: Path, start: int, end: int | None, text: SourceText, source: str,
                default_namespace: str, artifact: str) -> Objects | None:
    """The objects of bytes ``start``..``end`` (None: to the end) of ``path``, spans and
    lines counted from ``start``, with the values of their secret-valued settings (what
    ``tootcheck.redaction.secret_setting_values`` finds, in its order); or None: then
    parse the range with PyYAML (also when oryaml is not installed, or
    ``TOOTCHECK_FAST_YAML=0`` says not to use it)."""
    if oryaml is None or os.environ.get("TOOTCHECK_FAST_YAML") == "0":
        return None
    found: list[str] = []
    try:
        with collector_paused():
            return Objects(_objects(path, start, end, text, source, default_namespace,
                                    artifact, found), found)
    except (_Fallback, OSError, UnicodeError):
        return None
    finally:
        forget_lines()  # not held while the rules run


def document_objects(text: str, line0: int, source: str, default_namespace: str,
                     found: list[str]) -> list[K8sObject] | None:
    """The objects of whole documents of a file, whose first line is line ``line0``
    (from 0) of it; their spans are within ``text``, which they keep. The values of
    their secret-valued settings go to ``found``. None: the file needs PyYAML's reading.
    Their strings are not interned: the stream holds a batch's objects only while the
    rules run, and interning rebuilds every mapping (about half as much CPU again as
    oryaml's read; the walk for secret settings alone costs a fifth of that)."""
    if any(c in text for c in PYYAML_ONLY):
        return None
    try:
        with collector_paused():
            return list(_block_objects(text, 0, line0, SourceText(text=text), source,
                                       default_namespace, "", found, intern=False))
    except _Fallback:
        return None


def forget_lines() -> None:
    """Drop the memo of lines found plain (once a file is parsed)."""
    _SAFE_LINES.clear()


def _blocks(path: Path, start: int, end: int | None) -> Iterator[str]:
    """The range's text in pieces that end at a document boundary."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    pending = ""
    with path.open("rb") as f:
        f.seek(start)
        left = end - start if end is not None else sys.maxsize
        while left > 0:
            chunk = f.read(min(_BLOCK, left))
            if not chunk:
                break
            left -= len(chunk)
            pending += decoder.decode(chunk)
            cut = _last_boundary(pending)
            if cut > 0:
                yield pending[:cut]
                pending = pending[cut:]
        pending += decoder.decode(b"", final=True)
    if pending:
        yield pending


def _last_boundary(text: str) -> int:
    """Where the last "---" line that surely starts a document begins (-1: none)."""
    at = len(text)
    while (at := text.rfind("\n---", 0, at)) >= 0:
        if text[at + 4:at + 5] in (" ", "\t", "\n"):
            return at + 1
    return -1


def _objects(path: Path, start: int, end: int | None, text: SourceText, source: str,
             default_namespace: str, artifact: str, found: list[str]) -> Iterator[K8sObject]:
    """The range's objects; the values of their secret-valued settings go to ``found``."""
    chars = lines = 0
    count = 0
    for block in _blocks(path, start, end):
        if any(c in block for c in PYYAML_ONLY):
            raise _Fallback
        for obj in _block_objects(block, chars, lines, text, source, default_namespace,
                                  artifact, found):
            obj.doc = count
            count += 1
            yield obj
        chars += len(block)
        lines += block.count("\n")


def _block_objects(block: str, chars: int, lines: int, text: SourceText, source: str,
                   default_namespace: str, artifact: str, found: list[str],
                   intern: bool = True) -> Iterator[K8sObject]:
    starts = [0] + [m.start() + 1 for m in _DOC.finditer(block)]
    ends = [*starts[1:], len(block)]
    counts = [block.count("\n", a, b) for a, b in zip(starts, ends, strict=True)]
    risky = _risky_docs(block, counts)
    line = lines
    pending: tuple[int, int] | None = None  # (start, line) of documents left to PyYAML
    for i, (a, b) in enumerate(zip(starts, ends, strict=True)):
        doc = block[a:b]
        data = None if i in risky else _load(doc)
        if data is not None:
            lead = _LEAD.match(doc)
            at = lead.end() if lead is not None else 0
            column = _INDENT.match(doc, at).end() - at  # type: ignore[union-attr]
            at += column
            if doc[at:at + 1] in ("{", "["):  # a flow (JSON) document: PyYAML's span
                data = None                     # ends at its bracket, not the document's
        if data is not None:
            if pending is not None:  # the documents before, in one PyYAML parse
                yield from _by_pyyaml(block[pending[0]:a], chars + pending[0], pending[1],
                                      text, source, default_namespace, artifact, found)
                pending = None
            line0 = line + doc.count("\n", 0, at)
            if intern:
                data = _shared(data, found)
            else:
                found.extend(secret_setting_values(data))
            yield K8sObject(data=data, source=source, line=line0 + 1,
                            span=TextSpan(text, chars + a + at, chars + b, column, line0),
                            default_namespace=default_namespace, artifact=artifact)
        elif pending is None and (i in risky or not _empty(doc)):
            pending = (a, line)
        line += counts[i]
    if pending is not None:
        yield from _by_pyyaml(block[pending[0]:], chars + pending[0], pending[1], text,
                              source, default_namespace, artifact, found)


def _risky_docs(block: str, counts: list[int]) -> set[int]:
    """Which documents (by position; ``counts`` are their line breaks) hold a line that
    is not plain."""
    lines = block.split("\n")
    new = set(lines)
    new -= _SAFE_LINES
    bad = {line for line in new if _is_risky(line)}
    if len(_SAFE_LINES) < _MAX_SAFE:
        _SAFE_LINES.update(new - bad)
    if not bad:
        return set()
    first_lines = list(itertools.accumulate(counts[:-1], initial=0))
    return {bisect.bisect_right(first_lines, i) - 1
            for i in [i for i, line in enumerate(lines) if line in bad]}


def _is_risky(line: str) -> bool:
    """Whether ``line`` may hold what the two read differently (``_RISKY``). A value
    that is one quoted scalar (``key: "..."``, ``- key: '...'``) is a string to both:
    only what precedes it is looked at."""
    quoted = _QUOTED_VALUE.fullmatch(line)
    return _RISKY.search(quoted.group(1) if quoted is not None else line) is not None


def _load(doc: str) -> dict[str, Any] | None:
    """The document as oryaml builds it, when it is a plain object (else None)."""
    try:
        data = oryaml.loads(doc)
    except Exception:  # anything oryaml rejects goes to PyYAML
        return None
    if not isinstance(data, dict) or not data.get("apiVersion") or not data.get("kind"):
        return None
    kind = data["kind"]
    if not isinstance(kind, str) or kind.endswith("List"):
        return None
    meta = data.get("metadata")
    if not isinstance(meta, dict) or not (meta.get("name") or meta.get("generateName")):
        return None
    return data


def _empty(doc: str) -> bool:
    """Whether the document holds nothing but its "---" line, blanks and comments."""
    lead = _LEAD.match(doc)
    return lead is not None and not doc[lead.end():].strip()


def _by_pyyaml(doc: str, chars: int, lines: int, text: SourceText, source: str,
               default_namespace: str, artifact: str, found: list[str]) -> list[K8sObject]:
    try:
        objects = _parse(_Loader(doc), text, _may_anchor(doc), source, default_namespace,
                         artifact)
    except BadInput:
        raise _Fallback from None  # the error is worded by a parse of the whole range
    found.extend(secret_setting_values([o.data for o in objects]))
    for obj in objects:
        obj.line += lines
        if obj.span is not None:
            obj.span.start += chars
            obj.span.end += chars
            obj.span.line0 += lines
    return objects


def _shared(value: dict[Any, Any], found: list[str]) -> dict[Any, Any]:
    """``value`` with its keys and short strings interned, as ``bundle._build`` does
    (the same names and values recur in every object: memory). The values of its
    secret-valued settings go to ``found``, in the order of
    ``tootcheck.redaction.secret_setting_values`` (children first): one walk for both."""
    out = {}
    for k, v in value.items():
        cls = v.__class__
        if cls is str:
            if len(v) <= INTERNED_LEN:
                v = _intern(v)
        elif cls is dict:
            v = _shared(v, found)
        elif cls is list:
            v = _shared_list(v, found)
        out[_intern(k) if k.__class__ is str else k] = v
    own_secret_values(out, found)
    return out


def _shared_list(items: list[Any], found: list[str]) -> list[Any]:
    return [(_intern(v) if len(v) <= INTERNED_LEN else v) if v.__class__ is str
            else _shared(v, found) if v.__class__ is dict
            else _shared_list(v, found) if v.__class__ is list else v
            for v in items]
