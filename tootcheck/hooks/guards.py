"""pytest hooks: false-green guards.

- A test whose call phase passed without a single passing ``assert`` (or a
  ``pytest.raises`` that caught what it expected) fails ("made no assertion").
  Counting uses pytest's ``pytest_assertion_pass`` hook, enabled by
  ``enable_assertion_pass_hook = true`` in the ini options, and a wrapper around
  ``pytest.ExceptionInfo.fill_unfilled``, which ``pytest.raises`` calls on a match.
- A test retried by pytest-rerunfailures that finally passed is marked flaky
  (a ``flaky`` user property, and the reports list it as flaky, never as a pass).
- An error in teardown already fails the run in pytest; the reports keep it as an
  error of that test rather than a pass (see ``tootcheck.reporting``).
- A failure text that contains a registered secret (pytest's assertion rewriting
  prints compared values) is redacted before the console or JUnit sees it.

Opt-out for a test that legitimately proves something without ``assert`` (it
should not exist): ``@pytest.mark.no_assertion_required(reason=...)``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Generator

import pytest

from tootcheck.redaction import redact

ASSERTS = pytest.StashKey[Counter[str]]()
NO_ASSERT = "made no assertion: a test that asserts nothing proves nothing"


_CURRENT: list[pytest.Item] = []  # the item whose call phase is running
_SESSIONS: list[pytest.Config] = []
_ORIGINAL_FILL = pytest.ExceptionInfo.fill_unfilled


def _counting_fill(self: pytest.ExceptionInfo[BaseException], exc_info: object) -> None:
    _ORIGINAL_FILL(self, exc_info)  # type: ignore[arg-type]
    if _CURRENT:
        item = _CURRENT[-1]
        item.config.stash[ASSERTS][item.nodeid] += 1


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "no_assertion_required(reason): exempt a test from the no-assertion guard")
    config.stash[ASSERTS] = Counter()
    # Nested in-process sessions (pytester) share the class: install once, remove last.
    _SESSIONS.append(config)
    pytest.ExceptionInfo.fill_unfilled = _counting_fill  # type: ignore[method-assign]


def pytest_unconfigure(config: pytest.Config) -> None:
    if config in _SESSIONS:
        _SESSIONS.remove(config)
    if not _SESSIONS:
        pytest.ExceptionInfo.fill_unfilled = _ORIGINAL_FILL  # type: ignore[method-assign]


def _counting_enabled(config: pytest.Config) -> bool:
    return bool(config.getini("enable_assertion_pass_hook"))


def pytest_assertion_pass(item: pytest.Item) -> None:  # pytest passes only the arguments named
    item.config.stash[ASSERTS][item.nodeid] += 1


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
        reruns = getattr(item, "execution_count", 1) - 1
        if reruns > 0 and report.passed:
            item.user_properties.append(("flaky", f"passed after {reruns} rerun(s)"))
            report.user_properties = list(item.user_properties)
        if (
            report.passed
            and isinstance(item, pytest.Function)  # custom items (policy rules) judge themselves
            and _counting_enabled(item.config)
            and item.config.stash[ASSERTS][item.nodeid] == 0
            and item.get_closest_marker("no_assertion_required") is None
            and not hasattr(report, "wasxfail")
        ):
            report.outcome = "failed"
            report.longrepr = f"{item.nodeid}: {NO_ASSERT}"
    return report


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, None, None]:
    # Only the test body counts (not fixtures); a rerun starts afresh.
    item.config.stash[ASSERTS][item.nodeid] = 0
    _CURRENT.append(item)
    try:
        return (yield)
    finally:
        _CURRENT.pop()
