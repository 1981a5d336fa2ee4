"""``tootcheck render [--check] [--infra]``: refresh (or check) the committed render snapshots.

Every snapshot is rendered, even after one fails; all failures are reported with
their whole error, and the exit is non-zero (2) if any render failed, else 1 for a
stale snapshot under ``--check``, else 0.
"""

from __future__ import annotations

import argparse
import sys

from tootcheck.config_file import project_root
from tootcheck.errors import BadInput
from tootcheck.rendering import INFRA_SNAPSHOTS, REFERENCE, Snapshot, body, render, write_snapshot


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "render", help="render the kustomizations into manifests/rendered/ (make render)")
    parser.add_argument("--check", action="store_true",
                        help="exit 1 if a snapshot differs from a fresh render; write nothing")
    parser.add_argument("--infra", action="store_true",
                        help="also the kind test infrastructure's snapshots "
                             "(manifests/rendered/infra-*.yaml, overlay-kind.yaml)")
    parser.set_defaults(func=run)


def snapshots(infra: bool) -> tuple[Snapshot, ...]:
    return (REFERENCE, *INFRA_SNAPSHOTS) if infra else (REFERENCE,)


def run(args: argparse.Namespace) -> int:
    chosen = snapshots(args.infra)
    present = [s for s in chosen if s.source_path.is_dir()]
    if not present:
        raise BadInput(f"nothing to render: no {REFERENCE.source} under {project_root()}")
    for snapshot in chosen:
        if snapshot not in present:
            print(f"not rendered: {snapshot.source} does not exist", file=sys.stderr)
    stale: list[str] = []
    failed: list[tuple[Snapshot, str]] = []
    for snapshot in present:
        try:
            fresh = render(snapshot.source_path)
        except BadInput as exc:
            failed.append((snapshot, str(exc)))
            print(f"failed: {snapshot.source}", file=sys.stderr)
            continue
        current = snapshot.output_path.read_text() if snapshot.output_path.exists() else ""
        if body(current) == fresh:
            print(f"up to date: {snapshot.output}")
            continue
        if args.check:
            stale.append(snapshot.output)
            print(f"stale: {snapshot.output} differs from a fresh render of {snapshot.source}",
                  file=sys.stderr)
            continue
        write_snapshot(snapshot, fresh)
        print(f"rendered: {snapshot.source} -> {snapshot.output}")
    if failed:
        print(f"tootcheck: error: {len(failed)} of {len(present)} render(s) failed:",
              file=sys.stderr)
        for _, message in failed:
            print(message, file=sys.stderr)
        return 2
    return 1 if stale else 0
