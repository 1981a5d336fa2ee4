"""The capability matrix: one row per capability, one cell per check, from a run's records.

A cell is ``passed``, ``failed``, ``flaky`` or ``not run`` (with the reason). A check
of the catalogue that no test ran is ``not run`` too: a run that did not check
something must not look green. The offline policy gate is the ``policy.gate`` cell.
Pure functions over the JSON summary's test dicts.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

# check-name prefix -> row label, in the order the page shows them
CAPABILITIES: tuple[tuple[str, str], ...] = (
    ("https", "HTTPS"),
    ("streaming", "streaming"),
    ("sidekiq", "Sidekiq"),
    ("persistence", "persistence"),
    ("oidc", "OIDC"),
    ("mail", "mail"),
    ("federation", "federation"),
    ("webpush", "Web Push"),
    ("incontainer", "in-container"),
    ("drift", "drift"),
    ("policy", "policy"),
    ("rehearsal", "rehearsal"),
)
STATES = ("failed", "not run", "flaky", "passed")  # worst first
POLICY_GATE = "policy.gate"
GATE_FILE = "suites/policy/test_policy.py"
NOT_SELECTED = "not selected in this run"
_STATE_OF = {
    "passed": "passed", "flaky": "flaky", "skipped": "not run",
    "failed": "failed", "error": "failed", "xpassed": "failed", "xfailed": "failed",
}


@dataclass(frozen=True)
class Cell:
    check: str
    state: str  # one of STATES
    reason: str = ""  # why it failed or did not run: the first line of the message
    nodeid: str = ""  # the test that decided the cell ("" when none ran)

    @property
    def short(self) -> str:
        """The check name without its capability prefix."""
        return self.check.split(".", 1)[-1]


@dataclass(frozen=True)
class Row:
    key: str
    label: str
    cells: tuple[Cell, ...]

    def count(self, state: str) -> int:
        return sum(cell.state == state for cell in self.cells)


def capability_of(check: str) -> str:
    return check.split(".", 1)[0]


def headline(message: str) -> str:
    return next((line.strip() for line in message.splitlines() if line.strip()), "")


def _worst(cells: Sequence[Cell]) -> Cell:
    return min(cells, key=lambda c: STATES.index(c.state))


def _gate_cell(tests: Sequence[Mapping[str, Any]]) -> Cell | None:
    gate = [t for t in tests if t["nodeid"].startswith(GATE_FILE + "::")]
    if not gate:
        return None
    failed = [t for t in gate if _STATE_OF.get(t["outcome"]) == "failed"]
    if failed:
        return Cell(POLICY_GATE, "failed", f"{len(failed)} finding(s)", failed[0]["nodeid"])
    if any(t["outcome"] == "passed" for t in gate):
        return Cell(POLICY_GATE, "passed", "", gate[0]["nodeid"])
    return Cell(POLICY_GATE, "not run", headline(gate[0]["message"]), gate[0]["nodeid"])


def cells(tests: Sequence[Mapping[str, Any]], catalogue: Iterable[str],
          not_run_reason: str = NOT_SELECTED) -> list[Cell]:
    """One cell per check: the catalogue's, plus any check a test ran that it lacks."""
    by_check: dict[str, list[Cell]] = {}
    for test in tests:
        if not test.get("check"):
            continue
        state = _STATE_OF.get(test["outcome"], "failed")
        by_check.setdefault(test["check"], []).append(
            Cell(test["check"], state, headline(test["message"]), test["nodeid"]))
    result = [_worst(by_check[name]) if name in by_check else Cell(name, "not run", not_run_reason)
              for name in sorted(set(catalogue) | set(by_check))]
    gate = _gate_cell(tests)
    if gate is not None:
        result.append(gate)
    return result


def matrix(tests: Sequence[Mapping[str, Any]], catalogue: Iterable[str],
           not_run_reason: str = NOT_SELECTED) -> list[Row]:
    """Rows in CAPABILITIES order; unknown prefixes follow, alphabetically."""
    grouped: dict[str, list[Cell]] = {}
    for cell in cells(tests, catalogue, not_run_reason):
        grouped.setdefault(capability_of(cell.check), []).append(cell)
    labels = dict(CAPABILITIES)
    order = [key for key, _ in CAPABILITIES if key in grouped]
    order += sorted(key for key in grouped if key not in labels)
    return [Row(key, labels.get(key, key), tuple(grouped[key])) for key in order]


def outcome_by_capability(rows: Sequence[Row]) -> dict[str, str]:
    """The worst state per capability: what the trend line keeps."""
    return {row.key: _worst(row.cells).state for row in rows if row.cells}


def not_run(rows: Sequence[Row]) -> dict[str, list[str]]:
    """reason -> checks that did not run for it."""
    reasons: dict[str, list[str]] = {}
    for row in rows:
        for cell in row.cells:
            if cell.state == "not run":
                reasons.setdefault(cell.reason or "no reason given", []).append(cell.check)
    return reasons
