"""The shared result model: object references, policy severities, live check results."""

from __future__ import annotations

import enum
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


class Severity(enum.Enum):
    """ERROR fails the gate, WARN fails only under --policy-strict, INFO is advisory."""

    ERROR = "ERROR"
    WARN = "WARN"
    INFO = "INFO"

    @property
    def sarif_level(self) -> str:
        return {"ERROR": "error", "WARN": "warning", "INFO": "note"}[self.value]


@dataclass(frozen=True, order=True)
class ObjectRef:
    """A Kubernetes object by kind, namespace and name; printed as ``Kind/ns/name``."""

    kind: str
    name: str
    namespace: str | None = None
    api_version: str = ""

    @classmethod
    def of(cls, obj: Mapping[str, Any]) -> ObjectRef:
        meta = obj.get("metadata") or {}
        return cls(
            kind=str(obj.get("kind", "?")),
            name=str(meta.get("name", "?")),
            namespace=meta.get("namespace"),
            api_version=str(obj.get("apiVersion", "")),
        )

    def __str__(self) -> str:
        if self.namespace:
            return f"{self.kind}/{self.namespace}/{self.name}"
        return f"{self.kind}/{self.name}"


@dataclass(frozen=True)
class Fault:
    """One thing a live check found wrong.

    ``code`` is a stable slug declared by the check (``cert-expired``); the
    self-tests prove each declared code against a broken peer. ``message`` is a
    one-line sentence an operator can act on.
    """

    code: str
    message: str

    def __str__(self) -> str:
        return f"[{self.code}] {self.message}"


@dataclass(frozen=True)
class CheckResult:
    """What a live check returns. Checks never assert: tests do."""

    check: str
    target: str
    faults: tuple[Fault, ...] = ()
    evidence: Mapping[str, Any] = field(default_factory=dict)
    metrics: Mapping[str, float] = field(default_factory=dict)
    duration_s: float = 0.0
    observations: int = 0

    @property
    def ok(self) -> bool:
        return not self.faults

    @property
    def fault_codes(self) -> tuple[str, ...]:
        return tuple(f.code for f in self.faults)

    @property
    def summary(self) -> str:
        """One line: check, target and either OK or every fault."""
        head = f"{self.check}[{self.target}]"
        if self.ok:
            return f"{head}: OK ({self.observations} observation(s), {self.duration_s:.2f}s)"
        return f"{head}: " + "; ".join(str(f) for f in self.faults)

    def __bool__(self) -> bool:  # pragma: no cover - guard against `assert result`
        raise TypeError("use result.ok, not the truth value of a CheckResult")


class CheckRun:
    """Accumulates faults, evidence and metrics while a check runs.

    >>> run = CheckRun("https.health", "kind://tootcheck")
    >>> run.observe()
    >>> run.fail("health-not-ok", "/health answered 500")
    >>> run.result().fault_codes
    ('health-not-ok',)
    """

    def __init__(self, check: str, target: str) -> None:
        self.check = check
        self.target = target
        self.faults: list[Fault] = []
        self.evidence: dict[str, Any] = {}
        self.metrics: dict[str, float] = {}
        self.observations = 0
        self._started = time.monotonic()

    def fail(self, code: str, message: str) -> None:
        self.faults.append(Fault(code, " ".join(message.split())))

    def observe(self, count: int = 1) -> None:
        """Record that something was actually looked at (guards vacuous passes)."""
        self.observations += count

    def expect(self, condition: bool, code: str, message: str) -> bool:
        self.observe()
        if not condition:
            self.fail(code, message)
        return condition

    def result(self) -> CheckResult:
        faults = list(self.faults)
        if not faults and self.observations == 0:
            faults.append(Fault("nothing-checked", "the check observed nothing; refusing to pass"))
        return CheckResult(
            check=self.check,
            target=self.target,
            faults=tuple(faults),
            evidence=dict(self.evidence),
            metrics=dict(self.metrics),
            duration_s=time.monotonic() - self._started,
            observations=self.observations,
        )
