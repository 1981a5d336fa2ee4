"""Reading the rule case files: tests/policy/cases/<RULE-ID>/{fail,pass}-*.yaml.

A fail case names the subject the rule must fire on in a header line
``# expect: Kind/namespace/name[:container]``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from tootcheck.policy.bundle import Bundle, parse_stream
from tootcheck.policy.config import PolicyConfig
from tootcheck.policy.engine import PolicyRun, evaluate
from tootcheck.policy.registry import Rule

CASES_DIR = Path(__file__).parent / "cases"
_EXPECT = re.compile(r"^# expect: (?P<object>[^:\s]+)(?::(?P<container>\S+))?\s*$", re.M)


@dataclass(frozen=True)
class Case:
    rule_id: str
    path: Path

    @property
    def failing(self) -> bool:
        return self.path.name.startswith("fail-")

    @property
    def id(self) -> str:
        return f"{self.rule_id}/{self.path.stem}"

    def expected(self) -> tuple[str, str | None] | None:
        m = _EXPECT.search(self.path.read_text())
        return (m["object"], m["container"]) if m else None


def all_cases() -> list[Case]:
    return [Case(d.name, f) for d in sorted(CASES_DIR.iterdir()) if d.is_dir()
            for f in sorted(d.glob("*.yaml"))]


def run_case(rule: Rule, path: Path, config: PolicyConfig | None = None) -> PolicyRun:
    objects = parse_stream(path.read_text(), f"tests/policy/cases/{path.parent.name}/{path.name}")
    return evaluate([Bundle(objects)], config or PolicyConfig(), rules=[rule])
