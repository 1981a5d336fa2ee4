"""The rule registry: metadata beside each rule, one module per area, IDs permanent.

A rule is a function ``(subject, ctx) -> Iterable[Hit]`` declared with :func:`rule`.
It returns bare findings (message, field path, optionally a container); the
engine adds the rule's metadata, the object, the line and the waiver status.

IDs have the form ``MSTDN-<AREA>-NNN``; the area names the module
(``rules/sec.py`` holds ``MSTDN-SEC-*``). IDs are never derived from titles and
never reused; registering one twice is refused.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from tootcheck.model import Severity
from tootcheck.policy.config import PROFILES
from tootcheck.policy.types import Applies, Hit, RuleFn

__all__ = ["Applies", "DuplicateRule", "Hit", "Registry", "Rule", "RuleFn", "all_rules",
           "load_rules", "rule"]

ID_PATTERN = re.compile(r"^MSTDN-([A-Z]+)-(\d{3})$")
MODES = frozenset({"offline", "live"})
DOCS_URL = "docs/rules.md"

# The rule modules, in catalogue order: the table of contents of the policy.
RULE_MODULES = (
    "tootcheck.policy.rules.wl",
    "tootcheck.policy.rules.sec",
    "tootcheck.policy.rules.secret",
    "tootcheck.policy.rules.tls",
    "tootcheck.policy.rules.ing",
    "tootcheck.policy.rules.cfg",
    "tootcheck.policy.rules.pv",
    "tootcheck.policy.rules.db",
    "tootcheck.policy.rules.upg",
)


@dataclass(frozen=True)
class Rule:
    id: str
    severity: Severity
    title: str
    kinds: frozenset[str] | None  # None: every kind
    scope: str  # "object" | "container"
    remediation: str
    refs: tuple[str, ...]
    fn: RuleFn
    applies: Applies | None
    modes: frozenset[str]
    module: str
    profile: str = "baseline"

    def in_profile(self, profile: str) -> bool:
        """Whether the rule runs under ``profile`` (each profile includes the smaller ones)."""
        return PROFILES.index(self.profile) <= PROFILES.index(profile)

    @property
    def area(self) -> str:
        m = ID_PATTERN.match(self.id)
        return m.group(1) if m else ""

    @property
    def description(self) -> str:
        doc = (self.fn.__doc__ or "").strip()
        return " ".join(doc.split()) or self.title

    @property
    def anchor(self) -> str:
        return self.id.lower()

    @property
    def help_uri(self) -> str:
        return f"{DOCS_URL}#{self.anchor}"

    @property
    def applies_to(self) -> str:
        from tootcheck.policy.k8s import WORKLOAD_KINDS

        text = getattr(self.applies, "text", None)
        if text and self.kinds and not (self.kinds - WORKLOAD_KINDS - {"Ingress"}):
            return str(text)
        if not self.kinds:
            return "all kinds"
        if self.kinds == WORKLOAD_KINDS:
            return "workload containers" if self.scope == "container" else "workloads"
        return ", ".join(sorted(self.kinds))


class DuplicateRule(Exception):
    pass


class Registry:
    def __init__(self) -> None:
        self._rules: dict[str, Rule] = {}

    def add(self, r: Rule) -> None:
        old = self._rules.get(r.id)
        if old is not None and (old.module, old.fn.__qualname__) == (r.module, r.fn.__qualname__):
            self._rules[r.id] = r  # the same module imported again (importlib.reload, pytester)
            return
        if old is not None:
            raise DuplicateRule(f"rule {r.id} registered twice ({old.module}.{old.fn.__name__}, "
                                f"{r.module}.{r.fn.__name__})")
        self._rules[r.id] = r

    def __iter__(self) -> Iterator[Rule]:
        return iter(self._rules.values())

    def __len__(self) -> int:
        return len(self._rules)

    def __contains__(self, rule_id: object) -> bool:
        return rule_id in self._rules

    def get(self, rule_id: str) -> Rule:
        return self._rules[rule_id]

    def ids(self) -> list[str]:
        return list(self._rules)


REGISTRY = Registry()


def rule(rule_id: str, severity: Severity, title: str, *, kinds: Iterable[str] | None,
         remediation: str, refs: Iterable[str], scope: str = "object",
         applies: Applies | None = None, modes: Iterable[str] = MODES,
         profile: str | None = None,
         registry: Registry | None = None) -> Callable[[RuleFn], RuleFn]:
    """Declare a rule; the decorated function's docstring is its description.

    Every rule of the global catalogue declares its ``profile`` (baseline or hardened)."""
    if scope not in ("object", "container"):
        raise ValueError(f"{rule_id}: scope must be object or container")

    def register(fn: RuleFn) -> RuleFn:
        module = fn.__module__
        m = ID_PATTERN.match(rule_id)
        if not m:
            raise ValueError(f"rule id {rule_id!r} is not of the form MSTDN-<AREA>-NNN")
        area_module = module.rsplit(".", 1)[-1].upper()
        if registry is None and m.group(1) != area_module:  # the global catalogue only
            raise ValueError(f"{rule_id} registered in module {module}; it belongs in "
                             f"rules/{m.group(1).lower()}.py")
        if profile is None and registry is None:
            raise ValueError(f"{rule_id}: declare profile= ({' or '.join(PROFILES)})")
        if profile is not None and profile not in PROFILES:
            raise ValueError(f"{rule_id}: profile must be one of {', '.join(PROFILES)}")
        (REGISTRY if registry is None else registry).add(Rule(
            id=rule_id, severity=severity, title=title,
            kinds=frozenset(kinds) if kinds is not None else None, scope=scope,
            remediation=remediation, refs=tuple(refs), fn=fn, applies=applies,
            modes=frozenset(modes), module=module, profile=profile or "baseline"))
        return fn

    return register


def load_rules() -> Registry:
    """Import every rule module (idempotent) and return the registry."""
    for name in RULE_MODULES:
        importlib.import_module(name)
    return REGISTRY


def all_rules() -> list[Rule]:
    return list(load_rules())


def check_profile(profile: str) -> str:
    """``profile`` if it names a profile; BadInput otherwise."""
    from tootcheck.errors import BadInput

    if profile not in PROFILES:
        raise BadInput(f"profile must be {' or '.join(PROFILES)}, not {profile!r}")
    return profile
