"""Which checks run in which mode: one catalogue, three ways to use it.

- ``gate``: CI on manifest changes (offline policy plus the kind end-to-end run);
- ``nightly``: the live instance; read-only checks only, plus mutating checks the
  operator allows by name (``--allow-mutating``);
- ``rehearsal``: the upgrade rehearsal on kind.

:func:`decide` is pure: it takes a check's declaration and the run's settings and
says whether the test runs, and if not, why (the reason is shown as the skip).
"""

from __future__ import annotations

from dataclasses import dataclass

from tootcheck.checks.registry import CheckSpec


@dataclass(frozen=True)
class Decision:
    run: bool
    reason: str = ""


def decide(spec: CheckSpec, mode: str, allow_mutating: tuple[str, ...] = ()) -> Decision:
    if mode not in spec.modes:
        modes = ", ".join(sorted(spec.modes))
        return Decision(False, f"{spec.name} is not part of {mode} mode (runs in: {modes})")
    if mode == "nightly" and spec.mutating and spec.name not in allow_mutating:
        return Decision(
            False,
            f"refused: {spec.name} is mutating and nightly mode runs read-only checks "
            f"(allow it with --allow-mutating={spec.name})",
        )
    return Decision(True)


def tags(spec: CheckSpec) -> list[str]:
    """Marker names a check's tests carry, for ``-m`` selection."""
    return [*sorted(spec.modes), "mutating" if spec.mutating else "readonly"]
