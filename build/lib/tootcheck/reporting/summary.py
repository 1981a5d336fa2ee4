"""The JSON summary (one run) and the trend file (one line per run).

``summary.json`` holds every test record plus phase timings; ``history.jsonl``
gets one compact line per run so an operator can keep a trend across runs
(durations per check, outcome counts). Everything written is redacted.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tootcheck.redaction import redact
from tootcheck.reporting.records import RecordBook

SCHEMA_VERSION = 1


def load_timings(reports_dir: Path, since: datetime | None = None) -> dict[str, Any]:
    """Bring-up phase timings the kind fixtures wrote during this run (older files are ignored)."""
    path = reports_dir / "timings.json"
    try:
        if since is not None and path.stat().st_mtime < since.timestamp():
            return {}
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def build(book: RecordBook, *, started: datetime, finished: datetime, target: str, mode: str,
          exit_status: int, timings: dict[str, Any]) -> dict[str, Any]:
    return {
        "schema": SCHEMA_VERSION,
        "run_id": started.strftime("%Y%m%dT%H%M%SZ"),
        "started": started.isoformat(),
        "finished": finished.isoformat(),
        "duration_s": round((finished - started).total_seconds(), 3),
        "target": target,
        "mode": mode,
        "exit_status": exit_status,
        "ok": book.ok and exit_status == 0,
        "counts": dict(book.counts()),
        "timings": timings,
        "tests": [r.to_dict() for r in book.records.values()],
    }


def trend_line(summary: dict[str, Any]) -> dict[str, Any]:
    checks: dict[str, float] = {}
    for test in summary["tests"]:
        if test["check"]:
            checks[test["check"]] = round(checks.get(test["check"], 0.0) + test["duration_s"], 3)
    return {
        "run_id": summary["run_id"],
        "target": summary["target"],
        "mode": summary["mode"],
        "ok": summary["ok"],
        "duration_s": summary["duration_s"],
        "counts": summary["counts"],
        "check_durations_s": checks,
        "phase_timings_s": summary["timings"].get("phases", {}),
    }


def write(summary: dict[str, Any], reports_dir: Path) -> tuple[Path, Path]:
    reports_dir.mkdir(parents=True, exist_ok=True)
    summary_path = reports_dir / "summary.json"
    summary_path.write_text(redact(json.dumps(summary, indent=2, sort_keys=True)) + "\n")
    history_path = reports_dir / "history.jsonl"
    with history_path.open("a") as handle:
        handle.write(redact(json.dumps(trend_line(summary), sort_keys=True)) + "\n")
    return summary_path, history_path


def now() -> datetime:
    return datetime.now(UTC)
