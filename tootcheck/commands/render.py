"""``tootcheck render [--check]``: refresh (or check) the committed render snapshots."""

from __future__ import annotations

import argparse
import sys

from tootcheck.rendering import SNAPSHOTS, body, render, write_snapshot


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "render", help="render the kustomizations into manifests/rendered/ (make render)")
    parser.add_argument("--check", action="store_true",
                        help="exit 1 if a snapshot differs from a fresh render; write nothing")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    stale = []
    for snapshot in SNAPSHOTS:
        fresh = render(snapshot.source_path)
        current = snapshot.output_path.read_text() if snapshot.output_path.exists() else ""
        if body(current) == fresh:
            print(f"up to date: {snapshot.output}")
            continue
        if args.check:
            stale.append(snapshot.output)
            print(f"stale: {snapshot.output} differs from a fresh render of {snapshot.source}",
                  file=sys.stderr)
            continue
        write_snapshot(snapshot)
        print(f"rendered: {snapshot.source} -> {snapshot.output}")
    return 1 if stale else 0
