"""Groupings the report shows instead of flat lists: policy results by rule, tests by outcome.

Policy gate tests are named ``RULE[Kind/ns/name:container]`` (tootcheck.hooks.policy);
a skipped one is either waived (its message says "waived") or a rule that matched
nothing.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

RULE_ID = re.compile(r"^(?P<rule>[A-Z][A-Z0-9]*(?:-[A-Z0-9]+)*-\d{3})(?:\[(?P<subject>.*)\])?$")
NO_MATCH = "no matching objects"
FAILING = ("failed", "error", "xpassed")
ATTENTION_ORDER = ("failed", "error", "xpassed", "flaky")


@dataclass
class RuleGroup:
    rule: str
    objects: int = 0
    findings: list[str] = field(default_factory=list)  # nodeids
    waived: list[str] = field(default_factory=list)  # waiver messages
    notes: list[str] = field(default_factory=list)  # e.g. matched nothing


def test_name(nodeid: str) -> str:
    return nodeid.split("::", 1)[-1]


def policy_rules(tests: Sequence[Mapping[str, Any]]) -> dict[str, RuleGroup]:
    """Rule id -> objects checked, findings and waivers, from the policy tests of a run."""
    groups: dict[str, RuleGroup] = {}
    for test in tests:
        match = RULE_ID.match(test_name(test["nodeid"]))
        if not match or "/policy/" not in test["nodeid"]:
            continue
        group = groups.setdefault(match["rule"], RuleGroup(match["rule"]))
        if match["subject"] in (None, NO_MATCH):  # the rule as a whole: matched nothing
            group.notes.append(test["message"] or test["outcome"])
            continue
        group.objects += 1
        if test["outcome"] in FAILING:
            group.findings.append(test["nodeid"])
        elif test["outcome"] == "skipped":
            group.waived.append(test["message"])
    return dict(sorted(groups.items()))


def is_policy(test: Mapping[str, Any]) -> bool:
    return "/policy/" in test["nodeid"] and RULE_ID.match(test_name(test["nodeid"])) is not None


def attention(tests: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Failures, errors, unexpected passes, then flaky tests: what a person reads first."""
    picked = [t for t in tests if t["outcome"] in ATTENTION_ORDER]
    return sorted(picked, key=lambda t: (ATTENTION_ORDER.index(t["outcome"]), t["nodeid"]))


def skipped_by_reason(tests: Sequence[Mapping[str, Any]], without_checks: bool = False,
                      without_not_proven: bool = False) -> dict[str, list[str]]:
    """Skip reason -> nodeids (policy waivers excluded: they are shown per rule; live check
    tests too with ``without_checks``, when the capability matrix already lists them)."""
    reasons: dict[str, list[str]] = {}
    for test in tests:
        if without_checks and test.get("check"):
            continue
        if without_not_proven and test["message"].startswith("NOT PROVEN"):
            continue  # listed from the run's gaps
        if test["outcome"] == "skipped" and not is_policy(test):
            first = next((ln.strip() for ln in test["message"].splitlines() if ln.strip()), "no reason")
            reasons.setdefault(first, []).append(test["nodeid"])
    return dict(sorted(reasons.items(), key=lambda item: (-len(item[1]), item[0])))


def passes_by_file(tests: Sequence[Mapping[str, Any]]) -> dict[str, list[str]]:
    """Test file -> names of its passed tests (policy tests excluded)."""
    files: dict[str, list[str]] = {}
    for test in tests:
        if test["outcome"] in ("passed", "xfailed") and not is_policy(test):
            path, _, name = test["nodeid"].partition("::")
            files.setdefault(path, []).append(name)
    return dict(sorted(files.items()))
