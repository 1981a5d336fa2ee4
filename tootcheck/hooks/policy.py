"""pytest hooks of the policy gate.

A test module declares ``test_<name> = PolicyGate(...)`` (see suites/policy); this
module turns it into one test item per rule and subject, named after the rule and
the object (``MSTDN-SEC-002[Deployment/mastodon/mastodon:sidekiq]``). ERROR
findings fail; WARN findings warn and fail only under --policy-strict; INFO is
advisory; waived findings and rules that matched nothing are skipped with the
reason, never passed. At the end it prints a short summary table and writes
reports/policy.sarif. The engine itself lives in tootcheck.policy.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import pytest

from tootcheck.errors import BadInput
from tootcheck.policy.engine import PolicyRun
from tootcheck.policy.gate import GateCase, PolicyGate, gate_cases, run_gate
from tootcheck.policy.render_summary import summary_rows, table, totals_line
from tootcheck.policy.sarif import write_sarif
from tootcheck.settings import active

RUNS_KEY = pytest.StashKey[list[PolicyRun]]()
RAN_KEY = pytest.StashKey[set[str]]()


class PolicyWarning(UserWarning):
    """A WARN or INFO policy finding (fails only under --policy-strict, INFO never)."""


class PolicyFailure(Exception):
    pass


class PolicyItem(pytest.Item):
    def __init__(self, *, case: GateCase, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.case = case
        self.add_marker("policy")

    def runtest(self) -> None:
        self.config.stash.setdefault(RAN_KEY, set()).add(self.case.rule_id)
        case = self.case
        if case.outcome == "skip":
            pytest.skip(case.message)
        if case.outcome == "fail":
            raise PolicyFailure(case.message)
        if case.outcome in ("warn", "info"):
            for line in case.message.splitlines():
                warnings.warn(PolicyWarning(line), stacklevel=1)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], *_: Any) -> str:
        if isinstance(excinfo.value, PolicyFailure):
            return str(excinfo.value)
        return str(super().repr_failure(excinfo))

    def reportinfo(self) -> tuple[Path, int | None, str]:
        # Sources print relative to the working directory (tootcheck.config_file.display).
        source = Path(self.case.source).absolute() if self.case.source else self.path
        return source, (self.case.line - 1 if self.case.line else None), self.name


class BadInputItem(pytest.Item):
    def __init__(self, *, message: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.message = message

    def runtest(self) -> None:
        raise PolicyFailure(self.message)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], *_: Any) -> str:
        return f"bad input: {excinfo.value}"

    def reportinfo(self) -> tuple[Path, int | None, str]:
        return self.path, None, self.name


@pytest.hookimpl(tryfirst=True)
def pytest_pycollect_makeitem(collector: pytest.Collector, name: str,
                              obj: object) -> list[pytest.Item] | None:
    if not isinstance(obj, PolicyGate):
        return None
    strict = active().policy_strict
    try:
        run = run_gate(obj, profile=active().policy_profile)
    except BadInput as exc:
        return [BadInputItem.from_parent(collector, name=f"{name}[bad input]",
                                         message=str(exc))]
    collector.config.stash.setdefault(RUNS_KEY, []).append(run)
    return [PolicyItem.from_parent(collector, name=case.name, case=case)
            for case in gate_cases(run, strict)]


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    runs = config.stash.get(RUNS_KEY, [])
    if not runs or not config.stash.get(RAN_KEY, set()):
        return
    strict = active().policy_strict
    terminalreporter.write_sep("=", "policy gate summary")
    for run in runs:
        for row in table(summary_rows(run)):
            terminalreporter.write_line("  " + row)
        silent = [o.rule.id for o in run.outcomes if not o.matched]
        if silent:
            terminalreporter.write_line("  matched no objects: " + ", ".join(silent))
        for p in run.waiver_problems:
            terminalreporter.write_line(f"  waiver {p.severity.value}: {p.message}")
        terminalreporter.write_line("  " + totals_line(run, strict))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    runs = session.config.stash.get(RUNS_KEY, [])
    if not runs or not session.config.stash.get(RAN_KEY, set()):
        return
    settings = active()
    path = settings.reports_dir / "policy.sarif"
    try:
        write_sarif(runs[0], path, settings.policy_strict)
    except OSError as exc:  # a report that cannot be written must not hide the verdict
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(f"policy: cannot write {path}: {exc.strerror}")
