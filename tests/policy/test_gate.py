"""The pytest gate, run as an inner pytest session (pytester): ids carry the rule and the
object, ERROR fails, WARN warns (fails under --policy-strict), waived findings and rules
with no matching objects are skipped with the reason, JUnit and SARIF are written."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pytest
import yaml

from tests import REPO_ROOT, load_all
from tootcheck.policy.config import MASTODON_SECRET_KEYS

REFERENCE = REPO_ROOT / "manifests" / "rendered" / "mastodon.yaml"
MODULE = """
from pathlib import Path
from tootcheck.policy.gate import PolicyGate
HERE = Path(__file__).parent
test_policy = PolicyGate(renders=HERE / "rendered", waivers=HERE / "waivers.yaml",
                         config=HERE / "tootcheck.toml")
"""
WAIVERS = """\
waivers:
- rule: MSTDN-WL-005
  object: Deployment/mastodon/mastodon:sidekiq
  reason: pinned by digest upstream soon
  expires: 2099-01-01
- rule: MSTDN-WL-001
  object: Deployment/mastodon/gone
  reason: expired on purpose
  expires: 2020-01-01
- rule: MSTDN-WL-001
  object: Service/mastodon/mastodon-web
  reason: stale on purpose (the rule never applies to a Service)
  expires: 2099-01-01
"""


@pytest.fixture
def gate_dir(pytester: pytest.Pytester) -> pytest.Pytester:
    docs = list(load_all(REFERENCE.read_text()))
    for d in docs:
        if d["kind"] == "ConfigMap":
            d["data"]["SECRET_KEY_BASE"] = "0" * 64  # ERROR, unwaived
        if d["kind"] == "Service" and d["metadata"]["name"] == "mastodon-web":
            d["spec"]["type"] = "NodePort"  # WARN
        if d["kind"] == "Deployment":
            for c in d["spec"]["template"]["spec"]["containers"]:
                if c["name"] == "sidekiq":
                    c["image"] = "ghcr.io/mastodon/mastodon:latest"  # ERROR, waived
    rendered = pytester.path / "rendered"
    rendered.mkdir()
    (rendered / "mastodon.yaml").write_text(yaml.safe_dump_all(docs, sort_keys=False))
    (rendered / "overlay-kind.yaml").write_text(REFERENCE.read_text())
    pytester.makefile(".yaml", waivers=WAIVERS)
    keys = ", ".join(f'"{k}"' for k in MASTODON_SECRET_KEYS)
    (pytester.path / "tootcheck.toml").write_text(
        'overlay_sources = ["*overlay-*.yaml"]\nprofile = "hardened"\n'
        f'[external_secrets]\n"mastodon/mastodon-secrets" = [{keys}]\n')
    pytester.makepyfile(test_gate_inner=MODULE)
    return pytester


def test_gate_profile_option(gate_dir: pytest.Pytester) -> None:
    """--policy-profile baseline overrides the config's hardened: the hardening rules are
    skipped with the reason, the baseline ones still fail."""
    result = gate_dir.runpytest("-v", "-rs", "--policy-profile=baseline",
                                f"--reports-dir={gate_dir.path / 'reports'}",
                                "-p", "no:cacheprovider", "-p", "no:pytest-kind",
                                "-o", "enable_assertion_pass_hook=true")
    out = result.stdout.str()
    assert "MSTDN-WL-001[not run] SKIPPED" in out
    assert "MSTDN-WL-001: profile hardened (this run: baseline)" in out
    assert "MSTDN-SECRET-001[ConfigMap/mastodon/mastodon-env] FAILED" in out
    assert "MSTDN-SEC-002[Deployment" not in out


def test_gate_items(gate_dir: pytest.Pytester) -> None:
    reports = gate_dir.path / "reports"
    result = gate_dir.runpytest("-v", "-rs", f"--reports-dir={reports}",
                                f"--junitxml={reports / 'junit.xml'}", "-p", "no:cacheprovider",
                                "-p", "no:pytest-kind", "-o", "enable_assertion_pass_hook=true")
    out = result.stdout.str()
    assert "test_gate_inner.py::MSTDN-SECRET-001[ConfigMap/mastodon/mastodon-env] FAILED" in out
    assert "MSTDN-WL-005[Deployment/mastodon/mastodon:sidekiq] SKIPPED" in out
    assert "waived until 2099-01-01: pinned by digest upstream soon" in out
    assert "MSTDN-WL-007[Service/mastodon/mastodon-web] PASSED" in out  # WARN: warning only
    assert "PolicyWarning" in out
    assert "MSTDN-PV-003[no matching objects] SKIPPED" in out
    overlay = "MSTDN-WL-001[Deployment/mastodon/mastodon:web@overlay-kind]"
    assert f"{overlay} PASSED" in out
    assert "waiver[expired: MSTDN-WL-001 Deployment/mastodon/gone] FAILED" in out
    assert "policy gate summary" in out and "verdict FAIL" in out
    assert result.ret == 1
    assert result.parseoutcomes()["failed"] == 7, out
    # the planted secret also shadows the Secret's key in every container (WL-006), and
    # sidekiq on :latest differs from web's version (UPG-001, not waived)
    for name in ("MSTDN-WL-006[Deployment/mastodon/mastodon:web]",
                 "MSTDN-UPG-001[Deployment/mastodon/mastodon:sidekiq]"):
        assert f"{name} FAILED" in out
    names = {c.get("name") for c in ET.parse(reports / "junit.xml").getroot().iter("testcase")}
    assert "MSTDN-SECRET-001[ConfigMap/mastodon/mastodon-env]" in names
    sarif = json.loads((reports / "policy.sarif").read_text())
    results = sarif["runs"][0]["results"]
    assert {"MSTDN-SECRET-001", "MSTDN-WL-005", "MSTDN-WL-007"} <= {r["ruleId"] for r in results}


def test_gate_strict(gate_dir: pytest.Pytester) -> None:
    result = gate_dir.runpytest("-q", "--policy-strict", f"--reports-dir={gate_dir.path / 'r'}",
                                "-p", "no:cacheprovider", "-p", "no:pytest-kind", "-k", "WL-007 or stale",
                                "-o", "enable_assertion_pass_hook=true")
    out = result.stdout.str()
    assert "FAILED test_gate_inner.py::MSTDN-WL-007[Service/mastodon/mastodon-web]" in out
    assert "FAILED test_gate_inner.py::waiver[stale: MSTDN-WL-001 Service/mastodon/mastodon-web]" in out
