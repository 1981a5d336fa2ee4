"""The rehearsal's pytest wiring (fixtures/rehearsal.py, suites/rehearsal) in inner
sessions: the upgrade happens before the first test, the verification runs after every
other test, the metrics become test properties, and nothing happens outside rehearsal
mode. The cluster work (``run.preflight``, ``run.rehearse``) is replaced by recorders
here; it is proven in test_run.py."""

from __future__ import annotations

import json

import pytest

from tests import REPO_ROOT
from tests.rehearsal.pods import T0, mastodon_pod
from tootcheck.rehearsal import run  # imported here, so inner sessions share this module
from tootcheck.rehearsal.downtime import Sample
from tootcheck.rehearsal.plan import make_plan
from tootcheck.rehearsal.verify import UpgradeRecord

EVENTS: list[str] = []

CONFTEST = """
import pytest
from tests.rehearsal.test_fixture import EVENTS
from tootcheck.target import Target


@pytest.fixture(scope="session")
def target():
    EVENTS.append("target")
    return Target(name="kind://sim")
"""

TESTS = """
import pytest
from tests.rehearsal.test_fixture import EVENTS


@pytest.mark.rehearsal_verify
def test_0_verification(rehearsal):
    assert rehearsal == "RESULT"
    assert EVENTS[-1] == "suite test ran", EVENTS


def test_1_suite():
    assert EVENTS[:3] == ["preflight v4.6.3->v4.7.2", "target", "rehearse kind://sim R"], EVENTS
    EVENTS.append("suite test ran")
"""

PLUGINS = ("-p", "fixtures.rehearsal", "-p", "no:cacheprovider", "-p", "no:pytest-kind",
           "-o", "enable_assertion_pass_hook=true")
REHEARSAL = ("--mode=rehearsal", "--target=kind", "--rehearse-from=v4.6.3",
             "--rehearse-to=v4.7.2")


@pytest.fixture
def recorded(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    EVENTS.clear()
    monkeypatch.setattr(run, "preflight", lambda plan: EVENTS.append(
        f"preflight {plan.source}->{plan.target}") or "R")
    monkeypatch.setattr(run, "rehearse", lambda target, plan, renders, **kw: EVENTS.append(
        f"rehearse {target.name} {renders}") or "RESULT")
    return EVENTS


@pytest.fixture
def session(pytester: pytest.Pytester, recorded: list[str]) -> pytest.Pytester:
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_wiring=TESTS)
    return pytester


def test_upgrade_first_verification_last(session: pytest.Pytester) -> None:
    result = session.runpytest_inprocess(*PLUGINS, f"--reports-dir={session.path / 'reports'}",
                                         "-v", *REHEARSAL)
    result.assert_outcomes(passed=2)
    lines = [line for line in result.outlines if "::test_" in line and "PASSED" in line]
    assert [line.split("::")[1].split()[0] for line in lines] == ["test_1_suite",
                                                                  "test_0_verification"]


def test_nothing_happens_outside_rehearsal_mode(session: pytest.Pytester) -> None:
    result = session.runpytest_inprocess(*PLUGINS, f"--reports-dir={session.path / 'reports'}",
                                         "-rs")
    result.assert_outcomes(failed=1, skipped=1)  # test_1 expects a rehearsal; test_0 skips
    result.stdout.fnmatch_lines(["*not a rehearsal: run make rehearse FROM=<release> TO=<release>*"])
    assert EVENTS == []


def test_the_suite_records_migration_time_and_downtime(pytester: pytest.Pytester,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    samples = [Sample(T0 + t, probe, ok) for t, ok in ((0, True), (5, False), (47, True))
               for probe in ("health", "streaming")]
    record = UpgradeRecord("v4.6.3", "v4.7.2", "kind://sim", pod=mastodon_pod("v4.7.2"),
                           samples=samples, applied_at=T0, ready_at=T0 + 60)
    result_of = run.RehearsalResult(make_plan("v4.6.3", "v4.7.2"), None, "", record,
                                    ("a note",), {"seed_s": 1.5})
    monkeypatch.setattr(run, "preflight", lambda plan: None)
    monkeypatch.setattr(run, "rehearse", lambda *args, **kwargs: result_of)
    pytester.makeconftest("import pytest\nfrom tootcheck.target import Target\n\n"
                          "@pytest.fixture(scope='session')\ndef target():\n"
                          "    return Target(name='kind://sim')\n")
    pytester.makepyfile(test_rehearsal=(REPO_ROOT / "suites/rehearsal/test_rehearsal.py").read_text())
    junit = pytester.path / "junit.xml"
    result = pytester.runpytest_inprocess(*PLUGINS, f"--reports-dir={pytester.path / 'r'}",
                                          f"--junitxml={junit}", "-o", "junit_family=xunit1",
                                          "-k", "test_upgrade", *REHEARSAL)
    result.assert_outcomes(passed=1, deselected=3)
    assert "record_property is incompatible" not in result.stdout.str()
    (test,) = json.loads((pytester.path / "r" / "summary.json").read_text())["tests"]
    properties = test["properties"]
    assert properties["migration_s"] == "42.0" and properties["downtime_s.health"] == "42.0"
    assert properties["seed_s"] == "1.5" and properties["note"] == "a note"
    assert properties["upgrade"].startswith("v4.6.3 -> v4.7.2")
    assert 'name="migration_s" value="42.0"' in junit.read_text()


def test_after_a_failed_upgrade_only_the_upgrade_check_runs(pytester: pytest.Pytester,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    record = UpgradeRecord("v4.6.3", "v4.7.2", "kind://sim",
                           pod=mastodon_pod("v4.7.2", migrate_exit=1), applied_at=T0,
                           error="v4.6.3 -> v4.7.2: the migration failed: db-migrate exited 1; "
                                 "last lines of the current db-migrate log: PG::UniqueViolation",
                           migration_failed=True)
    result_of = run.RehearsalResult(make_plan("v4.6.3", "v4.7.2"), None, "", record)
    monkeypatch.setattr(run, "preflight", lambda plan: None)
    monkeypatch.setattr(run, "rehearse", lambda *args, **kwargs: result_of)
    pytester.makeconftest("import pytest\nfrom tootcheck.target import Target\n\n"
                          "@pytest.fixture(scope='session')\ndef target():\n"
                          "    return Target(name='kind://sim')\n")
    pytester.makepyfile(test_rehearsal=(REPO_ROOT / "suites/rehearsal/test_rehearsal.py").read_text(),
                        test_suite="def test_a_suite():\n    assert False, 'ran on a broken pod'\n")
    result = pytester.runpytest_inprocess(*PLUGINS, f"--reports-dir={pytester.path / 'r'}",
                                          "-rs", *REHEARSAL)
    result.assert_outcomes(failed=1, skipped=4)  # upgrade fails; the rest is skipped
    out = result.stdout.str()
    assert "not run: upgrade failed: v4.6.3 -> v4.7.2: the migration failed" in out
    assert "PG::UniqueViolation" in out and "ran on a broken pod" not in out
