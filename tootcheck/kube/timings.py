"""Bring-up timings: ``reports/timings.json`` and the comparison of two runs.

The file holds seconds per phase (``phases``, which the reports plugin prints in
the terminal summary), what each phase did (``actions``: ran or skipped), one
line per phase (``notes``) and the image preload's breakdown (``images``). It is
the measuring hook for the image cache: keep the file of a cold run (no images on
the host) and of a warm run, then

    python -m tootcheck.kube.timings compare cold.json warm.json

prints the per-phase difference. The comparison is a pure function.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from tootcheck.kube.plan import Timings

SCHEMA = 1


def document(timings: Timings, *, cluster: str, reused: bool, outcome: str,
             images: Mapping[str, Any] | None = None) -> dict[str, Any]:
    return {
        "schema": SCHEMA,
        "cluster": cluster,
        "reused_cluster": reused,
        "outcome": outcome,
        "total_s": timings.total,
        "phases": dict(timings.phases),
        "starts": dict(timings.starts),
        "actions": dict(timings.actions),
        "notes": dict(timings.notes),
        "images": dict(images or {}),
    }


def write(path: Path, data: Mapping[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")
    tmp.replace(path)
    return path


def compare(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[str]:
    """One line per phase: seconds before, after, and the difference."""
    a, b = before.get("phases") or {}, after.get("phases") or {}
    names = list(a) + [n for n in b if n not in a]
    lines = [f"{'phase':16} {'before':>9} {'after':>9} {'change':>9}"]
    for name in names:
        x, y = a.get(name), b.get(name)
        if x is None or y is None:
            lines.append(f"{name:16} {_s(x):>9} {_s(y):>9} {'':>9}")
            continue
        lines.append(f"{name:16} {_s(x):>9} {_s(y):>9} {y - x:>+8.1f}s")
    ta, tb = float(before.get("total_s") or sum(a.values())), float(after.get("total_s") or sum(b.values()))
    lines.append(f"{'total':16} {_s(ta):>9} {_s(tb):>9} {tb - ta:>+8.1f}s")
    ia, ib = before.get("images") or {}, after.get("images") or {}
    if ia or ib:
        lines.append(f"images: before pulled {len(ia.get('pulled') or [])}, "
                     f"host cache {ia.get('host_hits', 0)}; after pulled {len(ib.get('pulled') or [])}, "
                     f"host cache {ib.get('host_hits', 0)}")
    return lines


def _s(value: float | None) -> str:
    return "-" if value is None else f"{float(value):.1f}s"


USAGE = ("usage: python -m tootcheck.kube.timings compare BEFORE.json AFTER.json\n"
         "       python -m tootcheck.kube.timings images TIMINGS.json")


def main(argv: Sequence[str]) -> int:
    shapes = {"compare": 3, "images": 2}
    if not argv or shapes.get(argv[0]) != len(argv):
        print(USAGE, file=sys.stderr)
        return 2
    try:
        docs = [json.loads(Path(p).read_text()) for p in argv[1:]]
    except (OSError, ValueError) as exc:
        print(f"timings: error: {exc}", file=sys.stderr)
        return 2
    if argv[0] == "images":  # the run's images, one per line (for `docker image rm`)
        print("\n".join((docs[0].get("images") or {}).get("images") or []))
        return 0
    print("\n".join(compare(docs[0], docs[1])))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main(sys.argv[1:]))
