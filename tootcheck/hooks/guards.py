"""pytest hooks: false-green guards.

- A test whose call phase passed without a single passing ``assert`` (or a
  ``pytest.raises`` that caught what it expected) fails ("made no assertion").
  Counting uses pytest's ``pytest_assertion_pass`` hook, enabled by
  ``enable_assertion_pass_hook = true`` in the ini options, and a wrapper around
  ``pytest.ExceptionInfo.fill_unfilled``, which ``pytest.raises`` calls on a match.
  With the hook off (or ``--assert=plain``) the guard cannot count: the run is refused.
- A test retried by pytest-rerunfailures that finally passed is marked flaky
  (a ``flaky`` user property, and the reports list it as flaky, never as a pass);
  in gate and nightly mode it fails the run unless ``--allow-flaky``.
- ``--check-coverage``: a live check's healthy case or declared fault that no passing
  test proved (``tootcheck.testing.expect_ok``/``expect_fault``) fails the run.
- An error in teardown already fails the run in pytest; the reports keep it as an
  error of that test rather than a pass (see ``tootcheck.reporting``).
- A failure text that contains a registered secret (pytest's assertion rewriting
  prints compared values) is redacted before the console or JUnit sees it.

Parallel runs (pytest-xdist): assertion counting happens where the test runs and
decides the report's outcome there; proofs travel in the report's
``tootcheck_proven`` attribute and flakiness in its user properties, so the
run-level verdicts are taken by the controller from ``pytest_runtest_logreport``.

Opt-out for a test that legitimately proves something without ``assert`` (it
should not exist): ``@pytest.mark.no_assertion_required(reason=...)``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Generator
from typing import Any

import pytest
from _pytest.assertion import util as _assertion_util

from tootcheck.redaction import redact
from tootcheck.settings import active
from tootcheck.testing import drain_recent, missing_proofs

ASSERTS = pytest.StashKey[Counter[str]]()
NO_ASSERT = "made no assertion: a test that asserts nothing proves nothing"
HOOK_OFF = ("the no-assertion guard cannot count asserts: {why}; set enable_assertion_pass_hook "
            "= true in the pytest ini options (and do not run with --assert=plain)")
PROVEN_ATTR = "tootcheck_proven"  # on call reports: [[check, code], ...]
FLAKY_MODES = ("gate", "nightly")


_CURRENT: list[pytest.Item] = []  # the item whose call phase is running
_SESSIONS: list[pytest.Config] = []
_ORIGINAL_FILL = pytest.ExceptionInfo.fill_unfilled


def _counting_fill(self: pytest.ExceptionInfo[BaseException], exc_info: object) -> None:
    _ORIGINAL_FILL(self, exc_info)  # type: ignore[arg-type]
    if _CURRENT:
        item = _CURRENT[-1]
        item.config.stash[ASSERTS][item.nodeid] += 1


def _hook_off(config: pytest.Config) -> str:
    if not config.getini("enable_assertion_pass_hook"):
        return "enable_assertion_pass_hook is off"
    if getattr(config.option, "assertmode", "rewrite") == "plain":
        return "--assert=plain turns assertion rewriting off"
    return ""


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "no_assertion_required(reason): exempt a test from the no-assertion guard")
    why = _hook_off(config)
    if why:
        raise pytest.UsageError(HOOK_OFF.format(why=why))
    config.stash[ASSERTS] = Counter()
    # Nested in-process sessions (pytester) share the class: install once, remove last.
    _SESSIONS.append(config)
    pytest.ExceptionInfo.fill_unfilled = _counting_fill  # type: ignore[method-assign]
    config.pluginmanager.register(RunVerdicts(config), "tootcheck-guards")


def pytest_unconfigure(config: pytest.Config) -> None:
    if config in _SESSIONS:
        _SESSIONS.remove(config)
    if not _SESSIONS:
        pytest.ExceptionInfo.fill_unfilled = _ORIGINAL_FILL  # type: ignore[method-assign]


def pytest_assertion_pass(item: pytest.Item) -> None:  # pytest passes only the arguments named
    item.config.stash[ASSERTS][item.nodeid] += 1
    if _CURRENT and _CURRENT[-1] is item:
        _pause_pass_hook(item)


# One passing assert per test is all the guard needs, but while the pass hook is set pytest
# builds an explanation for every passing assert (saferepr of each operand, the
# assertrepr_compare hook): in a test that asserts in a loop, more than the test itself
# costs. So once the test body has passed one, the hook is paused for the rest of the body
# (pytest reads it from ``_pytest.assertion.util._assertion_pass``), unless another plugin
# also implements it. The body's end restores it; so does pytest after the test.
_PAUSED: list[Any] = []


def _pause_pass_hook(item: pytest.Item) -> None:
    if _PAUSED or len(item.ihook.pytest_assertion_pass.get_hookimpls()) != 1:
        return
    hook = getattr(_assertion_util, "_assertion_pass", None)
    if hook is not None:
        _PAUSED.append(hook)
        _assertion_util._assertion_pass = None


def _resume_pass_hook() -> None:
    if _PAUSED:
        _assertion_util._assertion_pass = _PAUSED.pop()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.failed and report.longrepr is not None:
        text = str(report.longrepr)
        masked = redact(text)
        if masked != text:
            report.longrepr = masked
    if report.when == "call":
        proofs = drain_recent()
        reruns = getattr(item, "execution_count", 1) - 1
        if reruns > 0 and report.passed:
            item.user_properties.append(("flaky", f"passed after {reruns} rerun(s)"))
            report.user_properties = list(item.user_properties)
        if (
            report.passed
            and isinstance(item, pytest.Function)  # custom items (policy rules) judge themselves
            and item.config.stash[ASSERTS][item.nodeid] == 0
            and item.get_closest_marker("no_assertion_required") is None
            and not hasattr(report, "wasxfail")
        ):
            report.outcome = "failed"
            report.longrepr = f"{item.nodeid}: {NO_ASSERT}"
        if report.passed and proofs:
            setattr(report, PROVEN_ATTR, [list(p) for p in sorted(set(proofs))])
    return report


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, None, None]:
    # Only the test body counts (not fixtures); a rerun starts afresh.
    item.config.stash[ASSERTS][item.nodeid] = 0
    drain_recent()
    _CURRENT.append(item)
    try:
        return (yield)
    finally:
        _CURRENT.pop()
        _resume_pass_hook()


def is_worker(config: pytest.Config) -> bool:
    """True in a pytest-xdist worker: run-level verdicts belong to the controller."""
    return hasattr(config, "workerinput")


def fail_run(session: pytest.Session, title: str, lines: list[str]) -> None:
    """Print a titled block and make the run exit 1 (unless it already failed worse)."""
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_sep("=", title, red=True)
        for line in lines:
            reporter.write_line(f"  {line}")
    if session.exitstatus in (pytest.ExitCode.OK, pytest.ExitCode.NO_TESTS_COLLECTED):
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


class RunVerdicts:
    """Controller-side verdicts over every report: coverage and flaky passes."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.proofs: set[tuple[str, str]] = set()
        self.flaky: dict[str, str] = {}

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        for check, code in getattr(report, PROVEN_ATTR, None) or ():
            self.proofs.add((str(check), str(code)))
        if report.when == "call" and report.passed:
            props: dict[str, Any] = dict(report.user_properties or ())
            if "flaky" in props:
                self.flaky[report.nodeid] = str(props["flaky"])

    @pytest.hookimpl(tryfirst=True)  # before the reports plugin writes the exit status
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        if is_worker(self.config):
            return
        if self.config.getoption("check_coverage"):
            missing = missing_proofs(self.proofs)
            if missing:
                fail_run(session, "live check coverage: NOT PROVEN", missing)
        settings = active()
        if self.flaky and settings.mode in FLAKY_MODES and not settings.allow_flaky:
            fail_run(session, f"passed only on rerun (fails {settings.mode} mode; "
                              "--allow-flaky to accept)",
                     [f"{nodeid}: {why}" for nodeid, why in sorted(self.flaky.items())])
