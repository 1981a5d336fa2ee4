"""Human and JSON renderings of a policy run: findings, suppressions, waiver
problems, rules that matched nothing, and a short per-area summary table."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from tootcheck.model import Severity
from tootcheck.policy.engine import PolicyRun, RuleOutcome
from tootcheck.redaction import redact


def location(finding: Any) -> str:
    obj = finding.obj
    if not obj.line:
        return str(obj.source)
    return f"{obj.source}:{finding.line}"


def verdict(run: PolicyRun, strict: bool) -> str:
    return "FAIL" if run.failed(strict) else "PASS"


def summary_rows(run: PolicyRun) -> list[tuple[str, ...]]:
    areas: dict[str, list[RuleOutcome]] = {}
    for o in run.outcomes:
        areas.setdefault(o.rule.area, []).append(o)
    rows: list[tuple[str, ...]] = [
        ("area", "rules", "checked", "fail", "warn", "info", "waived", "pass", "no match")]
    for area, outs in areas.items():
        rows.append((area, str(len(outs)), str(sum(o.matched for o in outs)),
                     *(str(sum(o.count(s) for o in outs)) for s in
                       ("fail", "warn", "info", "suppressed", "pass")),
                     str(sum(1 for o in outs if not o.matched))))
    return rows


def table(rows: Iterable[tuple[str, ...]], numeric: bool = True) -> list[str]:
    """Aligned columns; with ``numeric`` every column but the first is right-aligned."""
    rows = list(rows)
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["  ".join(cell.rjust(w) if numeric and i else cell.ljust(w)
                      for i, (cell, w) in enumerate(zip(r, widths, strict=True))).rstrip()
            for r in rows]


def totals_line(run: PolicyRun, strict: bool) -> str:
    count = {s: sum(o.count(s) for o in run.outcomes) for s in
             ("fail", "warn", "info", "suppressed", "pass")}
    no_match = sum(1 for o in run.outcomes if not o.matched and not o.not_run)
    waiver_errors = sum(1 for p in run.waiver_problems if p.severity is Severity.ERROR)
    text = (f"{len(run.outcomes)} rules over {run.objects} objects (Kubernetes "
            f"{run.kube_version}): {count['fail']} failed, {count['warn']} warned, "
            f"{count['info']} advisory, {count['suppressed']} waived, {count['pass']} passed; "
            f"{no_match} rule(s) matched nothing")
    outside = sum(1 for o in run.outcomes if o.not_run and o.not_run.startswith("profile "))
    if outside:
        text += f"; {outside} rule(s) outside the profile not run"
    if waiver_errors:
        text += f"; {waiver_errors} expired waiver(s)"
    mode = " (strict: WARN fails)" if strict else ""
    return f"{text}; {run.duration_s:.2f}s; verdict {verdict(run, strict)}{mode}"


def human(run: PolicyRun, strict: bool = False) -> str:
    lines: list[str] = []
    active = [f for f in run.findings if not f.suppressed]
    order = {Severity.ERROR: 0, Severity.WARN: 1, Severity.INFO: 2}
    if active:
        lines.append("Findings:")
        for f in sorted(active, key=lambda f: (order[f.severity], f.rule.id, f.subject_id)):
            lines.append(f"  {f.severity.value:5} {f.rule.id} {f.subject_id}: {f.message} "
                         f"[{f.path_text or '-'} @ {location(f)}]")
            lines.append(f"        remediation: {f.rule.remediation}")
    suppressed = [f for f in run.findings if f.suppressed]
    if suppressed:
        lines.append("Waived (suppressed, not passed):")
        for f in suppressed:
            w = f.waiver
            assert w is not None
            lines.append(f"  {f.rule.id} {f.subject_id}: {f.message} -- waived until "
                         f"{w.expires.isoformat()}: {w.reason}")
    if run.waiver_problems:
        lines.append("Waivers:")
        for p in run.waiver_problems:
            lines.append(f"  {p.severity.value:5} {p.message}")
    silent = [o for o in run.outcomes if not o.matched]
    if silent:
        lines.append("Rules that matched no objects (not passed):")
        for o in silent:
            why = o.not_run or f"no matching objects ({o.rule.applies_to})"
            lines.append(f"  {o.rule.id}: {why}")
    lines.append("Summary:")
    lines.extend("  " + row for row in table(summary_rows(run)))
    lines.append(totals_line(run, strict))
    return redact("\n".join(lines)) + "\n"


def as_json(run: PolicyRun, strict: bool = False) -> str:
    data: dict[str, Any] = {
        "verdict": verdict(run, strict),
        "exit_code": run.exit_code(strict),
        "strict": strict,
        "kube_version": run.kube_version,
        "objects": run.objects,
        "duration_s": round(run.duration_s, 4),
        "rules": [{
            "id": o.rule.id, "severity": o.rule.severity.value, "title": o.rule.title,
            "matched": o.matched, "not_run": o.not_run,
            **{s: o.count(s) for s in ("fail", "warn", "info", "suppressed", "pass")},
        } for o in run.outcomes],
        "findings": [{
            "rule_id": f.rule.id, "severity": f.severity.value, "object": f.object_id,
            "container": f.container, "subject": f.subject_id, "path": f.path_text,
            "message": f.message, "remediation": f.rule.remediation, "refs": list(f.rule.refs),
            "source": f.obj.source, "line": f.line or None,
            "suppressed": f.suppressed,
            "waiver": None if f.waiver is None else {
                "reason": f.waiver.reason, "expires": f.waiver.expires.isoformat(),
                "expired": f.waiver_expired},
        } for f in run.findings],
        "no_matching_objects": [o.rule.id for o in run.outcomes
                                if not o.matched and not o.not_run],
        "not_run": {o.rule.id: o.not_run for o in run.outcomes if o.not_run},
        "waiver_problems": [{"kind": p.kind, "severity": p.severity.value, "rule": p.waiver.rule,
                             "object": p.waiver.object, "message": p.message}
                            for p in run.waiver_problems],
    }
    return redact(json.dumps(data, indent=2)) + "\n"
