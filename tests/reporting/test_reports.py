"""The reports and the false-green guards, proven on real inner pytest runs.

Each inner run is a sample suite with tests that pass, fail, error in teardown,
flake (pass only on rerun) and assert nothing.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests import inner

INI = "[pytest]\nenable_assertion_pass_hook = true\n"

SAMPLE = '''
import pytest

ATTEMPTS = {"flaky": 0}


@pytest.fixture
def broken_teardown():
    yield
    raise RuntimeError("teardown exploded")


def test_passes():
    assert 1 + 1 == 2


def test_fails():
    assert "kirchner" == "social", "values differ"


def test_teardown_error(broken_teardown):
    assert True


def test_flaky():
    ATTEMPTS["flaky"] += 1
    assert ATTEMPTS["flaky"] > 1, "first attempt fails"


def test_asserts_nothing():
    x = 1 + 1


@pytest.mark.skip(reason="not today")
def test_skipped():
    assert False
'''


def run_inner(directory: Path, files: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    """One real pytest session in ``directory`` with the tootcheck plugin loaded."""
    (directory / "pytest.ini").write_text(INI)
    for name, text in files.items():
        (directory / name).write_text(text)
    return inner.run(
        ["-p", "no:cacheprovider", "-p", "no:pytest-kind",
         "-p", "no:hypothesispytest", "-p", "no:pytest_httpserver",
         "--reports-dir", str(directory / "reports"), *args],
        cwd=directory, timeout=120)


@pytest.fixture(scope="module")
def sample_run(tmp_path_factory):
    directory = tmp_path_factory.mktemp("sample")
    result = run_inner(directory, {"test_sample.py": SAMPLE},
                       "--reruns", "1", "--only-rerun", "first attempt fails")
    reports = directory / "reports"
    summary = json.loads((reports / "summary.json").read_text())
    outcomes = {t["nodeid"].split("::")[-1]: t["outcome"] for t in summary["tests"]}
    return result, summary, outcomes, reports


def test_each_outcome_is_reported_honestly(sample_run):
    result, summary, outcomes, _ = sample_run
    assert outcomes == {
        "test_passes": "passed",
        "test_fails": "failed",
        "test_teardown_error": "error",
        "test_flaky": "flaky",
        "test_asserts_nothing": "failed",
        "test_skipped": "skipped",
    }
    assert result.returncode == pytest.ExitCode.TESTS_FAILED
    assert summary["ok"] is False
    assert summary["counts"]["passed"] == 1


def test_teardown_error_fails_the_run_and_names_the_phase(sample_run):
    _, summary, _, _ = sample_run
    record = next(t for t in summary["tests"] if t["nodeid"].endswith("test_teardown_error"))
    assert record["failed_when"] == "teardown"
    assert "teardown exploded" in record["message"]


def test_a_failure_is_summarised_by_its_assertion_message(sample_run):
    # The traceback ends in "test_sample.py:36: AssertionError"; the headline is the message.
    result, summary, _, _ = sample_run
    record = next(t for t in summary["tests"] if t["nodeid"].endswith("test_fails"))
    assert record["message"].splitlines()[0] == "AssertionError: values differ"
    assert "FAILED  test_sample.py::test_fails: AssertionError: values differ" in result.stdout


def test_no_assertion_fails_with_a_clear_message(sample_run):
    _, summary, _, _ = sample_run
    record = next(t for t in summary["tests"] if t["nodeid"].endswith("test_asserts_nothing"))
    assert "made no assertion" in record["message"]


def test_flaky_is_never_a_plain_pass(sample_run):
    result, summary, _, _ = sample_run
    record = next(t for t in summary["tests"] if t["nodeid"].endswith("test_flaky"))
    assert record["reruns"] == 1
    assert "rerun" in record["message"]
    assert "FLAKY   test_sample.py::test_flaky" in result.stdout


def test_html_and_trend_are_written(sample_run):
    result, summary, _, reports = sample_run
    page = (reports / "summary.html").read_text()
    assert "FAILED" in page and "test_teardown_error" in page and "teardown exploded" in page
    trend = [json.loads(line) for line in (reports / "history.jsonl").read_text().splitlines()]
    assert trend[-1]["run_id"] == summary["run_id"]
    assert trend[-1]["counts"]["flaky"] == 1
    assert "tootcheck summary" in result.stdout and "summary.html" in result.stdout


def test_a_clean_run_is_ok_and_secrets_are_redacted(tmp_path):
    result = run_inner(tmp_path, {"test_ok.py": "def test_ok():\n    assert True\n",
                                  "test_leak.py": LEAK}, "test_ok.py")
    summary = json.loads((tmp_path / "reports/summary.json").read_text())
    assert result.returncode == 0, result.stdout
    assert summary["ok"] is True and summary["counts"]["passed"] == 1
    leak_dir = tmp_path / "leak"
    leak_dir.mkdir()
    leaked = run_inner(leak_dir, {"test_leak.py": LEAK}, "--junitxml", str(leak_dir / "junit.xml"))
    assert leaked.returncode == 1 and "test_leaks" in leaked.stdout
    assert "tok-0123456789abcdef" not in leaked.stdout + leaked.stderr
    for path in [leak_dir / "junit.xml", *(leak_dir / "reports").iterdir()]:
        assert "tok-0123456789abcdef" not in path.read_text(), path.name


LEAK = '''
from tootcheck.redaction import Secret

TOKEN = Secret("tok-0123456789abcdef", "token")


def test_leaks():
    assert TOKEN.reveal() == "nope", f"value was {TOKEN.reveal()}"
'''


def test_a_test_whose_body_never_reported_is_not_a_pass():
    # An interrupted session: setup passed, the call phase never reported.
    from types import SimpleNamespace

    from tootcheck.reporting.records import RecordBook

    book = RecordBook()
    for nodeid, phases in (("t.py::interrupted", ["setup"]),
                           ("t.py::finished", ["setup", "call", "teardown"])):
        for when in phases:
            book.add(SimpleNamespace(nodeid=nodeid, when=when, outcome="passed", duration=0.1,
                                     user_properties=[], longrepr=None))
    assert book.records["t.py::interrupted"].outcome == "error"
    assert "never finished" in book.records["t.py::interrupted"].message
    assert book.records["t.py::finished"].outcome == "passed"
    assert book.records["t.py::finished"].message == ""
    assert book.ok is False


def test_a_record_as_a_dict_is_dataclasses_asdict_plus_the_suite() -> None:
    from dataclasses import asdict

    from tootcheck.reporting.records import TestRecord

    record = TestRecord("suites/https/test_https.py::test_x", "failed", 1.5, "boom", "call", 2,
                        "https.certificate", "nightly", "reports/evidence/x", {"faults": "expired"})
    expected = {**asdict(record), "suite": "suites/https"}
    as_dict = record.to_dict()
    assert as_dict == expected
    assert as_dict["properties"] is not record.properties  # a copy, as asdict makes
