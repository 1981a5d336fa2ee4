"""The evidence hook in a real inner pytest session: a bundle for the failing test
only, linked from JUnit, censored, with collector errors beside the evidence."""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tests.inner import run as run_pytest

REPO = Path(__file__).resolve().parents[2]

CONFTEST = '''
from tests.kube.fakes import FakeKube
from tootcheck.hooks.evidence import register_source
from tootcheck.kube.evidence import Source


def pytest_sessionstart(session):
    kube = FakeKube([
        {"kind": "Pod", "apiVersion": "v1", "metadata": {"name": "mastodon-abc", "namespace": "mastodon"},
         "spec": {"containers": [{"name": "web"}]},
         "status": {"phase": "Running", "containerStatuses": [
             {"name": "web", "ready": False, "restartCount": 1, "state": {"running": {}},
              "lastState": {"terminated": {"exitCode": 1}}}]}},
        {"kind": "Secret", "apiVersion": "v1",
         "metadata": {"name": "mastodon-secrets", "namespace": "mastodon"},
         "stringData": {"OTP_SECRET": "otp-secret-value-0123456789"}},
    ])
    kube.logs[("mastodon", "mastodon-abc", "web", False)] = "booted with otp-secret-value-0123456789\\n"
    kube.logs[("mastodon", "mastodon-abc", "web", True)] = "crashed\\n"
    kube.fail["list:Event"] = RuntimeError("events API down")
    register_source(session.config, lambda: Source(kube, namespaces=["mastodon"]))
'''

TESTS = '''
from tootcheck.redaction import Secret

TOKEN = Secret("inner-secret-token-123456", "token")


def test_passes():
    assert 1 + 1 == 2


def test_fails():
    assert TOKEN.reveal() == "something else", "server refused the token"
'''


@pytest.fixture(scope="module")
def inner_run(tmp_path_factory):
    directory = tmp_path_factory.mktemp("evidence")
    (directory / "pytest.ini").write_text(
        "[pytest]\naddopts = -p no:pytest-kind -p no:hypothesispytest -p no:pytest_httpserver\n"
        "enable_assertion_pass_hook = true\n")
    (directory / "conftest.py").write_text(CONFTEST)
    (directory / "test_inner.py").write_text(TESTS)
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOOTCHECK_")}
    env["PYTHONPATH"] = str(REPO)
    done = run_pytest(
        ["-p", "no:cacheprovider", "--reports-dir", str(directory / "reports"), "--junitxml",
         str(directory / "junit.xml"), "-q"],
        cwd=directory, env=env, timeout=120)
    return directory, done


def test_only_the_failing_test_gets_a_bundle(inner_run):
    directory, done = inner_run
    assert done.returncode == pytest.ExitCode.TESTS_FAILED, done.stdout + done.stderr
    bundles = sorted(p.name for p in (directory / "reports" / "evidence").iterdir())
    assert bundles == ["test_inner.py__test_fails"]


def test_bundle_holds_failure_and_cluster_evidence_censored(inner_run):
    directory, _ = inner_run
    bundle = directory / "reports" / "evidence" / "test_inner.py__test_fails"
    failure = (bundle / "failure.txt").read_text()
    assert "server refused the token" in failure and "AssertionError" in failure
    assert "inner-secret-token-123456" not in failure and "***" in failure
    assert (bundle / "pods/mastodon/mastodon-abc/web.previous.log").read_text().endswith("crashed\n")
    assert "otp-secret-value" not in (bundle / "pods/mastodon/mastodon-abc/web.log").read_text()
    assert "otp-secret-value" not in (bundle / "secrets.yaml").read_text()
    assert (bundle / "not-ready" / "Pod_mastodon_mastodon-abc.yaml").exists()


def test_collector_error_sits_beside_the_original_failure(inner_run):
    directory, done = inner_run
    bundle = directory / "reports" / "evidence" / "test_inner.py__test_fails"
    assert "events in mastodon: RuntimeError: events API down" in (
        bundle / "collector-errors.txt").read_text()
    assert "1 failed, 1 passed" in done.stdout
    assert "AssertionError: server refused the token" in done.stdout


def test_junit_links_the_bundle_for_the_failing_testcase_only(inner_run):
    directory, _ = inner_run
    root = ET.parse(directory / "junit.xml").getroot()
    props = {case.get("name"): {p.get("name"): p.get("value") for p in case.iter("property")}
             for case in root.iter("testcase")}
    assert props["test_fails"]["evidence"] == "reports/evidence/test_inner.py__test_fails"
    assert "evidence" not in props["test_passes"]


def test_console_points_at_the_bundle_in_one_line(inner_run):
    _, done = inner_run
    lines = [ln for ln in done.stdout.splitlines() if "reports/evidence/test_inner.py__test_fails" in ln]
    assert len(lines) == 1
