"""The single-file HTML summary: verdict and capability matrix first, then what needs a person.

Order: verdict, the capability matrix, failures (check, fault codes, one-line
message, evidence; the traceback behind <details>), what did not run and why,
pictures (bring-up timeline, trend, latencies), policy results per rule, and the
passes, collapsed. No script and no external asset; every value is escaped and
redacted. Sized for thousands of tests: passes are names only.
"""

from __future__ import annotations

import html
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from tootcheck.redaction import redact
from tootcheck.reporting import capabilities, groups, svg, text
from tootcheck.reporting.summary import load_history, rows

STYLE = """
body{font:14px/1.45 system-ui,sans-serif;margin:1.5rem 2rem;color:#1d1d1f;max-width:78rem}
h1{font-size:1.4rem;margin:.2rem 0} h2{font-size:1.1rem;margin-top:1.6rem;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:.4rem 0}
th,td{border-bottom:1px solid #e4e4e8;padding:.25rem .5rem;text-align:left;vertical-align:top}
th{background:#f4f4f6} th.num,td.num{text-align:right;font-variant-numeric:tabular-nums}
.passed{color:#1a7f37} .failed,.error,.xpassed{color:#fff;background:#cf222e}
.flaky{background:#f5c400} .notrun,.skipped{background:repeating-linear-gradient(45deg,#fff3cd,#fff3cd 6px,
#ffe69c 6px,#ffe69c 12px);color:#5c4400} .xfailed{color:#6e7781}
.o{font-weight:600;border-radius:3px;padding:0 .35rem;white-space:nowrap}
.cell{display:inline-block;margin:.1rem .15rem;padding:.05rem .4rem;border-radius:3px;font-size:12px;
text-decoration:none;border:1px solid #d0d7de}
.cell.passed{background:#dafbe1} .cell.failed{color:#fff} .cell.notrun{font-weight:600}
pre{white-space:pre-wrap;margin:.2rem 0;font-size:12px;background:#f6f8fa;padding:.4rem}
.verdict{font-size:1.4rem;font-weight:700;padding:.1rem .6rem;border-radius:4px}
.ok{color:#fff;background:#1a7f37} .bad{color:#fff;background:#cf222e}
.fail{border-left:4px solid #cf222e;padding:.2rem .6rem;margin:.5rem 0;background:#fff8f8}
.fail.flaky{border-color:#d4a72c;background:#fffbea}
.muted{color:#57606a} code{font-size:12px} details>summary{cursor:pointer}
ul.names{columns:2;font-size:12px;margin:.2rem 0}
"""
NUMERIC = {"objects", "findings", "waived", "seconds", "count"}
_STATE_CLASS = {"passed": "passed", "failed": "failed", "flaky": "flaky", "not run": "notrun"}


def _e(value: object) -> str:
    return html.escape(redact(str(value)))


def _anchor(nodeid: str) -> str:
    return "t-" + "".join(ch if ch.isalnum() else "-" for ch in nodeid)[-120:]


def _link(evidence: str, base: Path) -> str:
    if not evidence:
        return ""
    target = Path(evidence)
    try:
        href = os.path.relpath(target, base)
    except ValueError:
        href = str(target)
    return f' <a href="{html.escape(href)}">evidence</a>'


def _table(headers: Sequence[str], body: Sequence[Sequence[object]], raw: bool = False) -> str:
    """A table whose numeric columns are right-aligned in header and cells alike."""
    cls = [" class='num'" if h in NUMERIC else "" for h in headers]
    head = "".join(f"<th{c}>{_e(h)}</th>" for h, c in zip(headers, cls, strict=True))
    rows_html = "".join(
        "<tr>" + "".join(f"<td{c}>{v if raw else _e(v)}</td>" for v, c in zip(row, cls, strict=True))
        + "</tr>" for row in body)
    return f"<table><tr>{head}</tr>{rows_html}</table>"


def _header(summary: Mapping[str, Any]) -> list[str]:
    ok = summary["ok"]
    counts = summary["counts"]
    shown = [(k, v) for k, v in counts.items() if v or k in ("passed", "failed")]
    return [
        f"<h1>tootcheck <span class='verdict {'ok' if ok else 'bad'}'>{'PASSED' if ok else 'FAILED'}"
        "</span></h1>",
        f"<p class='muted'>run {_e(summary['run_id'])} · target {_e(summary['target'])} · mode "
        f"{_e(summary['mode'])} · {summary['duration_s']:.1f}s · exit {summary['exit_status']}</p>",
        "<table><tr>" + "".join(f"<th class='num'>{_e(k)}</th>" for k, _ in shown) + "</tr><tr>"
        + "".join(f"<td class='num'>{v}</td>" for _, v in shown) + "</tr></table>",
    ]


def _matrix(summary: Mapping[str, Any]) -> list[str]:
    matrix = rows(summary)
    if not matrix:
        return []
    body = []
    for row in matrix:
        cells = []
        for cell in row.cells:
            cls = _STATE_CLASS.get(cell.state, "failed")
            title = f"{cell.check}: {cell.state}" + (f": {cell.reason}" if cell.reason else "")
            href = f"#{_anchor(cell.nodeid)}" if cell.nodeid else "#not-run"
            cells.append(f"<a class='cell {cls}' href='{href}' title='{_e(title)}'>{_e(cell.short)}"
                         f"{' · not run' if cell.state == 'not run' else ''}</a>")
        counts = " ".join(f"{row.count(s)} {s}" for s in capabilities.STATES if row.count(s))
        body.append((_e(row.label), "".join(cells), _e(counts)))
    table = _table(("capability", "checks", "outcome"), body, raw=True)
    parts = ["<h2 id='capabilities'>Capabilities</h2>"]
    if summary["target"] == "none":
        parts.append("<details><summary>live capabilities were not checked: an offline run "
                     "(--target none); the policy gate is the one live-relevant row</summary>"
                     f"{table}</details>")
    else:
        parts.append(table)
    return parts


def _failures(tests: Sequence[Mapping[str, Any]], base: Path) -> list[str]:
    picked = groups.attention(tests)
    if not picked:
        return []
    parts = [f"<h2 id='failures'>Needs attention ({len(picked)})</h2>"]
    for test in picked:
        properties = test.get("properties") or {}
        message = str(test["message"])
        first = capabilities.headline(message)
        codes = properties.get("faults", "")
        check = f"<b>{_e(test['check'])}</b> " if test["check"] else ""
        kind = "flaky" if test["outcome"] == "flaky" else ""
        parts.append(
            f"<div class='fail {kind}' id='{_anchor(test['nodeid'])}'>"
            f"<span class='o {_e(test['outcome'])}'>{_e(test['outcome'])}</span> {check}"
            f"<code>{_e(test['nodeid'])}</code>{_link(test['evidence'], base)}"
            + (f"<div>fault: <code>{_e(codes)}</code></div>" if codes else "")
            + f"<div>{_e(first)}</div>"
            + (f"<details><summary>details</summary><pre>{_e(message)}</pre></details>"
               if message.strip() != first else "")
            + "</div>")
    return parts


def _not_run(summary: Mapping[str, Any]) -> list[str]:
    reasons = groups.skipped_by_reason(summary["tests"], summary["target"] != "none",
                                     bool((summary.get("gaps") or {}).get("not_proven")))
    live = capabilities.not_run(rows(summary)) if summary["target"] != "none" else {}
    gaps = text.gap_lines(summary)
    if not reasons and not live and not gaps:
        return []
    total = (sum(len(v) for v in reasons.values()) + sum(len(v) for v in live.values())
             + len(gaps))
    parts = [f"<h2 id='not-run'>Not run ({total})</h2>"]
    if gaps:
        parts.append("<ul>" + "".join(f"<li><span class='o notrun'>{_e(g.split(':', 1)[0])}</span>"
                                      f"{_e(':' + g.split(':', 1)[1])}</li>" for g in gaps) + "</ul>")
    if live:
        parts.append(_table(("reason", "checks"), [(r, ", ".join(c)) for r, c in live.items()]))
    for reason, nodeids in reasons.items():
        items = "".join(f"<li id='{_anchor(n)}'>{_e(n)}</li>" for n in nodeids)
        parts.append(f"<details><summary><span class='o notrun'>{len(nodeids)} not run</span> "
                     f"{_e(reason)}</summary><ul class='names'>{items}</ul></details>")
    return parts


def _pictures(summary: Mapping[str, Any], history: Sequence[Mapping[str, Any]]) -> list[str]:
    parts: list[str] = []
    timings = summary.get("timings") or {}
    gantt = svg.timeline(timings.get("phases") or {}, timings.get("starts"))
    if gantt:
        parts += ["<h3>Bring-up phases</h3>", gantt]
    if len(history) > 1:
        parts += [f"<h3>Last {len(history)} runs</h3>", svg.trend(history, capabilities.CAPABILITIES)]
    latency = svg.bars(summary.get("latencies") or {})
    if latency:
        parts += ["<h3>Latencies</h3>", latency]
    return ["<h2 id='pictures'>Timeline, trend and latencies</h2>", *parts] if parts else []


def _policy(tests: Sequence[Mapping[str, Any]]) -> list[str]:
    rules = groups.policy_rules(tests)
    if not rules:
        return []
    body = []
    for rule, group in rules.items():
        state = "failed" if group.findings else ("passed" if group.objects > len(group.waived) else "notrun")
        note = "; ".join(group.notes) or ""
        finding_links = " ".join(f"<a href='#{_anchor(n)}'>{_e(groups.test_name(n))}</a>"
                                 for n in group.findings)
        body.append((f"<span class='o {state}'>{_e(rule)}</span>", group.objects,
                     len(group.findings), len(group.waived), (finding_links or _e(note))))
    findings = sum(len(g.findings) for g in rules.values())
    return [f"<h2 id='policy'>Policy: {len(rules)} rules, {findings} finding(s)</h2>",
            f"<details {'open' if findings else ''}><summary>per rule: objects checked, findings, "
            "waivers</summary>",
            _table(("rule", "objects", "findings", "waived", "what"), body, raw=True), "</details>"]


def _passes(tests: Sequence[Mapping[str, Any]]) -> list[str]:
    files = groups.passes_by_file(tests)
    if not files:
        return []
    total = sum(len(v) for v in files.values())
    parts = [f"<h2 id='passes'>Passed ({total}, policy cases counted per rule above)</h2>"]
    for path, names in files.items():
        items = "".join(f"<li>{_e(n)}</li>" for n in names)
        parts.append(f"<details><summary>{_e(path)} <span class='passed'>{len(names)} passed"
                     f"</span></summary><ul class='names'>{items}</ul></details>")
    return parts


def render(summary: Mapping[str, Any], base: Path,
           history: Sequence[Mapping[str, Any]] = ()) -> str:
    tests = summary["tests"]
    verdict = "PASSED" if summary["ok"] else "FAILED"
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>tootcheck {verdict} {_e(summary['run_id'])}</title>",
        f"<style>{STYLE}</style></head><body>",
        *_header(summary),
        *_matrix(summary),
        *_failures(tests, base),
        *_not_run(summary),
        *_pictures(summary, history),
        *_policy(tests),
        *_passes(tests),
        f"<p class='muted'>machine-readable: summary.json (schema {summary.get('schema', '?')}), "
        "history.jsonl</p></body></html>\n",
    ]
    return "".join(parts)


def write(summary: Mapping[str, Any], reports_dir: Path) -> Path:
    path = reports_dir / "summary.html"
    path.write_text(render(summary, reports_dir, load_history(reports_dir)))
    return path
