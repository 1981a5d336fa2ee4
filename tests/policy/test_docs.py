"""docs/rules.md is generated from the registry and must not be stale."""

from __future__ import annotations

from tests import REPO_ROOT
from tootcheck.policy.docs import readme_with_rules, rules_markdown
from tootcheck.policy.registry import all_rules

DOC = REPO_ROOT / "docs" / "rules.md"


def test_rules_doc_is_current() -> None:
    assert DOC.exists(), "docs/rules.md is missing: run `make rules-doc`"
    assert DOC.read_text() == rules_markdown(), "docs/rules.md is stale: run `make rules-doc`"


def test_rules_doc_lists_every_rule_and_explains_waivers() -> None:
    text = rules_markdown()
    for r in all_rules():
        assert f"### {r.id}" in text and r.remediation in text
    assert "## Waiving a rule" in text and "`tootcheck.toml`" in text


def test_readme_rule_table_is_current() -> None:
    readme = (REPO_ROOT / "README.md").read_text()
    assert readme == readme_with_rules(readme), "README.md's rule table is stale: run `make rules-doc`"
    for r in all_rules():
        assert f"[{r.id}](docs/rules.md#{r.anchor})" in readme
