"""tests/inner.py runs an inner session as ``python -m pytest`` would: its own process,
working directory, environment, output streams and exit status, and none of the state
of the session that started it."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests import inner
from tootcheck.checks import registry

PROBE = '''
import os, sys
from tootcheck.checks import registry

def test_sees_its_own_world():
    print("cwd=" + os.getcwd())
    print("probe=" + os.environ.get("INNER_PROBE", "-"))
    sys.stderr.write("to stderr\\n")
    assert not hasattr(registry, "OUTER_ONLY")
    assert os.environ.get("INNER_PROBE") == "yes"

def test_fails():
    assert 1 == 2
'''


def _project(tmp_path: Path, body: str) -> Path:
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    (tmp_path / "test_probe.py").write_text(body)
    return tmp_path


def test_a_session_has_its_own_cwd_env_streams_and_exit_status(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry, "OUTER_ONLY", True, raising=False)  # the caller's state
    where = _project(tmp_path, PROBE)
    env = {**os.environ, "INNER_PROBE": "yes"}
    done = inner.run(["-p", "no:cacheprovider", "-p", "no:tootcheck", "-s", "-q"], cwd=where, env=env)
    assert done.returncode == pytest.ExitCode.TESTS_FAILED, done.stdout + done.stderr
    assert f"cwd={where}" in done.stdout and "probe=yes" in done.stdout
    assert "1 failed, 1 passed" in done.stdout
    assert "to stderr" in done.stderr and "to stderr" not in done.stdout  # -s: not captured
    assert os.getcwd() != str(where) and "INNER_PROBE" not in os.environ  # the caller's unchanged
    # the plugins come preloaded through pytest's rewriting hook: no "already imported"
    assert "PytestAssertRewriteWarning" not in done.stdout + done.stderr


WARM = '''
import sys
from _pytest.assertion.rewrite import AssertionRewritingHook, assertstate_key

def test_plugins_are_preloaded_and_rewritten(pytestconfig):
    own_hook = pytestconfig.stash[assertstate_key].hook  # this session's rewriting hook
    for name in ("tootcheck.plugin", "tootcheck.testing", "tootcheck.hooks.guards",
                 "_hypothesis_pytestplugin", "xdist.plugin"):
        loader = sys.modules[name].__loader__
        assert isinstance(loader, AssertionRewritingHook), name  # rewritten, as pytest would
        assert loader is not own_hook, name  # by the fork server, not imported here
    assert "hypothesis" in sys.modules
'''


def test_the_plugins_come_preloaded_and_rewritten(tmp_path: Path) -> None:
    where = _project(tmp_path, WARM)
    done = inner.run(["-p", "no:cacheprovider", "-q", "-W", "error::pytest.PytestWarning"],
                     cwd=where)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "1 passed" in done.stdout


def test_a_usage_error_is_exit_status_4(tmp_path: Path) -> None:
    done = inner.run(["--no-such-option"], cwd=_project(tmp_path, PROBE))
    assert done.returncode == pytest.ExitCode.USAGE_ERROR
    assert "unrecognized arguments: --no-such-option" in done.stderr


def test_a_session_past_its_timeout_is_killed(tmp_path: Path) -> None:
    body = "import threading\n\ndef test_hangs():\n    assert threading.Event().wait(60)\n"
    where = _project(tmp_path, body)
    with pytest.raises(subprocess.TimeoutExpired):
        inner.run(["-p", "no:cacheprovider", "-p", "no:tootcheck", "-q"], cwd=where, timeout=1.5)
