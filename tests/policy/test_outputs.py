"""Report formats: SARIF 2.1.0, JUnit XML, JSON and the human summary."""

from __future__ import annotations

import datetime as dt
import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tests.policy.casefiles import CASE_CONFIG, CASES_DIR
from tootcheck.policy.bundle import Bundle, parse_stream
from tootcheck.policy.engine import evaluate
from tootcheck.policy.junit import write_junit
from tootcheck.policy.registry import all_rules
from tootcheck.policy.render_summary import as_json, human
from tootcheck.policy.sarif import to_sarif, write_sarif
from tootcheck.policy.waivers import parse_waivers

CASE = CASES_DIR / "MSTDN-UPG-001" / "fail-sidekiq-behind.yaml"
SOURCE = "tests/policy/cases/MSTDN-UPG-001/fail-sidekiq-behind.yaml"
WAIVERS = """\
waivers:
- rule: MSTDN-WL-008
  object: Deployment/mastodon/mastodon
  reason: databases listen on 127.0.0.1 only
  expires: 2027-02-01
- rule: MSTDN-WL-007
  object: Deployment/mastodon/mastodon
  reason: stale on purpose (the rule is about Services)
  expires: 2027-02-01
"""


def make_run():
    rules = all_rules()
    waivers = parse_waivers(WAIVERS, "w.yaml", [r.id for r in rules])
    bundle = Bundle(parse_stream(CASE.read_text(), SOURCE))
    return evaluate([bundle], CASE_CONFIG, waivers=waivers, today=dt.date(2026, 11, 27))


RUN = make_run()


def test_sarif_structure(tmp_path: Path) -> None:
    path = write_sarif(RUN, tmp_path / "policy.sarif")
    sarif = json.loads(path.read_text())
    assert sarif["version"] == "2.1.0" and sarif["$schema"].endswith("sarif-2.1.0.json")
    run = sarif["runs"][0]
    rules = run["tool"]["driver"]["rules"]
    assert [r["id"] for r in rules] == [r.id for r in all_rules()]
    for r in rules:
        # SARIF 2.1.0 wants an absolute URI in helpUri (format "uri"); the docs are a
        # repository file, so they are named in properties and linked from help.markdown
        assert "helpUri" not in r and r["properties"]["docs"].startswith("docs/rules.md#mstdn-")
        assert f"]({r['properties']['docs']})" in r["help"]["markdown"]
        assert r["help"]["text"].endswith(".") and r["fullDescription"]["text"]
        assert r["defaultConfiguration"]["level"] in ("error", "warning", "note")
    results = run["results"]
    assert results
    for res in results:
        assert rules[res["ruleIndex"]]["id"] == res["ruleId"]
        assert res["level"] in ("error", "warning", "note")
        loc = res["locations"][0]
        phys = loc["physicalLocation"]
        assert phys["artifactLocation"]["uri"] == SOURCE and phys["region"]["startLine"] >= 1
        kinds = {ll["kind"] for ll in loc["logicalLocations"]}
        assert {"resource", "type", "namespace"} <= kinds
    upg = next(r for r in results if r["ruleId"] == "MSTDN-UPG-001")
    assert upg["level"] == "error" and upg["properties"]["container"] == "sidekiq"
    # the finding points at the sidekiq image line, not at line 1
    text = CASE.read_text().splitlines()
    assert "v4.3.16" in text[upg["locations"][0]["physicalLocation"]["region"]["startLine"] - 1]
    waived = next(r for r in results if r["ruleId"] == "MSTDN-WL-008")
    assert waived["suppressions"][0]["status"] == "accepted"
    notes = run["invocations"][0]["toolExecutionNotifications"]
    texts = [n["message"]["text"] for n in notes]
    assert any("no matching objects" in t for t in texts)
    assert any("stale waiver" in t for t in texts)


def test_junit(tmp_path: Path) -> None:
    root = ET.parse(write_junit(RUN, tmp_path / "junit.xml")).getroot()
    suite = root.find("testsuite")
    names = {c.get("name"): c for c in suite.iter("testcase")}
    failing = names["MSTDN-UPG-001[Deployment/mastodon/mastodon:sidekiq]"]
    assert failing.find("failure") is not None
    assert "MSTDN-UPG-001" in failing.find("failure").text
    assert names["MSTDN-WL-008[Deployment/mastodon/mastodon]"].find("skipped") is not None
    assert names["MSTDN-PV-003[no matching objects]"].find("skipped") is not None
    assert int(suite.get("failures")) >= 1 and int(suite.get("skipped")) >= 2


@pytest.mark.parametrize("strict", [False, True])
def test_junit_counts_are_its_cases(tmp_path: Path, strict: bool) -> None:
    """The suite's counts (made before its cases are written) are what the cases hold:
    one per subject, plus a skipped one per rule without subjects and one per waiver
    problem; with ``strict`` a warning is a failure."""
    warned = CASES_DIR / "MSTDN-SEC-004" / "fail-writable-root.yaml"
    run = evaluate([Bundle(parse_stream(CASE.read_text() + "---\n" + warned.read_text()
                                        .replace("namespace: mastodon", "namespace: other"),
                                        SOURCE))], CASE_CONFIG, waivers=RUN.waivers,
                   today=dt.date(2026, 11, 27))
    assert sum(o.count("warn") for o in run.outcomes) and run.waiver_problems
    suite = ET.parse(write_junit(run, tmp_path / "junit.xml", strict)).getroot()[0]
    cases = list(suite.iter("testcase"))
    assert int(suite.get("tests")) == len(cases) == sum(
        o.matched or 1 for o in run.outcomes) + len(run.waiver_problems)
    assert int(suite.get("failures")) == sum(c.find("failure") is not None for c in cases)
    assert int(suite.get("skipped")) == sum(c.find("skipped") is not None for c in cases)
    assert len({c.get("name") for c in cases}) == len(cases)


def test_json_and_human() -> None:
    data = json.loads(as_json(RUN))
    assert data["verdict"] == "FAIL" and data["exit_code"] == 1
    assert "MSTDN-PV-003" in data["no_matching_objects"]
    f = next(f for f in data["findings"] if f["rule_id"] == "MSTDN-UPG-001")
    assert f["object"] == "Deployment/mastodon/mastodon" and f["line"] > 1
    text = human(RUN)
    assert "ERROR MSTDN-UPG-001 Deployment/mastodon/mastodon:sidekiq" in text
    assert "Waived (suppressed, not passed):" in text and "stale waiver" in text
    assert "Rules that matched no objects (not passed):" in text
    assert text.rstrip().splitlines()[-1].endswith("verdict FAIL")


def test_sarif_for_live_objects_has_no_file() -> None:
    from tootcheck.policy.bundle import K8sObject

    obj = K8sObject(data={"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"},
                          "spec": {"type": "NodePort"}}, source="live:kind/mastodon")
    run = evaluate([Bundle([obj], mode="live")], CASE_CONFIG,
                   rules=[r for r in all_rules() if r.id == "MSTDN-WL-007"])
    [res] = to_sarif(run)["runs"][0]["results"]
    assert "physicalLocation" not in res["locations"][0]
