"""Inline SVG pictures for the HTML report, drawn here: no script, no asset from the network.

- :func:`timeline`: the bring-up phases as a Gantt chart (start offsets when the
  timings record them, else one after another);
- :func:`trend`: the last runs from history.jsonl, one column per run, a cell per
  capability coloured by outcome, and the duration as bars underneath;
- :func:`bars`: horizontal bars for latency figures (seconds).
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from typing import Any

COLOURS = {"passed": "#2da44e", "failed": "#cf222e", "flaky": "#d4a72c", "not run": "#8c959f"}
FONT = "font-family='system-ui,sans-serif' font-size='11'"


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _svg(width: int, height: int, body: list[str], title: str) -> str:
    return (f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' "
            f"viewBox='0 0 {width} {height}' role='img' aria-label='{_e(title)}'>"
            f"<title>{_e(title)}</title>{''.join(body)}</svg>")


def _scale(total: float) -> float:
    return total if total > 0 else 1.0


def timeline(phases: Mapping[str, float], starts: Mapping[str, float] | None = None,
             width: int = 720) -> str:
    """One bar per phase on a shared time axis (seconds)."""
    if not phases:
        return ""
    offsets: dict[str, float] = {}
    clock = 0.0
    for name, seconds in phases.items():
        offsets[name] = float((starts or {}).get(name, clock))
        clock = max(clock, offsets[name] + float(seconds))
    label_w, row_h, pad = 130, 18, 4
    plot_w = width - label_w - 60
    total = _scale(max(offsets[n] + float(s) for n, s in phases.items()))
    body: list[str] = []
    for i, (name, seconds) in enumerate(phases.items()):
        y = pad + i * row_h
        x = label_w + offsets[name] / total * plot_w
        w = max(1.0, float(seconds) / total * plot_w)
        body.append(f"<text x='{label_w - 6}' y='{y + 12}' text-anchor='end' {FONT}>{_e(name)}</text>"
                    f"<rect x='{x:.1f}' y='{y + 2}' width='{w:.1f}' height='{row_h - 5}' fill='#0969da'>"
                    f"<title>{_e(name)}: {float(seconds):.1f}s from {offsets[name]:.1f}s</title></rect>"
                    f"<text x='{x + w + 4:.1f}' y='{y + 12}' {FONT}>{float(seconds):.0f}s</text>")
    height = pad * 2 + len(phases) * row_h + 14
    body.append(f"<text x='{label_w}' y='{height - 3}' {FONT}>0s</text>"
                f"<text x='{label_w + plot_w}' y='{height - 3}' text-anchor='end' {FONT}>"
                f"{total:.0f}s</text>")
    return _svg(width, height, body, "bring-up phase timeline")


def trend(runs: Sequence[Mapping[str, Any]], capabilities: Sequence[tuple[str, str]],
          width: int = 720) -> str:
    """Outcome per capability per run (oldest left) and each run's duration."""
    if not runs:
        return ""
    keys = [(k, label) for k, label in capabilities
            if any(k in (run.get("capabilities") or {}) for run in runs)]
    label_w, cell_h, bar_h = 100, 14, 40
    col_w = max(6.0, min(20.0, (width - label_w - 10) / len(runs)))
    body: list[str] = []
    for r, (key, label) in enumerate(keys):
        y = r * cell_h
        body.append(f"<text x='{label_w - 6}' y='{y + 11}' text-anchor='end' {FONT}>{_e(label)}</text>")
        for c, run in enumerate(runs):
            state = (run.get("capabilities") or {}).get(key)
            if state is None:
                continue
            body.append(f"<rect x='{label_w + c * col_w:.1f}' y='{y + 1}' width='{col_w - 1:.1f}' "
                        f"height='{cell_h - 2}' fill='{COLOURS.get(state, '#8c959f')}'>"
                        f"<title>{_e(run.get('run_id', ''))} {_e(label)}: {_e(state)}</title></rect>")
    top = len(keys) * cell_h + 6
    longest = _scale(max(float(run.get("duration_s") or 0.0) for run in runs))
    for c, run in enumerate(runs):
        seconds = float(run.get("duration_s") or 0.0)
        h = seconds / longest * bar_h
        colour = COLOURS["passed"] if run.get("ok") else COLOURS["failed"]
        body.append(f"<rect x='{label_w + c * col_w:.1f}' y='{top + bar_h - h:.1f}' "
                    f"width='{col_w - 1:.1f}' height='{max(h, 1.0):.1f}' fill='{colour}'>"
                    f"<title>{_e(run.get('run_id', ''))}: {seconds:.1f}s</title></rect>")
    body.append(f"<text x='{label_w - 6}' y='{top + bar_h - 2}' text-anchor='end' {FONT}>duration</text>"
                f"<text x='{label_w - 6}' y='{top + 10}' text-anchor='end' {FONT}>{longest:.0f}s</text>")
    return _svg(width, top + bar_h + 4, body, f"trend of the last {len(runs)} runs")


def bars(values: Mapping[str, float], width: int = 720, unit: str = "s") -> str:
    """Horizontal bars, one per named value (e.g. ``streaming.latency p95``)."""
    if not values:
        return ""
    label_w, row_h = 260, 16
    plot_w = width - label_w - 70
    top = _scale(max(values.values()))
    body: list[str] = []
    for i, (name, value) in enumerate(values.items()):
        y = i * row_h
        w = max(1.0, value / top * plot_w)
        body.append(f"<text x='{label_w - 6}' y='{y + 12}' text-anchor='end' {FONT}>{_e(name)}</text>"
                    f"<rect x='{label_w}' y='{y + 3}' width='{w:.1f}' height='{row_h - 5}' fill='#8250df'/>"
                    f"<text x='{label_w + w + 4:.1f}' y='{y + 12}' {FONT}>{value:.3g}{unit}</text>")
    return _svg(width, len(values) * row_h + 4, body, "latency figures")
