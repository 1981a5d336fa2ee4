"""The catalogue of live checks: name, faults it claims to catch, modes, mutating.

Each check function is declared with :func:`live_check`. The declaration is the
contract the suite's own tests enforce: every declared fault code must be proven
against a broken peer, and the healthy case against a healthy one (see
``tootcheck.testing``). Modes say where a check runs (``gate`` = CI on manifest
changes with kind, ``nightly`` = the live instance, ``rehearsal`` = upgrade
rehearsal); ``mutating`` checks change state and are refused in nightly mode
unless the operator allows them by name.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar

MODES = ("gate", "nightly", "rehearsal")

# Modules that hold live checks, imported by all_checks(). One capability, one name.
CHECK_MODULES = (
    "tootcheck.checks.https",
    "tootcheck.checks.streaming",
    "tootcheck.checks.sidekiq",
    "tootcheck.checks.persistence",
    "tootcheck.checks.oidc",
    "tootcheck.checks.mail",
    "tootcheck.checks.federation",
    "tootcheck.checks.webpush",
    "tootcheck.checks.incontainer",
    "tootcheck.checks.drift",
    "tootcheck.policy.live_check",
    "tootcheck.rehearsal.checks",
)

F = TypeVar("F", bound=Callable[..., object])


@dataclass(frozen=True)
class CheckSpec:
    name: str
    func: Callable[..., object]
    faults: Mapping[str, str]
    modes: frozenset[str]
    mutating: bool
    summary: str


REGISTRY: dict[str, CheckSpec] = {}


def live_check(
    name: str,
    *,
    faults: Mapping[str, str],
    modes: tuple[str, ...] = MODES,
    mutating: bool = False,
) -> Callable[[F], F]:
    """Register a check function under ``name`` (``<capability>.<behaviour>``)."""
    unknown = set(modes) - set(MODES)
    if unknown:
        raise ValueError(f"{name}: unknown mode(s) {sorted(unknown)}")
    if not faults:
        raise ValueError(f"{name}: a check must declare the faults it catches")

    def register(func: F) -> F:
        existing = REGISTRY.get(name)
        if existing is not None and existing.func.__qualname__ != func.__qualname__:
            raise ValueError(f"duplicate live check name {name!r}")
        doc = (func.__doc__ or "").strip().splitlines()
        REGISTRY[name] = CheckSpec(
            name=name,
            func=func,
            faults=dict(faults),
            modes=frozenset(modes),
            mutating=mutating,
            summary=doc[0] if doc else name,
        )
        return func

    return register


def all_checks() -> dict[str, CheckSpec]:
    """Import every check module and return the full registry."""
    for module in CHECK_MODULES:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name != module:
                raise
    return dict(REGISTRY)


def get(name: str) -> CheckSpec:
    all_checks()
    try:
        return REGISTRY[name]
    except KeyError:
        raise LookupError(f"no live check named {name!r}") from None
