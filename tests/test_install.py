"""The built wheel, installed into a fresh virtual environment, works outside the checkout.

Slow (a wheel build by uv, then every dependency installed by uv, pinned in the test extras:
about 3 s with a warm uv cache, the dependencies pinned by constraints.txt), and still
part of `make test`: it is the only proof that the installed tool finds its data in the
package, not in this repository. The build runs on a copy of the tree so no build/ or
egg-info lands in the checkout; the dependencies come from uv's cache when it holds them
all, else from the package index (PyPI in CI).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests import REPO_ROOT

pytestmark = pytest.mark.slow(reason="a wheel build and a fresh venv with every dependency (uv)")

IGNORE = shutil.ignore_patterns(".git", ".venv", ".tools", ".cache", "reports", "build", "dist",
                                "*.egg-info", "__pycache__", "charts", ".pytest_cache",
                                ".hypothesis", ".pytest-kind")


def _run(cmd: list[str], cwd: Path, timeout: float = 900, *, scratch: Path | None = None
         ) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PYTEST_", "TOOTCHECK_", "VIRTUAL_ENV", "PYTHON"))}
    if scratch is not None:
        env["TMPDIR"] = str(scratch)  # uv leaves its lock files there
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout, check=False)


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """bin/ of a fresh venv with the wheel built from this tree installed."""
    root = tmp_path_factory.mktemp("install")
    source = root / "source"
    shutil.copytree(REPO_ROOT, source, symlinks=True, ignore=IGNORE)
    uv = Path(sys.executable).with_name("uv")  # pinned in the test extras; pip is 2-10x slower
    built = _run([str(uv), "build", "--wheel", "-q", "-o", str(root / "wheel"), str(source)],
                 cwd=root, scratch=root)
    assert built.returncode == 0, built.stderr[-3000:]
    (wheel,) = (root / "wheel").glob("tootcheck-*.whl")
    venv = root / "venv"
    made = _run([str(uv), "venv", "-q", "--python", sys.executable, str(venv)], cwd=root,
                scratch=root)
    assert made.returncode == 0, made.stderr[-2000:]
    bin_dir = venv / "bin"
    install = [str(uv), "pip", "install", "-q", "--python", str(bin_dir / "python"), "-c",
               str(REPO_ROOT / "constraints.txt"), str(wheel)]
    # From uv's cache first: online, uv revalidates every package with the index, and a
    # mirror that answers "modified" each time makes it download and build the one
    # sdist-only dependency (http-ece) again, about 4 s. A cold cache falls back online.
    done = _run([*install, "--offline"], cwd=root, scratch=root)
    if done.returncode != 0:
        done = _run(install, cwd=root, scratch=root)
    assert done.returncode == 0, done.stderr[-3000:]
    return bin_dir


@pytest.fixture
def empty_dir(tmp_path: Path) -> Path:
    where = tmp_path / "empty"
    where.mkdir()
    return where


def test_policy_runs_from_an_empty_directory(installed: Path, empty_dir: Path) -> None:
    render = empty_dir.parent / "mastodon.yaml"
    shutil.copyfile(REPO_ROOT / "manifests" / "rendered" / "mastodon.yaml", render)
    done = _run([str(installed / "tootcheck"), "policy", str(render)], cwd=empty_dir)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "verdict PASS" in done.stdout
    assert list(empty_dir.iterdir()) == []  # no reports, no caches in the operator's directory


def test_pytest_loads_with_the_plugin_and_pytest_kind(installed: Path, empty_dir: Path) -> None:
    done = _run([str(installed / "pytest"), "--version"], cwd=empty_dir)
    assert done.returncode == 0, done.stderr[-3000:]
    helped = _run([str(installed / "pytest"), "--help"], cwd=empty_dir)
    assert helped.returncode == 0, helped.stderr[-3000:]
    assert "--tootcheck-kubeconfig" in helped.stdout and "--kubeconfig=KUBECONFIG" in helped.stdout


def test_package_data_comes_from_the_installed_package(installed: Path, empty_dir: Path) -> None:
    probe = ("import tootcheck.peers, tootcheck.resources as r, tootcheck.rendering as g;"
             "print(r.data_root()); print(tootcheck.peers.PEER_PROGRAM);"
             "print(g.source_dir('manifests/infra/nfs'));"
             "print(sorted(p.name for p in r.schema_dir().iterdir()))")
    done = _run([str(installed / "python"), "-c", probe], cwd=empty_dir)
    assert done.returncode == 0, done.stderr[-3000:]
    venv = installed.parent.resolve()
    data_root, peer, nfs, schemas = done.stdout.splitlines()
    for path in (data_root, peer, nfs):
        assert Path(path).resolve().is_relative_to(venv), path
        assert not Path(path).resolve().is_relative_to(REPO_ROOT), path
    assert (Path(nfs) / "kustomization.yaml").is_file()
    assert "cert-manager.io" in schemas


def test_active_plugin_runs_in_an_operator_project(installed: Path, empty_dir: Path) -> None:
    (empty_dir / "tootcheck.toml").write_text('profile = "baseline"\n')
    (empty_dir / "pytest.ini").write_text("[pytest]\nenable_assertion_pass_hook = true\n")
    (empty_dir / "test_ops.py").write_text(
        "def test_settings(settings):\n    assert settings.target == 'none'\n\n"
        "def test_no_assert():\n    pass\n")
    done = _run([str(installed / "pytest"), "-q", "-p", "no:cacheprovider"], cwd=empty_dir)
    assert done.returncode == 1, done.stdout[-3000:] + done.stderr[-2000:]
    assert "1 failed, 1 passed" in done.stdout and "made no assertion" in done.stdout
    assert (empty_dir / "reports" / "summary.json").is_file()


SEED = REPO_ROOT / "examples" / "seed-style" / "rendered" / "mastodon.yaml"
DEFECTIVE = REPO_ROOT / "examples" / "seed-style-defective" / "rendered" / "mastodon.yaml"
TRUE_DEFECTS = {"MSTDN-SECRET-001", "MSTDN-DB-002", "MSTDN-CFG-001", "MSTDN-CFG-003",
                "MSTDN-CFG-008", "MSTDN-UPG-002"}


def _errors(stdout: str) -> set[str]:
    return {line.split()[1] for line in stdout.splitlines() if line.strip().startswith("ERROR ")}


def test_operator_deployment_from_an_empty_directory(installed: Path, empty_dir: Path) -> None:
    """Issue 10's 'done when': no config, neutral defaults. The seed-style render passes
    baseline and fails hardened; the copy with the defects left in fails baseline with
    exactly the true defects."""
    tootcheck = str(installed / "tootcheck")
    baseline = _run([tootcheck, "policy", str(SEED)], cwd=empty_dir)
    assert baseline.returncode == 0, baseline.stdout[-3000:] + baseline.stderr[-2000:]
    assert _errors(baseline.stdout) == set()
    hardened = _run([tootcheck, "policy", "--profile", "hardened", str(SEED)], cwd=empty_dir)
    assert hardened.returncode == 1, hardened.stdout[-3000:]
    assert {"MSTDN-SEC-002", "MSTDN-WL-001"} <= _errors(hardened.stdout)
    defective = _run([tootcheck, "policy", str(DEFECTIVE)], cwd=empty_dir)
    assert defective.returncode == 1, defective.stdout[-3000:]
    assert _errors(defective.stdout) == TRUE_DEFECTS
    assert list(empty_dir.iterdir()) == []
