"""The package carries its runtime data and reads nothing through the checkout."""

from __future__ import annotations

import re

from tests import REPO_ROOT
from tootcheck import resources

PACKAGE = REPO_ROOT / "tootcheck"


def test_package_data_is_the_manifests_single_source() -> None:
    # In the checkout tootcheck/data/* are symlinks to manifests/*: one copy, shipped by the
    # wheel build (pyproject package-data; tests/test_install.py installs it).
    for name in ("infra", "kind", "schemas"):
        link = PACKAGE / "data" / name
        assert link.is_symlink(), f"{link} must link to manifests/{name}"
        assert link.resolve() == (REPO_ROOT / "manifests" / name).resolve()
    assert resources.kind_config().is_file() and resources.blueprint().is_file()
    assert resources.peer_program().is_file()
    assert (resources.infra_dir("infra/nfs") / "kustomization.yaml").is_file()
    assert any(resources.schema_dir().glob("*/*.json"))


def test_no_module_reads_through_the_repository_root() -> None:
    pattern = re.compile(r"REPO_ROOT|__file__\)\.resolve\(\)\.parents?\b|parents\[[12]\]")
    offenders = [f"{path.relative_to(REPO_ROOT)}:{n}"
                 for path in sorted(PACKAGE.rglob("*.py")) if "data" not in path.parts
                 for n, line in enumerate(path.read_text().splitlines(), 1)
                 if pattern.search(line)]
    assert offenders == []
