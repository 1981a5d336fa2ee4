"""The installed pytest plugin in someone else's project: it loads beside pytest-kind
without an option clash, and changes nothing in a run until it is active (a tootcheck
config found from the rootdir upward, or a tootcheck option on the command line)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from tests import inner

FOREIGN_TEST = "def test_without_assert():\n    pass\n"
INI = "[pytest]\nenable_assertion_pass_hook = true\n"


def _pytest(where: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PYTEST_", "TOOTCHECK_"))}
    return inner.run(["-p", "no:cacheprovider", *args], cwd=where, env=env, timeout=120)


def _project(tmp_path: Path) -> Path:
    where = tmp_path / "foreign"
    where.mkdir()
    (where / "pytest.ini").write_text(INI)
    (where / "test_foreign.py").write_text(FOREIGN_TEST)
    return where


def test_options_coexist_with_pytest_kind(tmp_path: Path) -> None:
    done = _pytest(_project(tmp_path), "--help")
    assert done.returncode == 0, done.stderr[-2000:]
    plugins = done.stdout
    assert "--kubeconfig=KUBECONFIG" in plugins  # pytest-kind's, loaded from its entry point
    for option in ("--tootcheck-kubeconfig", "--tootcheck-cluster-name", "--tootcheck-keep-cluster",
                   "--tootcheck-base-url", "--target"):
        assert option in plugins, option


def test_inactive_in_a_foreign_project(tmp_path: Path) -> None:
    where = _project(tmp_path)
    done = _pytest(where, "-q")
    assert done.returncode == 0, done.stdout[-2000:]
    assert "1 passed" in done.stdout and "made no assertion" not in done.stdout
    assert "tootcheck summary" not in done.stdout
    assert not (where / "reports").exists()


def test_active_with_a_config_file_or_an_option(tmp_path: Path) -> None:
    where = _project(tmp_path)
    (where / "tootcheck.toml").write_text('profile = "baseline"\n')
    done = _pytest(where, "-q", "--tootcheck-keep-cluster=never")
    assert done.returncode == 1 and "made no assertion" in done.stdout, done.stdout[-2000:]
    assert (where / "reports" / "summary.json").is_file()
    (where / "tootcheck.toml").unlink()
    done = _pytest(where, "-q", "--target=none", "--reports-dir=out")
    assert done.returncode == 1 and "made no assertion" in done.stdout, done.stdout[-2000:]
    assert (where / "out" / "summary.json").is_file()
