"""Inner pytest sessions, forked from a warm fork server instead of started cold.

``python -m pytest`` in a fresh interpreter spends most of a second importing pytest,
tootcheck and their dependencies before it collects anything, and some forty of the
suite's tests start one. Here each xdist worker starts one fork server (multiprocessing's
"forkserver": a fresh, single-threaded process that has imported :data:`PRELOAD` and
nothing of the worker's state), and each inner session is a child forked from it. The
child is still its own process, with its own working directory, environment, output
and exit status, as ``python -m pytest`` would have: the tests keep judging a real run.

tootcheck and the other installed pytest plugins are preloaded last, by
:mod:`tests.inner_warm`, through pytest's own assertion-rewriting hook: a fresh session
marks their packages for rewriting as it starts, and finds them loaded and rewritten as it
would have loaded them itself.
"""

from __future__ import annotations

import atexit
import gc
import io
import multiprocessing
import multiprocessing.forkserver
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from multiprocessing.process import BaseProcess
from pathlib import Path

import pytest

# What a session in this suite imports anyway; the plugins (rewritten) come last.
PRELOAD = (
    "pytest", "_pytest.pytester", "_pytest.junitxml", "_pytest.terminal", "_pytest.pastebin",
    "_pytest.monkeypatch", "_pytest.tmpdir",
    "asyncio", "email.message", "html", "json", "smtplib", "ssl", "tomllib", "xml.etree.ElementTree",
    "cryptography.x509", "cryptography.hazmat.primitives.asymmetric.ec",
    "cryptography.hazmat.primitives.asymmetric.rsa", "http_ece", "joserfc.jwt", "jsonschema",
    "kubernetes.client", "kubernetes.config", "kubernetes.dynamic", "kubernetes.stream",
    "mastodon", "psycopg", "pykube", "redis", "requests", "trustme", "urllib3", "websockets",
    "werkzeug", "yaml", "difflib", "faulthandler", "gzip", "pdb", "unittest",
    "tests.inner_warm",
)

_context = multiprocessing.get_context("forkserver")
_context.set_forkserver_preload(list(PRELOAD))
CHECKOUT = Path(__file__).resolve().parents[1]


def start_server() -> None:
    """Start the fork server (once) with the checkout on its PYTHONPATH. Python 3.11's fork
    server ignores its parent's sys.path: it would find `tests.inner_warm` only if the
    working directory happened to be the checkout, and one started by a test that had
    changed directory (pytester does) ran without the plugins preloaded
    (test_the_plugins_come_preloaded_and_rewritten). :func:`start` calls this first."""
    saved = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(CHECKOUT), saved]))
    try:
        multiprocessing.forkserver.ensure_running()
    finally:
        if saved is None:
            del os.environ["PYTHONPATH"]
        else:
            os.environ["PYTHONPATH"] = saved


def _redirect(fd: int, path: str) -> io.TextIOWrapper:
    target = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.dup2(target, fd)
    os.close(target)
    return io.TextIOWrapper(io.FileIO(fd, "w", closefd=False), encoding="utf-8",
                            errors="backslashreplace", line_buffering=True)


def _session(args: list[str], cwd: str, env: dict[str, str], out: str, err: str) -> None:
    """The child: become ``python -m pytest ARGS`` run in ``cwd`` with ``env``."""
    sys.stdout = sys.__stdout__ = _redirect(1, out)
    sys.stderr = sys.__stderr__ = _redirect(2, err)
    os.chdir(cwd)
    os.environ.clear()
    os.environ.update(env)
    extra = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    sys.path[:0] = [cwd, *extra]  # -m puts the working directory first, then PYTHONPATH
    sys.argv = [sys.argv[0], *args]
    gc.freeze()  # the preloaded modules: pytest's collections at exit then skip them (0.15 s)
    try:
        code = int(pytest.main(args))
    except SystemExit as exc:  # pytest.main reports usage errors by exit code, plugins may raise
        code = exc.code if isinstance(exc.code, int) else 1
    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


class Session:
    """An inner session in progress, with what ``subprocess.Popen`` offers the tests."""

    def __init__(self, process: BaseProcess, stdout: Path, stderr: Path, args: Sequence[str]):
        self._process = process
        self.stdout_path = stdout
        self.stderr_path = stderr
        self.args = list(args)

    @property
    def returncode(self) -> int | None:
        return self._process.exitcode

    def wait(self, timeout: float | None = None) -> int:
        self._process.join(timeout)
        code = self._process.exitcode
        if code is None:
            raise subprocess.TimeoutExpired(["pytest", *self.args], timeout or 0.0)
        return code

    def kill(self) -> None:
        self._process.kill()


def start(args: Sequence[str], *, cwd: Path | str, env: Mapping[str, str] | None = None,
          stdout: Path, stderr: Path) -> Session:
    """``python -m pytest ARGS`` started in ``cwd``; its output goes to the two files."""
    start_server()
    process = _context.Process(
        target=_session,
        args=(list(args), str(cwd), dict(os.environ if env is None else env), str(stdout),
              str(stderr)),
        daemon=True)
    process.start()
    return Session(process, Path(stdout), Path(stderr), args)


def run(args: Sequence[str], *, cwd: Path | str, env: Mapping[str, str] | None = None,
        timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
    """What ``subprocess.run([python, "-m", "pytest", *args], capture_output=True, text=True)``
    returns, the session forked; past ``timeout`` it is killed and TimeoutExpired raised."""
    with tempfile.TemporaryDirectory(prefix="inner-") as scratch:
        out, err = Path(scratch, "stdout"), Path(scratch, "stderr")
        session = start(args, cwd=cwd, env=env, stdout=out, stderr=err)
        try:
            code = session.wait(timeout)
        except subprocess.TimeoutExpired:
            session.kill()
            session.wait(10)
            raise
        return subprocess.CompletedProcess(["pytest", *args], code, out.read_text(),
                                           err.read_text())


def run_pytester(pytester: pytest.Pytester, *args: str, timeout: float = 120.0) -> pytest.RunResult:
    """``pytester.runpytest_subprocess(*args)`` with the session forked: in ``pytester.path``,
    with the environment the fixture set and its directory first on PYTHONPATH."""
    base = tempfile.mkdtemp(prefix="runpytest-", dir=pytester.path)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(pytester.path), env.get("PYTHONPATH")]))
    began = time.monotonic()
    done = run([f"--basetemp={base}", *args], cwd=pytester.path, env=env, timeout=timeout)
    return pytest.RunResult(done.returncode, done.stdout.splitlines(), done.stderr.splitlines(),
                            time.monotonic() - began)
