"""``tootcheck rules [--markdown]``: the policy catalogue from the rule registry."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from tootcheck.errors import BadInput
from tootcheck.policy.docs import readme_with_rules, rules_markdown
from tootcheck.policy.registry import all_rules
from tootcheck.policy.render_summary import table


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("rules", help="list the policy rules",
                                   description="List the policy catalogue (docs/rules.md is "
                                               "generated from it with --markdown).")
    parser.add_argument("--markdown", action="store_true",
                        help="print docs/rules.md (make rules-doc)")
    parser.add_argument("--update-readme", metavar="PATH", type=Path,
                        help="rewrite the rule table between the rules markers of PATH")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.update_readme:
        try:
            text = args.update_readme.read_text()
            args.update_readme.write_text(readme_with_rules(text))
        except (OSError, ValueError) as exc:
            raise BadInput(f"{args.update_readme}: {exc}") from None
        return 0
    if args.markdown:
        sys.stdout.write(rules_markdown())
        return 0
    rules = all_rules()
    rows = [("ID", "PROFILE", "SEVERITY", "APPLIES TO", "RULE")]
    rows += [(r.id, r.profile, r.severity.value, r.applies_to if len(r.applies_to) < 40 else
              r.applies_to[:37] + "...", r.title) for r in rules]
    for line in table(rows, numeric=False):
        print(line)
    print(f"{len(rules)} rules")
    return 0
