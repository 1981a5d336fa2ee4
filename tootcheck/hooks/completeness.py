"""pytest hooks: no green without evidence.

- ``--target=live``: before any test, every check the mode selects must have what it
  needs (``tootcheck.checks.needs``); otherwise one line names what is missing and for
  which checks, and the run exits 2.
- With a target, every check the mode selects must have run: a check whose tests all
  skipped (in setup or in the test body) or were never collected fails the run unless
  ``--allow-missing NAME`` (fnmatch pattern) names it.
- Parts a test reports as NOT PROVEN (``tootcheck.testing.not_proven``) are listed; with
  a target they fail the run unless ``--allow-missing`` names them.

The verdicts are taken by the controller of a parallel run from the reports' user
properties (``check``, ``not_proven``), which pytest-xdist forwards from the workers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any

import pytest

from tootcheck.checks.needs import unmet
from tootcheck.checks.registry import all_checks
from tootcheck.hooks.guards import fail_run, is_worker
from tootcheck.modes import decide
from tootcheck.settings import Settings, active
from tootcheck.testing import NOT_PROVEN

PLUGIN_NAME = "tootcheck-completeness"


@dataclass
class Gaps:
    """What the run did not prove; the reports add it to summary.json."""

    not_run: dict[str, str] = field(default_factory=dict)  # check -> why
    not_proven: dict[str, str] = field(default_factory=dict)  # name -> reason
    allowed_missing: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"not_run": dict(sorted(self.not_run.items())),
                "not_proven": dict(sorted(self.not_proven.items())),
                "allowed_missing": sorted(self.allowed_missing)}


GAPS = pytest.StashKey[Gaps]()


def selected_checks(settings: Settings) -> list[str]:
    """The checks the run's mode selects (the contract a run with a target must meet)."""
    return sorted(name for name, spec in all_checks().items()
                  if decide(spec, settings.mode, settings.allow_mutating).run)


def allowed(name: str, settings: Settings) -> bool:
    return any(fnmatchcase(name, pattern) for pattern in settings.allow_missing)


def live_preflight(settings: Settings) -> str:
    """One line naming what a live run lacks and for which checks; empty when complete."""
    checks = [c for c in selected_checks(settings) if not allowed(c, settings)]
    missing = unmet(settings, checks)
    if not missing:
        return ""
    parts = [f"{need} for {', '.join(names)}" for need, names in missing.items()]
    return (f"--target=live --mode={settings.mode}: missing " + "; ".join(parts)
            + " (provide it, or --allow-missing NAME)")


class Completeness:
    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.ran: set[str] = set()
        self.skipped: dict[str, str] = {}  # check -> last skip reason
        self.not_proven: dict[str, str] = {}
        config.stash[GAPS] = Gaps()

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        props = list(report.user_properties or ())
        for key, value in props:
            if key == NOT_PROVEN and report.when in ("call", "setup"):
                name, _, reason = str(value).partition(": ")
                self.not_proven[name] = reason
        check = next((str(v) for k, v in props if k == "check"), "")
        if not check or hasattr(report, "wasxfail"):
            return
        if report.skipped:
            longrepr = report.longrepr
            reason = str(longrepr[2]) if isinstance(longrepr, tuple) else str(longrepr)
            where = "in the test body" if report.when == "call" else f"in {report.when}"
            self.skipped[check] = f"skipped {where}: {reason.removeprefix('Skipped: ')}"
        elif report.when == "call":
            self.ran.add(check)

    @pytest.hookimpl(tryfirst=True)  # before the reports plugin writes the exit status
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        if is_worker(self.config):
            return
        settings = active()
        gaps = self.config.stash[GAPS]
        gaps.not_proven = dict(self.not_proven)
        if settings.target == "none":
            return  # the offline run: gaps are listed, no live contract to meet
        for check in selected_checks(settings):
            if check not in self.ran:
                gaps.not_run[check] = self.skipped.get(check, "no test of it ran")
        absent = {**gaps.not_run, **gaps.not_proven}
        gaps.allowed_missing = [name for name in absent if allowed(name, settings)]
        lines = [f"{name}: {why}" for name, why in sorted(absent.items())
                 if name not in gaps.allowed_missing]
        if lines:
            fail_run(session, f"not run or not proven in {settings.mode} mode "
                              "(--allow-missing NAME to accept)", lines)


def pytest_configure(config: pytest.Config) -> None:
    settings = active()
    if settings.target == "live" and not is_worker(config):
        problem = live_preflight(settings)
        if problem:
            pytest.exit(problem, returncode=2)
    config.pluginmanager.register(Completeness(config), PLUGIN_NAME)
