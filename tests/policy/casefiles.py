"""Reading the rule case files: tests/policy/cases/<RULE-ID>/{fail,pass}-*.yaml.

A fail case names the subject the rule must fire on in a header line
``# expect: Kind/namespace/name[:container]``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from tootcheck.policy.bundle import Bundle, parse_stream
from tootcheck.policy.config import MASTODON_SECRET_KEYS, PolicyConfig
from tootcheck.policy.config_loader import config_from_mapping
from tootcheck.policy.engine import PolicyRun, evaluate
from tootcheck.policy.registry import Rule

CASES_DIR = Path(__file__).parent / "cases"
_CONFIG = re.compile(r"^# config: (?P<config>\{.*\})\s*$", re.M)
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


# The cases describe kirchner.social: its domain, issuer and external Secret (the neutral
# defaults would accept any domain and issuer), every rule in profile.
CASE_CONFIG = PolicyConfig(
    profile="hardened", domain="kirchner.social", allowed_issuers=("kirchner-social-issuer",),
    external_secrets={"mastodon/mastodon-secrets": MASTODON_SECRET_KEYS})


def run_case(rule: Rule, path: Path, config: PolicyConfig | None = None) -> PolicyRun:
    """Run ``rule`` over the case; a ``# config: {...}`` header (YAML flow mapping)
    overrides CASE_CONFIG for that case (e.g. the neutral issuer defaults)."""
    text = path.read_text()
    if config is None:
        config = CASE_CONFIG
        m = _CONFIG.search(text)
        if m:
            config = config_from_mapping(yaml.safe_load(m["config"]), config, origin=str(path))
    objects = parse_stream(text, f"tests/policy/cases/{path.parent.name}/{path.name}")
    return evaluate([Bundle(objects)], config, rules=[rule])
