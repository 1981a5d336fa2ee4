"""A single-file HTML summary an operator reads: per suite, per check, with timings.

No external assets; every value is escaped and redacted.
"""

from __future__ import annotations

import html
import os
from pathlib import Path
from typing import Any

from tootcheck.redaction import redact

STYLE = """
body{font:14px/1.45 system-ui,sans-serif;margin:2rem;color:#1d1d1f}
h1{font-size:1.4rem} h2{font-size:1.1rem;margin-top:1.6rem}
table{border-collapse:collapse;width:100%;margin:.4rem 0}
th,td{border-bottom:1px solid #ddd;padding:.3rem .5rem;text-align:left;vertical-align:top}
th{background:#f4f4f6} td.num{text-align:right;font-variant-numeric:tabular-nums}
.o{font-weight:600;border-radius:3px;padding:0 .4rem}
.passed{color:#1a7f37} .failed,.error,.xpassed{color:#fff;background:#cf222e}
.flaky{background:#f5c400} .skipped,.xfailed{color:#6e7781}
pre{white-space:pre-wrap;margin:.2rem 0;font-size:12px;background:#f6f8fa;padding:.4rem}
.ok{color:#1a7f37} .bad{color:#cf222e}
"""


def _e(value: object) -> str:
    return html.escape(redact(str(value)))


def _link(evidence: str, base: Path) -> str:
    if not evidence:
        return ""
    target = Path(evidence)
    try:
        href = os.path.relpath(target, base)
    except ValueError:
        href = str(target)
    return f'<a href="{html.escape(href)}">evidence</a>'


def render(summary: dict[str, Any], base: Path) -> str:
    counts = summary["counts"]
    verdict = "PASSED" if summary["ok"] else "FAILED"
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>tootcheck {verdict} {_e(summary['run_id'])}</title>",
        f"<style>{STYLE}</style></head><body>",
        f"<h1>tootcheck: <span class='{'ok' if summary['ok'] else 'bad'}'>{verdict}</span></h1>",
        f"<p>run {_e(summary['run_id'])} · target {_e(summary['target'])} · mode "
        f"{_e(summary['mode'])} · {summary['duration_s']:.1f}s · exit {summary['exit_status']}</p>",
        "<table><tr>" + "".join(f"<th>{_e(k)}</th>" for k in counts) + "</tr><tr>"
        + "".join(f"<td class='num'>{v}</td>" for v in counts.values()) + "</tr></table>",
    ]
    phases = summary.get("timings", {}).get("phases", {})
    if phases:
        parts.append("<h2>Bring-up phases</h2><table><tr><th>phase</th><th>seconds</th></tr>")
        parts += [f"<tr><td>{_e(k)}</td><td class='num'>{float(v):.1f}</td></tr>"
                  for k, v in phases.items()]
        parts.append("</table>")
    suites: dict[str, list[dict[str, Any]]] = {}
    for test in summary["tests"]:
        suites.setdefault(test["suite"], []).append(test)
    for suite, tests in sorted(suites.items()):
        bad = sum(t["outcome"] in ("failed", "error", "xpassed") for t in tests)
        parts.append(f"<h2>{_e(suite)} <small>({len(tests)} tests, {bad} failing)</small></h2>")
        parts.append("<table><tr><th>test</th><th>check</th><th>outcome</th><th>s</th>"
                     "<th>message</th><th></th></tr>")
        for t in sorted(tests, key=lambda t: t["nodeid"]):
            message = f"<pre>{_e(t['message'])}</pre>" if t["message"] else ""
            parts.append(
                f"<tr><td>{_e(t['nodeid'].split('::', 1)[-1])}</td><td>{_e(t['check'])}</td>"
                f"<td><span class='o {_e(t['outcome'])}'>{_e(t['outcome'])}</span></td>"
                f"<td class='num'>{t['duration_s']:.2f}</td><td>{message}</td>"
                f"<td>{_link(t['evidence'], base)}</td></tr>")
        parts.append("</table>")
    parts.append("</body></html>\n")
    return "".join(parts)


def write(summary: dict[str, Any], reports_dir: Path) -> Path:
    path = reports_dir / "summary.html"
    path.write_text(render(summary, reports_dir))
    return path
