"""Waivers: the one file that suppresses a finding, each with a reason and an expiry.

In the config file (``tootcheck.toml``; :mod:`tootcheck.policy.config_loader`)::

    [[waivers]]
    rule = "MSTDN-WL-001"
    object = "Deployment/traefik/traefik:traefik"   # Kind/namespace/name[:container][@render]
    reason = "the upstream chart sets no requests; tracked in #12"
    expires = 2027-01-31

or in a YAML file (``--waivers FILE``, or ``waivers = "FILE"`` in the config) with a
``waivers:`` list of the same mappings.

An expired waiver suppresses nothing and fails the gate; one expiring within
:data:`WARN_DAYS` days warns; one that matches no finding is reported as stale.
Suppressed findings are reported as skipped, never as passed.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tootcheck.config_file import display
from tootcheck.errors import BadInput
from tootcheck.model import Severity

WARN_DAYS = 14
_OBJECT = re.compile(r"^(?P<kind>[A-Za-z0-9]+)/(?:(?P<ns>[a-z0-9.-]+)/)?(?P<name>[^/:@\s]+)"
                     r"(?::(?P<container>[^/:@\s]+))?(?:@(?P<label>[^/:@\s]+))?$")


@dataclass(eq=False)
class Waiver:
    rule: str
    object: str  # as written
    kind: str
    namespace: str | None
    name: str
    container: str | None
    label: str | None
    reason: str
    expires: dt.date
    line: int
    matched: int = field(default=0)

    @property
    def object_id(self) -> str:
        return f"{self.kind}/{self.namespace}/{self.name}" if self.namespace else \
            f"{self.kind}/{self.name}"

    def matches(self, rule_id: str, object_id: str, container: str | None, label: str) -> bool:
        if rule_id != self.rule or object_id != self.object_id:
            return False
        if self.label is not None and self.label != label:
            return False
        return self.container is None or self.container == container

    def days_left(self, today: dt.date) -> int:
        return (self.expires - today).days

    def is_expired(self, today: dt.date) -> bool:
        return self.expires < today

    def describe(self) -> str:
        return f"{self.rule} {self.object}"


@dataclass(frozen=True)
class WaiverProblem:
    waiver: Waiver
    severity: Severity
    kind: str  # expired | expiring | stale | absent
    message: str

    @property
    def id(self) -> str:
        return f"waiver[{self.kind}: {self.waiver.rule} {self.waiver.object}]"


class Waivers:
    def __init__(self, entries: Iterable[Waiver] = (), source: str = "") -> None:
        self.entries = list(entries)
        self.source = source

    def __len__(self) -> int:
        return len(self.entries)

    def find(self, rule_id: str, object_id: str, container: str | None,
             label: str = "") -> Waiver | None:
        for w in self.entries:
            if w.matches(rule_id, object_id, container, label):
                return w
        return None

    def problems(self, today: dt.date, present: set[str] | None = None,
                 not_run: set[str] | None = None) -> list[WaiverProblem]:
        """Expired (ERROR), expiring (WARN) and stale (WARN) waivers. A waiver whose object
        is not in this input at all (``present``: the ids of the objects checked), or whose
        rule did not run (``not_run``: outside the profile or the mode), is only a note:
        gating the reference alone, or in baseline, must not fail on those waivers."""
        out: list[WaiverProblem] = []
        for w in self.entries:
            left = w.days_left(today)
            if left < 0:
                out.append(WaiverProblem(w, Severity.ERROR, "expired",
                                         f"waiver for {w.describe()} expired {-left} day(s) ago "
                                         f"({w.expires.isoformat()}); the finding is no longer "
                                         f"suppressed"))
            elif left <= WARN_DAYS:
                out.append(WaiverProblem(w, Severity.WARN, "expiring",
                                         f"waiver for {w.describe()} expires in {left} day(s) "
                                         f"({w.expires.isoformat()})"))
            if not w.matched and not_run and w.rule in not_run:
                out.append(WaiverProblem(w, Severity.INFO, "absent",
                                         f"waiver for {w.describe()} not applied: rule {w.rule} "
                                         f"did not run"))
            elif not w.matched and present is not None and w.object_id not in present:
                out.append(WaiverProblem(w, Severity.INFO, "absent",
                                         f"waiver for {w.describe()} not applied: no such object "
                                         f"in this input"))
            elif not w.matched:
                out.append(WaiverProblem(w, Severity.WARN, "stale",
                                         f"stale waiver: {w.describe()} matches no finding "
                                         f"(line {w.line} of {self.source or 'the waivers file'})"))
        return out


def parse_waivers(text: str, source: str, known_rules: Iterable[str]) -> Waivers:
    known = set(known_rules)
    try:
        node = yaml.compose(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
        raw = yaml.safe_load(text)
    except (yaml.YAMLError, ValueError, TypeError) as exc:  # ValueError: expires: 2027-13-45
        raise BadInput(f"{source}: not valid YAML: {' '.join(str(exc).split())[:160]}") from None
    if raw is None:
        return Waivers([], source)
    if not isinstance(raw, dict) or not isinstance(raw.get("waivers", []), list):
        raise BadInput(f"{source}: expected a mapping with a 'waivers' list")
    lines = _entry_lines(node)
    entries: list[Waiver] = []
    for i, item in enumerate(raw.get("waivers") or []):
        line = lines[i] if i < len(lines) else 1
        where = f"{source}:{line}"
        entries.append(waiver_entry(item, where, line, known))
    return Waivers(entries, source)


def _entry_lines(node: Any) -> list[int]:
    if not isinstance(node, yaml.MappingNode):
        return []
    for key, value in node.value:
        if key.value == "waivers" and isinstance(value, yaml.SequenceNode):
            return [item.start_mark.line + 1 for item in value.value]
    return []


def waiver_entry(item: Any, where: str, line: int, known: set[str]) -> Waiver:
    if not isinstance(item, dict):
        raise BadInput(f"{where}: a waiver must be a mapping with rule, object, reason, expires")
    missing = [k for k in ("rule", "object", "reason", "expires") if not item.get(k)]
    if missing:
        raise BadInput(f"{where}: waiver lacks {', '.join(missing)}")
    extra = set(item) - {"rule", "object", "reason", "expires"}
    if extra:
        raise BadInput(f"{where}: unknown waiver field(s) {', '.join(sorted(extra))}")
    rule_id = str(item["rule"])
    if rule_id not in known:
        raise BadInput(f"{where}: waiver names unknown rule {rule_id}")
    m = _OBJECT.match(str(item["object"]))
    if not m:
        raise BadInput(f"{where}: object {item['object']!r} is not Kind/namespace/name"
                       f"[:container] (or Kind/name for cluster-scoped kinds)")
    expires = item["expires"]
    if isinstance(expires, dt.datetime):
        expires = expires.date()
    if not isinstance(expires, dt.date):
        try:
            expires = dt.date.fromisoformat(str(expires))
        except ValueError:
            raise BadInput(f"{where}: expires {expires!r} is not a date (YYYY-MM-DD)") from None
    reason = " ".join(str(item["reason"]).split())
    return Waiver(rule=rule_id, object=str(item["object"]), kind=m["kind"], namespace=m["ns"],
                  name=m["name"], container=m["container"], label=m["label"], reason=reason,
                  expires=expires, line=line)


def load_waivers(path: Path | None, known_rules: Iterable[str]) -> Waivers:
    """A YAML waivers file; none for ``None``."""
    if path is None:
        return Waivers([], "")
    if not path.exists():
        raise BadInput(f"waivers file {display(path)} does not exist")
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInput(f"waivers file {path}: cannot read: "
                       f"{getattr(exc, 'strerror', None) or exc}") from None
    return parse_waivers(text, display(path), known_rules)

