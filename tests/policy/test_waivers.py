"""Waivers: matching (object, container, render), expiry, near expiry, staleness, and
waived findings reported as suppressed, never as passed."""

from __future__ import annotations

import datetime as dt

import pytest

from tests.policy.casefiles import CASE_CONFIG, CASES_DIR
from tootcheck.errors import BadInput
from tootcheck.model import Severity
from tootcheck.policy.bundle import Bundle, parse_stream
from tootcheck.policy.engine import evaluate
from tootcheck.policy.registry import all_rules, load_rules
from tootcheck.policy.waivers import parse_waivers

TODAY = dt.date(2026, 11, 27)
IDS = [r.id for r in all_rules()]
REG = load_rules()
BROKEN = CASES_DIR / "MSTDN-WL-005" / "fail-latest.yaml"  # sidekiq on :latest


def run_with(waivers_yaml: str, today: dt.date = TODAY, label: str = ""):
    waivers = parse_waivers(waivers_yaml, "waivers.yaml", IDS)
    bundle = Bundle(parse_stream(BROKEN.read_text(), "broken.yaml"), label=label)
    return evaluate([bundle], CASE_CONFIG, waivers=waivers, today=today,
                    rules=[REG.get("MSTDN-WL-005")])


def entry(obj: str, expires: str = "2027-03-01", rule: str = "MSTDN-WL-005") -> str:
    return (f"waivers:\n- rule: {rule}\n  object: {obj}\n  reason: upstream default, see issue 1\n"
            f"  expires: {expires}\n")


def test_unwaived_fails() -> None:
    run = run_with("waivers: []\n")
    assert run.failed(strict=False)


def test_waiver_suppresses_and_reports_skipped() -> None:
    run = run_with(entry("Deployment/mastodon/mastodon:sidekiq"))
    [res] = [r for r in run.results if r.findings]
    assert res.status == "suppressed" and not run.failed(strict=True)
    assert res.findings[0].waiver.reason == "upstream default, see issue 1"
    assert not run.waiver_problems


def test_container_and_render_must_match() -> None:
    assert run_with(entry("Deployment/mastodon/mastodon:web")).failed(strict=False)
    assert run_with(entry("Deployment/mastodon/mastodon@overlay-kind")).failed(strict=False)
    assert not run_with(entry("Deployment/mastodon/mastodon@overlay-kind"),
                        label="overlay-kind").failed(strict=False)
    assert not run_with(entry("Deployment/mastodon/mastodon")).failed(strict=False)


def test_expired_waiver_fails_and_no_longer_suppresses() -> None:
    run = run_with(entry("Deployment/mastodon/mastodon:sidekiq", "2026-11-26"))
    [problem] = run.waiver_problems
    assert problem.kind == "expired" and problem.severity is Severity.ERROR
    assert "expired 1 day(s) ago" in problem.message
    assert any(r.status == "fail" for r in run.results)


def test_expiring_soon_warns() -> None:
    run = run_with(entry("Deployment/mastodon/mastodon:sidekiq", "2026-12-10"))
    [problem] = run.waiver_problems
    assert problem.kind == "expiring" and "expires in 13 day(s)" in problem.message
    assert not run.failed(strict=False) and run.failed(strict=True)


def test_stale_waiver_is_reported() -> None:
    # the object is checked, but the rule finds nothing on it: the waiver is stale
    run = run_with(entry("Deployment/mastodon/mastodon:sidekiq")
                   + entry("Deployment/mastodon/mastodon:web", rule="MSTDN-WL-005")[len("waivers:\n"):])
    [problem] = run.waiver_problems
    assert problem.kind == "stale" and problem.severity is Severity.WARN
    assert "Deployment/mastodon/mastodon" in problem.message
    assert "line 6 of waivers.yaml" in problem.message


def test_waiver_for_an_object_outside_the_input_is_only_a_note() -> None:
    # e.g. the infrastructure's waivers when the reference is gated alone
    run = run_with(entry("Deployment/mastodon/mastodon:sidekiq")
                   + entry("Deployment/mastodon/gone", rule="MSTDN-WL-005")[len("waivers:\n"):])
    [problem] = run.waiver_problems
    assert problem.kind == "absent" and problem.severity is Severity.INFO
    assert "no such object" in problem.message
    assert not run.failed(strict=True)


@pytest.mark.parametrize(("text", "message"), [
    ("waivers: [{rule: MSTDN-NOPE-001, object: Pod/a/b, reason: r, expires: 2027-01-01}]",
     "waivers.yaml:1: waiver names unknown rule MSTDN-NOPE-001"),
    ("waivers: [{rule: MSTDN-WL-005, object: Pod/a/b, expires: 2027-01-01}]", "lacks reason"),
    ("waivers: [{rule: MSTDN-WL-005, object: 'a b', reason: r, expires: 2027-01-01}]",
     "is not Kind/namespace/name"),
    ("waivers: [{rule: MSTDN-WL-005, object: Pod/a/b, reason: r, expires: soon}]",
     "is not a date"),
    ("waivers: [{rule: MSTDN-WL-005, object: Pod/a/b, reason: r, expires: 2027-01-01, x: 1}]",
     "unknown waiver field(s) x"),
    ("- just a list", "expected a mapping with a 'waivers' list"),
    ("waivers: [", "not valid YAML"),
    # YAML reads this as a timestamp and PyYAML raises ValueError, not a YAMLError
    ("waivers: [{rule: MSTDN-WL-005, object: Pod/a/b, reason: r, expires: 2027-13-45}]",
     "not valid YAML: month must be in 1..12"),
])
def test_bad_waiver_files(text: str, message: str) -> None:
    with pytest.raises(BadInput) as exc:
        parse_waivers(text, "waivers.yaml", IDS)
    assert message in str(exc.value) and "\n" not in str(exc.value)


def test_unreadable_waivers_and_config_files_are_bad_input(tmp_path) -> None:
    from tootcheck.policy.config_loader import load_config
    from tootcheck.policy.waivers import load_waivers

    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"\x00\xff\xfe binary")
    with pytest.raises(BadInput, match="cannot read"):
        load_waivers(binary, IDS)
    with pytest.raises(BadInput, match="cannot read"):
        load_config(binary)
    bad = tmp_path / "tootcheck.toml"
    bad.write_text("domain = 2027-13-45\n")
    with pytest.raises(BadInput, match="not valid TOML"):
        load_config(bad)
    bad.write_text("web_port = true\n")  # TOML's true is no port number
    with pytest.raises(BadInput, match="web_port: must be an integer, not True"):
        load_config(bad)


def test_waiver_for_a_rule_outside_the_profile_is_a_note_not_stale() -> None:
    """Gating in baseline: a waiver for a hardened rule matches nothing because the rule
    did not run, which is not staleness."""
    from dataclasses import replace as _replace

    from tests import REPO_ROOT
    from tootcheck.policy.bundle import Bundle, parse_stream
    from tootcheck.policy.engine import evaluate
    from tootcheck.policy.waivers import parse_waivers

    render = REPO_ROOT / "manifests" / "rendered" / "mastodon.yaml"
    bundle = Bundle(parse_stream(render.read_text(), "manifests/rendered/mastodon.yaml"))
    text = ("waivers:\n- rule: MSTDN-WL-001\n  object: Deployment/mastodon/mastodon\n"
            "  reason: test\n  expires: 2099-01-01\n")
    waivers = parse_waivers(text, "w.yaml", ["MSTDN-WL-001"])
    run = evaluate([bundle], _replace(CASE_CONFIG, profile="baseline"), waivers=waivers)
    assert [(p.kind, p.severity.value) for p in run.waiver_problems] == [("absent", "INFO")]
    assert "did not run" in run.waiver_problems[0].message
    run = evaluate([bundle], CASE_CONFIG, waivers=waivers)  # hardened: the rule runs, passes
    assert [p.kind for p in run.waiver_problems] == ["stale"]
