"""Parsing a large manifest file on two cores: this process reads the first half while
a forked worker reads the second, from a document boundary near the middle.

Composing YAML nodes is most of the cost of a big input, and the documents of a stream
are independent (anchors do not cross ``---``), so the halves are parsed apart and
joined: the second half's lines, character offsets and object positions are shifted by
what precedes it. Whenever that shift could be wrong (other line breaks than ``\\n``,
directives, anchors) or the worker fails, the file is parsed in one piece instead, so
errors read exactly as they would have.
"""

from __future__ import annotations

import codecs
import multiprocessing
import os
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from tootcheck.policy.bundle import K8sObject

T = TypeVar("T")
MIN_SPLIT_BYTES = 8 << 20  # below this, starting a worker costs more than it saves
_BOUNDARY = re.compile(rb"\n---(?=[ \t\n])")
_OTHER_BREAKS = ("\r", "\x85", "\u2028", "\u2029")


class _Head:
    """The first ``limit`` bytes of a binary file, as a stream."""

    def __init__(self, f: Any, limit: int) -> None:
        self._f, self._left = f, limit
        self.name = getattr(f, "name", "<file>")

    def read(self, size: int = -1) -> bytes:
        if self._left <= 0:
            return b""
        data: bytes = self._f.read(self._left if size < 0 else min(size, self._left))
        self._left -= len(data)
        return data


def split_point(path: Path, size: int) -> tuple[int, int, int] | None:
    """(byte offset of a ``---`` line near the middle, characters and lines before it),
    or None when the file should be parsed in one piece."""
    with path.open("rb") as f:
        f.seek(size // 2)
        window = f.read(1 << 20)
        m = _BOUNDARY.search(window)
        if m is None:
            return None
        offset = size // 2 + m.start() + 1
        f.seek(0)
        decoder = codecs.getincrementaldecoder("utf-8")()
        chars = lines = 0
        left = offset
        last_line = b""
        while left > 0:
            chunk = f.read(min(1 << 20, left))
            if not chunk:
                return None
            left -= len(chunk)
            # other line breaks or directives: shifting lines is not safe (the ASCII ones are
            # found in the bytes, also across chunks: a "%" that starts a line)
            if b"\r" in chunk or b"\n%" in chunk or (chunk[:1] == b"%" and not last_line):
                return None
            if chunk.isascii() and not decoder.getstate()[0]:  # most manifests: no decoding
                chars += len(chunk)
            else:
                text = decoder.decode(chunk)
                if any(b in text for b in _OTHER_BREAKS):
                    return None
                chars += len(text)
            lines += chunk.count(b"\n")
            cut = chunk.rfind(b"\n")
            last_line = last_line + chunk if cut < 0 else chunk[cut + 1:]
        if decoder.decode(b"", final=True) or last_line:
            return None
    return offset, chars, lines


Parsed = tuple[Any, int, int, int, int, int]  # data, line, span start/end/column/line0


def _parse_tail(path: Path, offset: int, source: str, default_namespace: str,
                artifact: str) -> tuple[list[Parsed], list[str]]:
    """The worker: plain data and numbers back (they pickle several times faster than
    the objects around them), and the secret-valued settings among them."""
    from tootcheck.policy.bundle import SourceText, _Loader, _parse, secret_values_of
    from tootcheck.policy.fastparse import parse_range

    text = SourceText(path=path)
    objects: list[K8sObject] | None = parse_range(path, offset, None, text, source,
                                                  default_namespace, artifact)
    if objects is None:
        with path.open("rb") as f:
            f.seek(offset)
            objects = _parse(_Loader(f), text, False, source, default_namespace, artifact)
    return [(o.data, o.line, *((o.span.start, o.span.end, o.span.column, o.span.line0)
                               if o.span is not None else (-1, -1, 0, 0)))
            for o in objects], secret_values_of(objects)


def parse_file(path: Path, source: str, *, default_namespace: str = "mastodon",
               artifact: str = "") -> list[Any]:
    """:func:`tootcheck.policy.bundle.parse_file`, a large file parsed on two cores."""
    from tootcheck.policy.bundle import parse_file as parse_whole
    from tootcheck.policy.fastparse import parse_range

    return parse_whole(path, source, default_namespace=default_namespace, artifact=artifact,
                       halves=parse_halves, fast=parse_range)


def weighted_cut(weights: list[int], share: float = 0.5) -> int:
    """How many of the items come first so that they weigh ``share`` of the whole (at
    least that share; all of them when there are none)."""
    total, run = sum(weights), 0
    for i, w in enumerate(weights):
        run += w
        if run >= total * share:
            return i + 1
    return len(weights)


def two_cores() -> bool:
    """Whether a second core may take half of the work (``TOOTCHECK_PARSE_WORKERS=1``: no)."""
    return (os.cpu_count() or 1) >= 2 and os.environ.get("TOOTCHECK_PARSE_WORKERS") != "1"


def beside_a_worker(here: Callable[[], T], there: Callable[..., Any],
                    args: tuple[Any, ...]) -> tuple[T, Any]:
    """``here()`` in this process while ``there(*args)`` runs in a worker forked now (it
    sees this process's state); both results, the worker's None if it failed: raised,
    could not send its result, was killed, or did not start sending within
    :func:`worker_bound` of the time ``here()`` took (the two halves are alike; a worker
    stuck after the fork is then killed). The caller then does that part itself. An
    error of ``here`` is raised."""
    from tootcheck.policy.bundle import collector_paused

    context = multiprocessing.get_context("fork")
    receiving, sending = context.Pipe(duplex=False)
    worker = context.Process(target=_work, args=(sending, there, args), daemon=True)
    worker.start()
    sending.close()  # the worker's end only: its exit closes the pipe
    try:
        started = time.monotonic()
        mine = here()
        theirs = None
        with collector_paused():  # unpickling many containers: collections find nothing
            if receiving.poll(worker_bound(time.monotonic() - started)):  # data, or its end
                try:
                    theirs = receiving.recv()
                except (EOFError, OSError):  # ended without sending
                    theirs = None
    finally:
        receiving.close()
        if worker.is_alive():
            worker.kill()
        worker.join()
    return mine, theirs


WORKER_MIN_WAIT_S = 30.0  # the least a worker is waited for, after this process's half
WORKER_WAIT_FACTOR = 5.0  # ... or this many times what this process's half took


def worker_bound(here_s: float) -> float:
    """How long to wait for the worker once this process's half is done, which took
    ``here_s`` seconds: the worker's half is as large, so much longer means it is stuck."""
    return max(WORKER_MIN_WAIT_S, WORKER_WAIT_FACTOR * here_s)


def _work(sending: Any, there: Callable[..., Any], args: tuple[Any, ...]) -> None:
    """The worker: the result sent back, or nothing (quietly: the caller does the work)."""
    try:
        sending.send(there(*args))
    except BaseException:  # any failure only means: no result
        return


def parse_halves(path: Path, source: str, default_namespace: str,
                 artifact: str) -> list[Any] | None:
    """The file's objects parsed on two cores, or None (then parse it in one piece)."""
    from tootcheck.policy.bundle import (
        K8sObject,
        Objects,
        SourceText,
        TextSpan,
        _Loader,
        _parse,
        collector_paused,
        secret_values_of,
    )
    from tootcheck.policy.fastparse import parse_range

    if not two_cores():
        return None
    try:
        size = path.stat().st_size
        found = split_point(path, size) if size >= MIN_SPLIT_BYTES else None
    except (OSError, UnicodeError):
        return None
    if found is None:
        return None
    offset, chars, lines = found
    text = SourceText(path=path)

    def first_half() -> tuple[list[Any], list[str]]:
        found: list[K8sObject] | None = parse_range(path, 0, offset, text, source,
                                                    default_namespace, artifact)
        if found is None:
            with path.open("rb") as f:
                found = _parse(_Loader(_Head(f, offset)), text, False, source,
                               default_namespace, artifact)
        return found, secret_values_of(found)

    (head, secrets), tail = beside_a_worker(first_half, _parse_tail,
                                            (path, offset, source, default_namespace, artifact))
    if tail is None:  # the worker failed: parse in one piece, for the same errors
        return None
    parsed, more_secrets = tail
    with collector_paused():
        for data, line, start, end, column, line0 in parsed:
            head.append(K8sObject(
                data=data, source=source, doc=len(head), line=line + lines,
                span=TextSpan(text, start + chars, end + chars, column, line0 + lines)
                if start >= 0 else None,
                default_namespace=default_namespace, artifact=artifact))
    return Objects(head, secrets + more_secrets)
