"""The ``tootcheck`` console script: policy, rules, render, preflight, report.

Exit codes: 0 pass, 1 violations or failed checks, 2 bad input. Bad input is
reported as one line on stderr, never as a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from tootcheck.errors import BadInput

# Each module defines register(subparsers) and sets the parser's `func`.
COMMAND_MODULES = (
    "tootcheck.commands.policy",
    "tootcheck.commands.rules",
    "tootcheck.commands.options",
    "tootcheck.commands.render",
    "tootcheck.commands.preflight",
    "tootcheck.commands.report",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tootcheck",
        description="Policy-and-conformance suite for the kirchner.social Mastodon deployment.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:
                continue  # command not built yet
            raise
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(args.func(args) or 0)
    except BadInput as exc:
        print(f"tootcheck: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("tootcheck: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (`tootcheck rules | head`): not an error of ours.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
