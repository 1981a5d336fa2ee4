"""The suite's own tests. They run in the repository: REPO_ROOT is its checkout (the
installed tool finds nothing through it; tests/test_install.py proves that)."""

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
