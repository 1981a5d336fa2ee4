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


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser; with ``command``, only that command's module is imported (start-up
    time: each command pulls in its own dependencies)."""
    parser = argparse.ArgumentParser(
        prog="tootcheck",
        description="Policy-and-conformance suite for the kirchner.social Mastodon deployment.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        if command is not None and name.rsplit(".", 1)[-1] != command:
            continue
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:
                continue  # command not built yet
            raise
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    words = list(sys.argv[1:] if argv is None else argv)
    names = {name.rsplit(".", 1)[-1] for name in COMMAND_MODULES}
    parser = build_parser(words[0] if words and words[0] in names else None)
    args = parser.parse_args(words)
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
