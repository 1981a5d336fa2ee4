"""No module of the package grows past ~400 lines unless its opening comment says why it is
one cohesive thing ("One module of about N lines on purpose: ...")."""

from __future__ import annotations

import ast

from tests import REPO_ROOT

LIMIT = 420
REASON = "lines on purpose:"


def test_big_modules_say_why_they_are_one_thing() -> None:
    unexplained = []
    for path in sorted((REPO_ROOT / "tootcheck").rglob("*.py")):
        if "data" in path.relative_to(REPO_ROOT / "tootcheck").parts:
            continue  # package data (the in-cluster peer program), not the package's code
        text = path.read_text()
        lines = text.count("\n")
        if lines > LIMIT and REASON not in (ast.get_docstring(ast.parse(text)) or ""):
            unexplained.append(f"{path.relative_to(REPO_ROOT)}: {lines} lines")
    assert not unexplained, unexplained
