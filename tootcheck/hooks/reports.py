"""pytest hooks: collect a record per test, write summary.json/.html, print a compact summary.

A per-run plugin object holds the state, so an in-process inner run (pytester)
never mixes its records with the outer run's.
"""

from __future__ import annotations

import json
from collections.abc import Generator
from typing import Any

import pytest

from tootcheck import model
from tootcheck.checks.registry import all_checks
from tootcheck.hooks.completeness import GAPS
from tootcheck.redaction import redact
from tootcheck.reporting import html as html_report
from tootcheck.reporting import summary as json_summary
from tootcheck.reporting import text as text_report
from tootcheck.reporting.records import RecordBook
from tootcheck.settings import active

ATTENTION = ("failed", "error", "xpassed", "flaky")


class ReportPlugin:
    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.book = RecordBook()
        self.started = json_summary.now()
        self.summary: dict[str, Any] | None = None

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_call(self, item: pytest.Item) -> Generator[None, None, None]:
        """Record the fault codes and metrics of the checks a live test ran (properties
        travel with the report, under xdist too)."""
        if item.get_closest_marker("check") is None:
            yield
            return
        results: list[model.CheckResult] = []
        unsubscribe = model.subscribe(results.append)
        try:
            yield
        finally:
            unsubscribe()
            codes = [code for result in results for code in result.fault_codes]
            if codes:
                item.user_properties.append(("faults", ",".join(dict.fromkeys(codes))))
            metrics = {k: v for result in results for k, v in result.metrics.items()}
            if metrics:
                item.user_properties.append(("metrics", json.dumps(metrics, sort_keys=True)))

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self.book.add(report)

    def _catalogue(self, target: str) -> list[str]:
        """Every live check, when this run is about them (a foreign or offline run with no
        live test does not import the check modules)."""
        if target == "none" and not any(r.check for r in self.book.records.values()):
            return []
        return sorted(all_checks())

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        if not self.book.records or self.config.option.collectonly:
            return
        settings = active()
        reports_dir = settings.reports_dir
        summary = json_summary.build(
            self.book, started=self.started, finished=json_summary.now(),
            # session.exitstatus: the guards may have failed the run after the last test
            target=settings.target, mode=settings.mode, exit_status=int(session.exitstatus),
            timings=json_summary.load_timings(reports_dir, since=self.started),
            catalogue=self._catalogue(settings.target))
        if GAPS in self.config.stash:
            summary["gaps"] = self.config.stash[GAPS].to_dict()
        try:
            json_summary.write(summary, reports_dir)
            summary["html"] = str(html_report.write(summary, reports_dir))
            (reports_dir / "summary.md").write_text(text_report.markdown(summary) + "\n")
        except OSError as exc:  # a report problem must never hide the test outcome
            summary["write_error"] = f"reports not written: {exc}"
        self.summary = summary

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        summary = self.summary
        if not summary:
            return
        write = terminalreporter.write_line
        terminalreporter.write_sep("-", "tootcheck summary")
        for test in summary["tests"]:
            if test["outcome"] in ATTENTION:
                first = (test["message"].splitlines() or [""])[0][:160]  # the headline
                line = f"{test['outcome'].upper():7} {test['nodeid']}: {first}"
                if test["evidence"]:
                    line += f" [evidence: {test['evidence']}]"
                write(redact(line))
        gaps = summary.get("gaps") or {}
        for name, reason in gaps.get("not_proven", {}).items():
            write(redact(f"NOT PROVEN {name}: {reason}"))
        for name, reason in gaps.get("not_run", {}).items():
            allowed = " (allowed missing)" if name in gaps.get("allowed_missing", ()) else ""
            write(redact(f"NOT RUN {name}{allowed}: {reason}"))
        skips: dict[str, int] = {}
        for test in summary["tests"]:
            if test["outcome"] == "skipped" and not test["message"].startswith("NOT PROVEN"):
                reason = (test["message"].splitlines() or ["(no reason given)"])[0][:160]
                skips[reason] = skips.get(reason, 0) + 1
        for reason, count in sorted(skips.items()):
            write(redact(f"SKIPPED {count}x {reason}"))
        phases = summary["timings"].get("phases", {})
        if phases:
            write("bring-up: " + ", ".join(f"{k} {float(v):.0f}s" for k, v in phases.items()))
        for line in text_report.terminal(summary, reasons=False):  # the reasons are above
            write(line)
        write(f"report: {summary.get('write_error') or summary.get('html', '')}")


def pytest_configure(config: pytest.Config) -> None:
    config.pluginmanager.register(ReportPlugin(config), "tootcheck-reports")
