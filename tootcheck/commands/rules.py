"""``tootcheck rules [--markdown]``: the policy catalogue from the rule registry."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from tootcheck.policy.docs import rules_markdown
from tootcheck.policy.registry import all_rules
from tootcheck.policy.render_summary import table


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("rules", help="list the policy rules",
                                   description="List the policy catalogue (docs/rules.md is "
                                               "generated from it with --markdown).")
    parser.add_argument("--markdown", action="store_true",
                        help="print docs/rules.md (make rules-doc)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.markdown:
        sys.stdout.write(rules_markdown())
        return 0
    rules = all_rules()
    rows = [("ID", "SEVERITY", "APPLIES TO", "RULE")]
    rows += [(r.id, r.severity.value, r.applies_to if len(r.applies_to) < 40 else
              r.applies_to[:37] + "...", r.title) for r in rules]
    for line in table(rows, numeric=False):
        print(line)
    print(f"{len(rules)} rules")
    return 0
