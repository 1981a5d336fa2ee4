"""Secrets never reach logs or reports.

:class:`Secret` wraps a value so that ``str``/``repr``/formatting print a mask;
code that needs the value calls :meth:`Secret.reveal`. Every Secret registers its
value with the process-wide :data:`REDACTOR`, which report writers and the
evidence collector run over all text they write.
"""

from __future__ import annotations

import re
import threading
from typing import NoReturn

MASK = "***"
_MIN_LEN = 6  # shorter values would mask ordinary words


class Redactor:
    """Replaces every registered secret value in a text with a mask."""

    def __init__(self) -> None:
        self._values: set[str] = set()
        self._lock = threading.Lock()
        self._pattern: re.Pattern[str] | None = None

    def register(self, value: str) -> None:
        if len(value) < _MIN_LEN:
            return
        with self._lock:
            if value not in self._values:
                self._values.add(value)
                self._pattern = None

    def redact(self, text: str) -> str:
        with self._lock:
            if not self._values:
                return text
            if self._pattern is None:
                ordered = sorted(self._values, key=len, reverse=True)
                self._pattern = re.compile("|".join(re.escape(v) for v in ordered))
            pattern = self._pattern
        return pattern.sub(MASK, text)

    def __contains__(self, value: str) -> bool:
        return value in self._values


REDACTOR = Redactor()


class Secret:
    """A secret value that prints as a mask."""

    __slots__ = ("_label", "_value")

    def __init__(self, value: str, label: str = "secret") -> None:
        self._value = value
        self._label = label
        REDACTOR.register(value)

    def reveal(self) -> str:
        return self._value

    def __str__(self) -> str:
        return f"<{self._label}:{MASK}>"

    __repr__ = __str__

    def __format__(self, spec: str) -> str:
        return str(self)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __reduce__(self) -> NoReturn:
        raise TypeError("Secret values are not picklable")


def redact(text: str) -> str:
    """Mask every registered secret in ``text``."""
    return REDACTOR.redact(text)
