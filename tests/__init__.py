"""The suite's own tests. They run in the repository: REPO_ROOT is its checkout (the
installed tool finds nothing through it; tests/test_install.py proves that)."""

from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parent.parent


def load_all(text: str) -> list[Any]:
    """The documents of a YAML stream, as ``yaml.safe_load_all`` gives them, parsed by
    libyaml (the pure-Python loader costs several CPU seconds over the suite)."""
    # Imported here: inner sessions load plugins from this package before pytest marks
    # tootcheck for assertion rewriting, so this module imports nothing of tootcheck.
    from tootcheck.kube.apply import SAFE_LOADER

    return list(yaml.load_all(text, Loader=SAFE_LOADER))
