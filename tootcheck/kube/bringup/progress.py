"""The bring-up's progress output: one complete line per phase as it ends.

Phases may run at the same time, so a line is written whole, when its phase ends,
under a lock; its number is the phase's place in the plan, not the order of the lines.
"""

from __future__ import annotations

import threading
from collections.abc import Callable


class Progress:
    """One line per phase, ``bring-up [ i/N] name  seconds action: note``."""

    def __init__(self, write: Callable[[str], None], newline: Callable[[], None] = lambda: None,
                 finish: Callable[[], None] = lambda: None) -> None:
        self._write = write
        self._newline = newline
        self._lock = threading.Lock()
        self.finish = finish  # called once the phases of a fixture are through

    def line(self, index: int, total: int, name: str, seconds: float, action: str, note: str) -> None:
        text = (f"bring-up [{index:2}/{total}] {name:18} "
                f"{seconds:7.1f}s {action}{': ' + note if note else ''}\n")
        with self._lock:
            self._newline()
            self._write(text)


class LineProgress(Progress):
    """For tests and plain output: each phase as one complete line."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self._pending = ""
        super().__init__(self._collect)

    def _collect(self, text: str) -> None:
        self._pending += text
        if self._pending.endswith("\n"):
            self.lines.append(self._pending.rstrip("\n"))
            self._pending = ""

