"""The catalogue is complete: metadata, ID form and area, unique IDs, and a fail case
plus a pass twin for every rule."""

from __future__ import annotations

import pkgutil
import re

import pytest

import tootcheck.policy.rules as rules_pkg
from tests.policy.casefiles import CASES_DIR
from tootcheck.model import Severity
from tootcheck.policy.registry import (
    ID_PATTERN,
    RULE_MODULES,
    DuplicateRule,
    Registry,
    all_rules,
    rule,
)

RULES = all_rules()


def test_catalogue_size() -> None:
    assert len(RULES) >= 40, f"only {len(RULES)} rules"


def test_ids_unique_and_well_formed() -> None:
    ids = [r.id for r in RULES]
    assert len(ids) == len(set(ids))
    for r in RULES:
        m = ID_PATTERN.match(r.id)
        assert m, r.id
        assert m.group(1).lower() == r.module.rsplit(".", 1)[-1], f"{r.id} lives in {r.module}"


@pytest.mark.parametrize("r", RULES, ids=[r.id for r in RULES])
def test_metadata_complete(r) -> None:
    assert isinstance(r.severity, Severity)
    assert r.title.strip() and not r.title.endswith(".")
    assert len(r.description) > 40, f"{r.id}: the docstring should say why the rule exists"
    assert r.remediation.strip().endswith("."), f"{r.id}: remediation must end with a period"
    assert r.refs and all(ref.strip() for ref in r.refs), f"{r.id}: no upstream references"
    assert r.scope in ("object", "container") and r.modes <= {"offline", "live"} and r.modes


@pytest.mark.parametrize("r", RULES, ids=[r.id for r in RULES])
def test_rule_has_fail_case_and_pass_twin(r) -> None:
    folder = CASES_DIR / r.id
    fails = sorted(folder.glob("fail-*.yaml"))
    passes = sorted(folder.glob("pass-*.yaml"))
    assert fails, f"{r.id}: no tests/policy/cases/{r.id}/fail-*.yaml"
    assert passes, f"{r.id}: no tests/policy/cases/{r.id}/pass-*.yaml"
    for f in fails:
        assert re.search(r"^# expect: \S+", f.read_text(), re.M), f"{f}: no expect header"


def test_no_orphan_case_folders() -> None:
    ids = {r.id for r in RULES}
    orphans = [d.name for d in CASES_DIR.iterdir() if d.is_dir() and d.name not in ids]
    assert not orphans, f"case folders for unregistered rules: {orphans}"
    stray = [f.name for d in CASES_DIR.iterdir() if d.is_dir() for f in d.iterdir()
             if not re.match(r"^(fail|pass)-[a-z0-9-]+\.yaml$", f.name)]
    assert not stray, f"case files not named fail-*/pass-*: {stray}"


def test_every_rule_module_is_listed() -> None:
    found = {f"{rules_pkg.__name__}.{m.name}" for m in pkgutil.iter_modules(rules_pkg.__path__)
             if not m.name.startswith("_")}
    assert found == set(RULE_MODULES)


def test_duplicate_ids_refused() -> None:
    reg = Registry()

    def first(s, ctx):  # pragma: no cover - never run
        return iter(())

    def second(s, ctx):  # pragma: no cover - never run
        return iter(())

    rule("MSTDN-WL-999", Severity.INFO, "x", kinds=None, remediation="x.", refs=("x",),
         registry=reg)(first)
    with pytest.raises(DuplicateRule, match="registered twice"):
        rule("MSTDN-WL-999", Severity.INFO, "y", kinds=None, remediation="y.", refs=("y",),
             registry=reg)(second)
    # the same function registered again (its module re-imported) replaces itself
    rule("MSTDN-WL-999", Severity.INFO, "x", kinds=None, remediation="x.", refs=("x",),
         registry=reg)(first)
    assert len(reg) == 1


def test_malformed_id_and_wrong_area_refused() -> None:
    def fn(s, ctx):  # pragma: no cover
        return iter(())

    with pytest.raises(ValueError, match="MSTDN-<AREA>-NNN"):
        rule("WL-1", Severity.INFO, "x", kinds=None, remediation="x.", refs=("x",),
             registry=Registry())(fn)
    with pytest.raises(ValueError, match=r"belongs in rules/sec\.py"):
        rule("MSTDN-SEC-999", Severity.INFO, "x", kinds=None, remediation="x.", refs=("x",))(fn)


# The hardening preferences: everything else breaks Mastodon, loses data, leaks a secret
# or misroutes traffic, and is baseline.
HARDENED = {"MSTDN-WL-001", "MSTDN-WL-002", "MSTDN-WL-008", "MSTDN-WL-009", "MSTDN-SEC-002",
            "MSTDN-SEC-003", "MSTDN-SEC-004", "MSTDN-SEC-005", "MSTDN-TLS-004", "MSTDN-PV-005"}


def test_every_rule_declares_its_profile() -> None:
    from tootcheck.policy.registry import PROFILES, all_rules

    rules = all_rules()
    assert {r.profile for r in rules} == set(PROFILES)
    assert {r.id for r in rules if r.profile == "hardened"} == HARDENED
    assert all(r.in_profile("hardened") for r in rules)
    assert [r.id for r in rules if r.in_profile("baseline")] == [
        r.id for r in rules if r.id not in HARDENED]


def test_a_global_rule_without_a_profile_is_refused() -> None:
    def fn(s, ctx):  # pragma: no cover
        return iter(())

    fn.__module__ = "tootcheck.policy.rules.wl"  # past the area check; refused before adding
    with pytest.raises(ValueError, match="declare profile="):
        rule("MSTDN-WL-999", Severity.INFO, "x", kinds=None, remediation="x.", refs=("x",))(fn)
    with pytest.raises(ValueError, match="profile must be one of"):
        rule("MSTDN-WL-998", Severity.INFO, "x", kinds=None, remediation="x.", refs=("x",),
             profile="strict")(fn)


def test_profile_on_the_command_line_and_in_the_config(tmp_path, capsys) -> None:
    from tootcheck.cli import main

    config = tmp_path / "tootcheck.toml"
    config.write_text('profile = "hardened"\n')
    render = "manifests/rendered/mastodon.yaml"
    assert main(["policy", "--config", str(config), render]) == 0
    assert "outside the profile" not in capsys.readouterr().out
    assert main(["policy", "--config", str(config), "--profile", "baseline", render]) == 0
    assert f"{len(HARDENED)} rule(s) outside the profile not run" in capsys.readouterr().out
    config.write_text('profile = "paranoid"\n')
    assert main(["policy", "--config", str(config), render]) == 2
    assert "profile: must be one of baseline, hardened" in capsys.readouterr().err
