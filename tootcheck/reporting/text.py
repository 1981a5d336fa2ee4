"""The run's summary as text: a compact capability x outcome table for the terminal,
and the same table as Markdown (reports/summary.md, ready for ``$GITHUB_STEP_SUMMARY``).

Both read the JSON summary only, so their counts are the JSON's.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tootcheck.redaction import redact
from tootcheck.reporting import capabilities, groups
from tootcheck.reporting.summary import rows

COLUMNS = capabilities.STATES
REASONS_SHOWN = 8


def _matrix_rows(summary: Mapping[str, Any]) -> list[tuple[str, list[int]]]:
    matrix = rows(summary)
    if summary["target"] == "none":  # offline: only the gate row says something
        matrix = [row for row in matrix if row.key == "policy"]
        matrix = [capabilities.Row(r.key, r.label, tuple(c for c in r.cells
                                                         if c.check == capabilities.POLICY_GATE))
                  for r in matrix]
    return [(row.label, [row.count(state) for state in COLUMNS]) for row in matrix if row.cells]


def totals(summary: Mapping[str, Any]) -> str:
    shown = ", ".join(f"{n} {k}" for k, n in summary["counts"].items() if n)
    return f"{shown or 'no tests'} in {summary['duration_s']:.1f}s"


def gap_lines(summary: Mapping[str, Any]) -> list[str]:
    """What the guards found unproven or not run (``summary["gaps"]``, hooks.completeness)."""
    gaps = summary.get("gaps") or {}
    allowed = set(gaps.get("allowed_missing", ()))
    lines = [f"NOT PROVEN {name}: {reason}" for name, reason in gaps.get("not_proven", {}).items()]
    lines += [f"NOT RUN {name}{' (allowed missing)' if name in allowed else ''}: {reason}"
              for name, reason in gaps.get("not_run", {}).items()]
    return lines


def not_run_lines(summary: Mapping[str, Any]) -> list[str]:
    """``reason: what`` lines for live checks that did not run and skipped tests."""
    lines = gap_lines(summary)
    if summary["target"] != "none":
        for reason, checks in capabilities.not_run(rows(summary)).items():
            lines.append(f"{reason}: {', '.join(checks)}")
    for reason, nodeids in groups.skipped_by_reason(summary["tests"], summary["target"] != "none",
                                     bool((summary.get("gaps") or {}).get("not_proven"))).items():
        lines.append(f"{reason} ({len(nodeids)} test{'s' if len(nodeids) > 1 else ''})")
    if len(lines) > REASONS_SHOWN:
        lines = [*lines[:REASONS_SHOWN], f"... and {len(lines) - REASONS_SHOWN} more reasons (summary.html)"]
    return [redact(line) for line in lines]


def terminal(summary: Mapping[str, Any], reasons: bool = True) -> list[str]:
    """The capability table, what did not run and why (``reasons``: off when the caller
    already printed them), and the totals."""
    lines: list[str] = []
    table = _matrix_rows(summary)
    if table:
        width = max(len(label) for label, _ in table) + 2
        lines.append(f"{'capability':<{width}}" + "".join(f"{c:>9}" for c in COLUMNS))
        for label, counts in table:
            lines.append(f"{label:<{width}}" + "".join(f"{n:>9}" for n in counts))
    if summary["target"] == "none":
        lines.append("live capabilities: not run (offline run, --target none)")
    why = not_run_lines(summary) if reasons else []
    if why:
        lines.append("not run:")
        lines += [f"  {line}" for line in why]
    lines.append(totals(summary))
    return lines


def markdown(summary: Mapping[str, Any]) -> str:
    verdict = "PASSED" if summary["ok"] else "FAILED"
    out = [f"## tootcheck {verdict}: {summary['target']}, {summary['mode']} mode", "",
           f"run `{summary['run_id']}`: {totals(summary)}", ""]
    table = _matrix_rows(summary)
    if table:
        out.append("| capability | " + " | ".join(COLUMNS) + " |")
        out.append("|---|" + "---:|" * len(COLUMNS))
        out += [f"| {label} | " + " | ".join(str(n) for n in counts) + " |" for label, counts in table]
        out.append("")
    attention = groups.attention(summary["tests"])
    if attention:
        out.append("### Needs attention")
        for test in attention[:20]:
            first = capabilities.headline(test["message"])[:200]
            fault = (test.get("properties") or {}).get("faults", "")
            out.append(f"- **{test['outcome']}** `{test['nodeid']}`"
                       + (f" [{fault}]" if fault else "") + (f": {first}" if first else ""))
        if len(attention) > 20:
            out.append(f"- ... and {len(attention) - 20} more (summary.html)")
        out.append("")
    reasons = not_run_lines(summary)
    if reasons:
        out.append("### Not run")
        out += [f"- {line}" for line in reasons]
        out.append("")
    return redact("\n".join(out))
