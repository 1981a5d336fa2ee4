"""The false-green guards fail a bad run, also in parallel (pytest-xdist, ``-n 2``).

Each guard is proven on an inner pytest session (pytester's files, the session in its own
process, forked by tests/inner.py): the
no-assertion guard, ``--strict-peers``, ``--check-coverage``, rerun-only passes, checks
the mode selects that did not run (skipped in setup or in the body), NOT PROVEN parts,
the live preflight and the refusal to run with the assertion hook off.
"""

from __future__ import annotations

import json
import os

import pytest

from tests import REPO_ROOT
from tests.inner import run, run_pytester
from tootcheck.checks.registry import all_checks

INI = "[pytest]\nenable_assertion_pass_hook = true\n"
QUIET = ("-p", "no:cacheprovider", "-p", "no:pytest-kind", "-p", "no:hypothesispytest",
         "-p", "no:pytest_httpserver", "-rA")
XDIST = ("-p", "xdist", "-n", "2")
# The inner runs register their own checks; the suite's real ones are allowed to be absent.
ALLOW_REAL = "--allow-missing=" + ",".join(sorted(all_checks()))

# In conftest.py: the controller of a parallel run imports no test module.
CHECKS = '''
from tootcheck.checks.registry import live_check


@live_check("inner.probe", faults={"probe-broken": "the probe fails"})
def probe():
    """Probes."""


@live_check("inner.reader", faults={"bad": "bad"})
def reader():
    """Reads."""
'''

BAD = '''
import pytest
from tootcheck.model import CheckRun
from tootcheck.testing import expect_ok, not_proven, peer_missing

ATTEMPTS = {"flaky": 0}


def test_asserts_nothing():
    x = 1 + 1


def test_needs_a_peer():
    peer_missing("redis", "no redis-server here")


def test_flaky():
    ATTEMPTS["flaky"] += 1
    assert ATTEMPTS["flaky"] > 1, "first attempt fails"


@pytest.mark.check("inner.probe")
def test_probe_healthy():
    run = CheckRun("inner.probe", "peer://inner")
    run.observe()
    expect_ok(run.result())


@pytest.mark.check("inner.reader")
def test_reader_skips_in_its_body():
    pytest.skip("the reader found no account")


def test_part_not_proven(request):
    not_proven(request.node, "inner.part", "no tool here")
'''


def _env() -> dict[str, str]:
    """The environment without TOOTCHECK_* settings (no kubeconfig, no strict peers)."""
    return {k: v for k, v in os.environ.items()
            if not k.startswith("TOOTCHECK_") and k != "PYTEST_ADDOPTS"}


@pytest.fixture
def inner(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    for key in list(os.environ):
        if key.startswith("TOOTCHECK_"):
            monkeypatch.delenv(key)
    pytester.makeini(INI)
    pytester.makeconftest(CHECKS)
    (pytester.path / "tootcheck.toml").write_text("")  # a tootcheck project: the plugin is active
    return pytester


def _run(p: pytest.Pytester, *args: str) -> tuple[pytest.RunResult, dict]:
    result = run_pytester(p, *QUIET, f"--reports-dir={p.path / 'reports'}", *args, timeout=240)
    path = p.path / "reports" / "summary.json"
    return result, (json.loads(path.read_text()) if path.exists() else {})


def _outcomes(summary: dict) -> dict[str, str]:
    return {t["nodeid"].split("::")[-1]: t["outcome"] for t in summary["tests"]}


@pytest.mark.slow(reason="an inner parallel run: a controller and two workers start pytest")
def test_every_guard_fails_a_bad_parallel_run(inner: pytest.Pytester) -> None:
    inner.makepyfile(test_bad=BAD)
    result, summary = _run(inner, *XDIST, "--strict-peers", "--check-coverage",
                           "--reruns", "1", "--only-rerun", "first attempt fails",
                           "--target=kind", ALLOW_REAL)
    out = result.stdout.str()
    assert result.ret == pytest.ExitCode.TESTS_FAILED, out
    assert "created: 2/2 workers" in out or "2 workers" in out, out  # really parallel
    outcomes = _outcomes(summary)
    # no-assertion guard: decided in the worker, travels in the report
    assert outcomes["test_asserts_nothing"] == "failed"
    assert "made no assertion" in out
    # --strict-peers: a missing peer fails instead of skipping
    assert outcomes["test_needs_a_peer"] == "failed"
    assert "strict peers" in out
    # a rerun-only pass fails gate mode
    assert outcomes["test_flaky"] == "flaky"
    assert "passed only on rerun" in out and "test_bad.py::test_flaky" in out
    # --check-coverage: the healthy proof came back from a worker, the fault never did
    assert "live check coverage: NOT PROVEN" in out
    assert "inner.probe: fault 'probe-broken' never proven" in out
    assert "inner.probe: never shown passing" not in out
    # a check skipped in its body did not run; a NOT PROVEN part fails a run with a target
    assert "inner.reader: skipped in the test body: the reader found no account" in out
    assert "inner.part: no tool here" in out
    assert summary["gaps"]["not_run"]["inner.reader"] == (
        "skipped in the test body: the reader found no account")
    assert "inner.reader" not in summary["gaps"]["allowed_missing"]
    assert summary["gaps"]["not_proven"] == {"inner.part": "no tool here"}
    assert summary["ok"] is False and summary["exit_status"] == 1


def test_the_same_run_passes_when_each_gap_is_allowed(inner: pytest.Pytester) -> None:
    inner.makepyfile(test_good='''
import pytest
from tootcheck.model import CheckRun
from tootcheck.testing import expect_fault, expect_ok, not_proven

ATTEMPTS = {"flaky": 0}


def test_flaky():
    ATTEMPTS["flaky"] += 1
    assert ATTEMPTS["flaky"] > 1, "first attempt fails"


@pytest.mark.check("inner.probe")
def test_probe():
    run = CheckRun("inner.probe", "peer://inner")
    run.observe()
    expect_ok(run.result())
    run.fail("probe-broken", "the probe fails")
    expect_fault(run.result(), "probe-broken")


@pytest.mark.check("inner.reader")
def test_reader_skips_in_its_body():
    pytest.skip("the reader found no account")


def test_part_not_proven(request):
    not_proven(request.node, "inner.part", "no tool here")
''')
    # serial: the parallel path is proven above; this is the allow-list counterpart
    result, summary = _run(inner, "--reruns", "1", "--only-rerun", "first attempt fails",
                           "--target=kind", ALLOW_REAL, "--allow-missing=inner.reader,inner.part",
                           "--allow-flaky")
    out = result.stdout.str()
    assert result.ret == pytest.ExitCode.OK, out
    assert {"inner.part", "inner.reader"} <= set(summary["gaps"]["allowed_missing"])
    assert "NOT RUN inner.reader (allowed missing)" in out
    assert "NOT PROVEN inner.part: no tool here" in out


def test_without_a_target_not_proven_parts_are_listed_not_failed(inner: pytest.Pytester) -> None:
    inner.makepyfile(test_offline='''
from tootcheck.testing import not_proven


def test_fresh(request):
    not_proven(request.node, "render.freshness[x]", "helm not found")


def test_ok():
    assert True
''')
    result, summary = _run(inner)
    out = result.stdout.str()
    assert result.ret == pytest.ExitCode.OK, out
    assert "NOT PROVEN render.freshness[x]: helm not found" in out
    assert summary["gaps"]["not_proven"] == {"render.freshness[x]": "helm not found"}


def test_strict_peers_off_skips_with_the_reason(inner: pytest.Pytester) -> None:
    inner.makepyfile(test_peer='''
from tootcheck.testing import peer_missing


def test_needs_a_peer():
    peer_missing("redis", "no redis-server here")
''')
    result, summary = _run(inner)
    assert result.ret == pytest.ExitCode.OK, result.stdout.str()
    assert _outcomes(summary) == {"test_needs_a_peer": "skipped"}
    assert "SKIPPED 1x local peer redis unavailable: no redis-server here" in result.stdout.str()


COUNTER = '''
EXPLAINED = []


def pytest_assertrepr_compare(op, left, right):
    EXPLAINED.append(op)  # pytest asks this for the explanation of a compare it reports


def pytest_sessionfinish(session):
    (session.config.rootpath / "explained.txt").write_text(str(len(EXPLAINED)))
'''

PAUSED = '''
ATTEMPTS = {"rerun": 0}


def test_asserts_in_a_loop():
    for value in range(500):
        assert value == value


def test_after_it_asserts_nothing():
    x = 1 + 1


def test_after_it_asserts_once():
    assert "a" != "b"


def test_passes_on_its_rerun():
    for value in range(3):
        assert value == value
    ATTEMPTS["rerun"] += 1
    assert ATTEMPTS["rerun"] > 1, "first attempt fails"
'''


def test_the_guard_explains_one_passing_assert_per_test_and_still_counts_each_test(
        inner: pytest.Pytester) -> None:
    inner.makeconftest(CHECKS + COUNTER)
    inner.makepyfile(test_paused=PAUSED)
    result, summary = _run(inner, "--reruns", "1", "--only-rerun", "first attempt fails",
                           ALLOW_REAL)
    assert _outcomes(summary) == {"test_asserts_in_a_loop": "passed",
                                  "test_after_it_asserts_nothing": "failed",
                                  "test_after_it_asserts_once": "passed",
                                  "test_passes_on_its_rerun": "flaky"}, result.stdout.str()
    assert "test_after_it_asserts_nothing: made no assertion" in result.stdout.str()
    # the loop's first passing compare, the rerun test's first in each attempt, and the
    # failing compare (reported); not one per passing assert of the loop
    assert int((inner.path / "explained.txt").read_text()) == 5


@pytest.mark.parametrize("off", [("-o", "enable_assertion_pass_hook=false"), ("--assert=plain",)],
                         ids=["hook-off", "assert-plain"])
def test_no_assertion_guard_refuses_to_run_blind(inner: pytest.Pytester, off: tuple[str, ...]) -> None:
    inner.makepyfile(test_x="def test_x():\n    assert True\n")
    result = run_pytester(inner, *QUIET, *off, timeout=120)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    errors = [line for line in result.stderr.lines if line.strip()]
    assert len(errors) == 1 and "no-assertion guard cannot count asserts" in errors[0], errors
    assert "Traceback" not in result.stdout.str() + result.stderr.str()


def test_live_nightly_without_a_kubeconfig_stops_before_the_tests() -> None:
    # The command of issue 11, from the repository: exit 2 with one line, no test run.
    done = run(["suites", "--target=live", "--mode=nightly",
                "--tootcheck-base-url=https://example.invalid", "-p", "no:cacheprovider"],
               cwd=REPO_ROOT, env=_env(), timeout=120)
    assert done.returncode == 2, done.stdout + done.stderr
    lines = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    assert len(lines) == 1, lines
    assert "kubeconfig" in lines[0] and "sidekiq.health" in lines[0] and "drift.render_vs_live" in lines[0]
    assert "streaming.auth" in lines[0]  # the test token is missing as well


def test_live_preflight_passes_what_is_allowed_missing() -> None:
    from tootcheck.hooks.completeness import live_preflight
    from tootcheck.settings import load

    settings = load({"target": "live", "base_url": "https://example.invalid"}, env={})
    assert "sidekiq.health" in live_preflight(settings)
    everything = settings.with_(allow_missing=("*",))
    assert live_preflight(everything) == ""
    with_cluster = settings.with_(kube_context="prod", allow_missing=("streaming.*", "sidekiq.roundtrip"))
    assert live_preflight(with_cluster) == ""
