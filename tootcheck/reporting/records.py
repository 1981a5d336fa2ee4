"""One record per test, built from pytest's phase reports; pure and testable.

Outcomes: passed, failed, error (setup or teardown failed — a teardown error
turns a passed test into an error, never a pass), skipped, xfailed, xpassed and
flaky (passed only after reruns: never a plain pass).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, fields
from typing import Any

from tootcheck.redaction import redact

OUTCOMES = ("passed", "failed", "error", "flaky", "skipped", "xfailed", "xpassed")
MESSAGE_LINES = 12
# A test whose setup passed but whose call phase never reported (the session was
# interrupted) is an error until its call passes: never a pass by default.
UNFINISHED = "the test body never finished (session interrupted?)"


@dataclass
class TestRecord:
    nodeid: str
    outcome: str = "passed"
    duration_s: float = 0.0
    message: str = ""
    failed_when: str = ""
    reruns: int = 0
    check: str = ""
    modes: str = ""
    evidence: str = ""
    properties: dict[str, str] = field(default_factory=dict)

    @property
    def suite(self) -> str:
        """The directory of the test file: suites/https, tests/policy, ..."""
        path = self.nodeid.split("::", 1)[0]
        return path.rsplit("/", 1)[0] if "/" in path else "."

    @property
    def name(self) -> str:
        return self.nodeid.split("::", 1)[-1]

    def to_dict(self) -> dict[str, Any]:
        # What dataclasses.asdict gives for these flat fields, at a tenth of its cost
        # (a summary turns every test of a run into one).
        data: dict[str, Any] = {name: getattr(self, name) for name in _FIELDS}
        data["properties"] = dict(self.properties)
        data["suite"] = self.suite
        return data


_FIELDS = tuple(f.name for f in fields(TestRecord))


def _message(longrepr: object) -> str:
    """The failure or skip text, headline first: for a raised exception, pytest's
    crash line (``AssertionError: <check summary>``) leads, then the last lines of
    the traceback, which on their own end in ``file.py:17: AssertionError``."""
    if longrepr is None:
        return ""
    # a skip's longrepr is (path, line, reason)
    skip = isinstance(longrepr, tuple) and len(longrepr) == 3
    text = str(longrepr[2]).removeprefix("Skipped: ") if skip else str(longrepr)  # type: ignore[index]
    lines = [line for line in text.splitlines() if line.strip()][-MESSAGE_LINES:]
    crash = str(getattr(getattr(longrepr, "reprcrash", None), "message", "") or "")
    headline = next((line.strip() for line in crash.splitlines() if line.strip()), "")
    if headline and (not lines or lines[0].strip() != headline):
        lines.insert(0, headline)
    return redact("\n".join(lines))


class RecordBook:
    """Folds pytest TestReports (setup/call/teardown, reruns) into TestRecords."""

    def __init__(self) -> None:
        self.records: dict[str, TestRecord] = {}

    def add(self, report: Any) -> None:
        record = self.records.setdefault(
            report.nodeid, TestRecord(report.nodeid, outcome="error", message=UNFINISHED))
        record.duration_s += float(getattr(report, "duration", 0.0) or 0.0)
        for key, value in getattr(report, "user_properties", ()) or ():
            record.properties[str(key)] = str(value)
        record.check = record.properties.get("check", record.check)
        record.modes = record.properties.get("modes", record.modes)
        record.evidence = record.properties.get("evidence", record.evidence)
        outcome = report.outcome
        when = report.when
        if outcome == "rerun":
            record.reruns += 1
            return
        if hasattr(report, "wasxfail"):
            record.outcome = "xfailed" if outcome == "skipped" else "xpassed"
            record.message = str(report.wasxfail)
            return
        if outcome == "skipped":
            if when in ("setup", "call"):
                record.outcome = "skipped"
                record.message = _message(report.longrepr)
            return
        if outcome == "failed":
            record.outcome = "failed" if when == "call" else "error"
            record.failed_when = when
            prefix = "" if when == "call" else f"error in {when}: "
            record.message = prefix + _message(report.longrepr)
            return
        # passed phase
        if when == "call" and record.message == UNFINISHED:
            record.message = ""
            flaky = "flaky" in record.properties or record.reruns > 0
            record.outcome = "flaky" if flaky else "passed"
            if record.outcome == "flaky":
                record.message = record.properties.get(
                    "flaky", f"passed after {record.reruns} rerun(s)")

    def counts(self) -> Counter[str]:
        counts: Counter[str] = Counter({outcome: 0 for outcome in OUTCOMES})
        counts.update(r.outcome for r in self.records.values())
        return counts

    @property
    def ok(self) -> bool:
        counts = self.counts()
        return counts["failed"] == 0 and counts["error"] == 0 and counts["xpassed"] == 0
