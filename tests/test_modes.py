"""Mode tags and refusals: one catalogue, three ways to run it."""

from __future__ import annotations

import subprocess

import pytest

from tests import inner
from tootcheck.checks.registry import CheckSpec, all_checks
from tootcheck.modes import decide, tags


def spec(name: str, *, mutating: bool, modes: tuple[str, ...] = ("gate", "nightly", "rehearsal")):
    return CheckSpec(name, lambda: None, {"x": "y"}, frozenset(modes), mutating, name)


def test_read_only_checks_run_in_every_mode():
    for mode in ("gate", "nightly", "rehearsal"):
        assert decide(spec("https.certificate", mutating=False), mode).run


def test_mutating_check_is_refused_in_nightly_and_says_how_to_allow_it():
    decision = decide(spec("streaming.delivery", mutating=True), "nightly")
    assert not decision.run
    assert decision.reason.startswith("refused: streaming.delivery is mutating")
    assert "--allow-mutating=streaming.delivery" in decision.reason


def test_operator_can_allow_a_mutating_check_by_name():
    assert decide(spec("streaming.delivery", mutating=True), "nightly", ("streaming.delivery",)).run
    assert not decide(spec("streaming.delivery", mutating=True), "nightly", ("other",)).run


def test_mutating_checks_run_in_gate_and_rehearsal():
    assert decide(spec("persistence.markers_survive", mutating=True), "gate").run
    assert decide(spec("persistence.markers_survive", mutating=True), "rehearsal").run


def test_check_outside_its_modes_is_skipped_with_reason():
    decision = decide(spec("persistence.markers_survive", mutating=True, modes=("gate",)), "rehearsal")
    assert not decision.run and "not part of rehearsal mode" in decision.reason


def test_tags_name_modes_and_kind():
    assert tags(spec("a.b", mutating=True, modes=("gate",))) == ["gate", "mutating"]
    assert tags(spec("a.b", mutating=False)) == ["gate", "nightly", "rehearsal", "readonly"]


INNER = '''
import pytest
from tootcheck.checks.registry import live_check


@live_check("inner.reader", faults={"bad": "bad"})
def reader():
    """Reads."""


@live_check("inner.writer", faults={"bad": "bad"}, mutating=True)
def writer():
    """Writes."""


@pytest.mark.check("inner.reader")
def test_reader():
    assert True


@pytest.mark.check("inner.writer")
def test_writer():
    assert True
'''


# The inner runs register their own checks; the suite's real ones are allowed to be absent.
ALLOW_REAL_CHECKS = "--allow-missing=" + ",".join(sorted(all_checks()))


def run_inner(tmp_path, *args: str) -> subprocess.CompletedProcess:
    (tmp_path / "test_inner.py").write_text(INNER)
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    return inner.run(
        ["-p", "no:cacheprovider", "-p", "no:pytest-kind", "-rs",
         "-o", "enable_assertion_pass_hook=true", "-p", "no:hypothesispytest",
         "-p", "no:pytest_httpserver",
         "--reports-dir", str(tmp_path / "reports"), *args],
        cwd=tmp_path, timeout=120)


def test_nightly_run_refuses_mutating_and_runs_read_only(tmp_path):
    result = run_inner(tmp_path, "--mode=nightly")
    assert result.returncode == 0, result.stdout
    assert "1 passed, 1 skipped" in result.stdout
    assert "refused: inner.writer is mutating" in result.stdout


def test_allowed_mutating_check_runs_in_nightly(tmp_path):
    result = run_inner(tmp_path, "--mode=nightly", "--allow-mutating=inner.writer")
    assert "2 passed" in result.stdout, result.stdout


def test_mode_markers_select_read_only_tests(tmp_path):
    result = run_inner(tmp_path, "-m", "readonly")
    assert "1 passed, 1 deselected" in result.stdout, result.stdout


@pytest.mark.parametrize("bad", ["--mode=weekly", "--target=prod"])
def test_bad_mode_or_target_is_one_line_usage_error(tmp_path, bad):
    result = run_inner(tmp_path, bad)
    assert result.returncode == 4
    assert "Traceback" not in result.stderr + result.stdout


def test_a_live_target_defaults_to_nightly_mode(tmp_path):
    # `pytest suites --target=live` without --mode must not run mutating checks on the instance.
    result = run_inner(tmp_path, "--target=live", ALLOW_REAL_CHECKS)
    assert result.returncode == 0, result.stdout
    assert "1 passed, 1 skipped" in result.stdout
    assert "refused: inner.writer is mutating" in result.stdout


def test_an_explicit_mode_wins_over_the_live_default():
    from tootcheck.settings import load

    assert load({"target": "live"}, env={}).mode == "nightly"
    assert load({"target": "live", "mode": "gate"}, env={}).mode == "gate"
    assert load({"target": "live"}, env={"TOOTCHECK_MODE": "gate"}).mode == "gate"
    assert load({"target": "kind"}, env={}).mode == "gate"
    assert load({}, env={"TOOTCHECK_TARGET": "live"}).mode == "nightly"


def test_every_declared_need_names_a_registered_check() -> None:
    from tootcheck.checks.needs import NEEDS
    from tootcheck.checks.registry import all_checks

    unknown = sorted(set(NEEDS) - set(all_checks()))
    assert unknown == [], f"needs declared for checks that do not exist: {unknown}"
