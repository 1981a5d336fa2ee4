"""The kind fixtures wired end to end in inner pytest sessions, with a fake kind binary
and a fake API: progress lines, the target, keep/delete, evidence, destructive guard."""

from __future__ import annotations

import json
import os
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tests.inner import run as run_pytest
from tootcheck.kube import plan

REPO = Path(__file__).resolve().parents[2]

FAKE_KIND = """#!/bin/sh
STATE="{state}"
echo "$@" >> "$STATE.calls"
case "$1 $2" in
  "get clusters") cat "$STATE" 2>/dev/null; exit 0 ;;
  "create cluster") echo tootcheck >> "$STATE"; exit 0 ;;
  "export kubeconfig") exit 0 ;;
  "delete cluster") : > "$STATE"; exit 0 ;;
esac
exit 1
"""

CONFTEST = '''
from pathlib import Path

import pytest

import fixtures.cluster as fc
from tests.kube.fakes import FakeKube
from tootcheck.kube import bringup, safety
from tootcheck.kube.bringup import cluster as bringup_cluster

pytest_plugins = ["fixtures.target", "fixtures.cluster"]
KUBE = FakeKube()
fc._connect = lambda path, context: KUBE
fc.CACHE_ROOT = Path({cache!r})
MODE = {mode!r}


@pytest.fixture(scope="session")
def kind_tools():
    return {{"kind": Path({kind!r}), "kubectl": Path({kind!r})}}


def stub(ctx, phase):
    return "stubbed"


def fail_render(ctx, phase):
    raise RuntimeError("kustomize: helm v4 is not supported by --enable-helm")


def cluster_without_marker(ctx, phase):
    note = bringup_cluster.run_cluster(ctx, phase)
    del KUBE.objects[("ConfigMap", "kube-system", safety.MARKER_NAME)]
    return note


def cluster_then_fail(ctx, phase):
    bringup_cluster.run_cluster(ctx, phase)
    raise RuntimeError("the API server stopped answering")


for name in list(bringup.IMPLS):
    if name not in ("cluster", "secrets"):
        bringup.IMPLS[name] = bringup.Impl(stub)
if MODE == "fail":
    bringup.IMPLS["render"] = bringup.Impl(fail_render)
if MODE == "cluster-fail":
    bringup.IMPLS["cluster"] = bringup.Impl(cluster_then_fail)
if MODE == "unmarked":
    bringup.IMPLS["cluster"] = bringup.Impl(cluster_without_marker)
'''

TESTS = '''
import pytest


def test_target(target):
    assert target.name == "kind://tootcheck"
    assert target.kube_context == "kind-tootcheck"
    assert target.pins.resolve("kirchner.social", 443) == ("127.0.0.1", 443)
    assert target.accounts == {}


@pytest.mark.destructive
def test_destructive(target):
    assert target.name.startswith("kind://")
'''


def junit_messages(directory: Path) -> dict[str, str]:
    """testcase name -> the message of its failure or error (untruncated)."""
    out = {}
    for case in ET.parse(directory / "junit.xml").getroot().iter("testcase"):
        for child in case:
            if child.tag in ("failure", "error"):
                out[case.get("name")] = child.get("message", "")
    return out


def inner(tmp_path: Path, mode: str, *args: str,
          existing: bool = False) -> tuple[subprocess.CompletedProcess[str], Path]:
    directory = tmp_path / mode
    directory.mkdir()
    if existing:  # a kind cluster named tootcheck exists before the run
        (directory / "clusters").write_text("tootcheck\n")
    kind = directory / "kind"
    kind.write_text(FAKE_KIND.format(state=directory / "clusters"))
    kind.chmod(0o755)
    (directory / "pytest.ini").write_text(
        "[pytest]\naddopts = -p no:pytest-kind -p no:hypothesispytest -p no:pytest_httpserver\n"
        "enable_assertion_pass_hook = true\n")
    (directory / "conftest.py").write_text(CONFTEST.format(cache=str(directory / "cache"), mode=mode,
                                                          kind=str(kind)))
    (directory / "test_inner.py").write_text(TESTS)
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOOTCHECK_")}
    env["PYTHONPATH"] = str(REPO)
    done = run_pytest(
        ["-p", "no:cacheprovider", "--target=kind",
         "--allow-missing=*",  # no live check runs here: the bring-up is under test
         "--reports-dir", str(directory / "reports"), "--junitxml", str(directory / "junit.xml"),
         "-rA", *args],
        cwd=directory, env=env, timeout=120)
    return done, directory


@pytest.fixture(scope="module")
def passing(tmp_path_factory):
    return inner(tmp_path_factory.mktemp("fixtures"), "pass")


@pytest.fixture(scope="module")
def failing(tmp_path_factory):
    return inner(tmp_path_factory.mktemp("fixtures"), "fail")


def test_bring_up_prints_a_line_per_phase_and_serves_the_target(passing):
    done, directory = passing
    assert done.returncode == 0, done.stdout + done.stderr
    phase_lines = [ln for ln in done.stdout.splitlines() if ln.startswith("bring-up [")]
    assert len(phase_lines) == len(plan.KIND_PLAN) == 17
    # cluster and render run at once, first (render needs no cluster): either may end first
    assert any(ln.startswith("bring-up [ 1/17] cluster") for ln in phase_lines[:2])
    # Phases run several at once, so lines come as phases end; the number is the plan's.
    assert sorted(ln[:16] for ln in phase_lines) == [f"bring-up [{i:2}/17]" for i in range(1, 18)]
    peers = next(ln for ln in phase_lines if ln.startswith("bring-up [17/17] peers"))
    assert peers.endswith("ran: stubbed")
    timings = json.loads((directory / "reports" / "timings.json").read_text())
    assert timings["outcome"] == "ok" and len(timings["phases"]) == 17


def test_a_passing_run_deletes_the_cluster_and_says_so(passing):
    done, directory = passing
    assert "delete cluster --name=tootcheck" in (directory / "clusters.calls").read_text()
    assert "kind cluster 'tootcheck' deleted: all passed (--tootcheck-keep-cluster=on-failure)" in done.stdout
    assert not (directory / "reports" / "evidence").exists()


def test_destructive_test_runs_on_the_suites_own_cluster(passing):
    done, _ = passing
    assert "PASSED test_inner.py::test_destructive" in done.stdout


def test_failed_bring_up_is_one_line_and_keeps_the_cluster(failing):
    done, directory = failing
    assert done.returncode == pytest.ExitCode.TESTS_FAILED
    message = ("bring-up phase render failed: kustomize: helm v4 is not supported by "
               "--enable-helm")
    messages = junit_messages(directory)
    assert set(messages) == {"test_target", "test_destructive"}
    assert all(m == f'failed on setup with "Failed: {message}"' for m in messages.values())
    assert "FAILED: kustomize: helm v4" in done.stdout  # the phase's own progress line
    assert "kind cluster 'tootcheck' kept: a test or the bring-up failed" in done.stdout
    assert f"  export KUBECONFIG={directory / 'cache' / 'tootcheck' / 'kubeconfig'}" in done.stdout
    assert "delete cluster" not in (directory / "clusters.calls").read_text()
    timings = json.loads((directory / "reports" / "timings.json").read_text())
    assert timings["outcome"] == "failed" and timings["actions"]["render"] == "failed"


def test_failed_bring_up_leaves_evidence_linked_from_junit(failing):
    _, directory = failing
    bundles = sorted(p.name for p in (directory / "reports" / "evidence").iterdir())
    assert bundles == ["test_inner.py__test_destructive", "test_inner.py__test_target"]
    failure = (directory / "reports" / "evidence" / bundles[1] / "failure.txt").read_text()
    assert "bring-up phase render failed" in failure
    cases = {c.get("name"): {p.get("name") for p in c.iter("property")}
             for c in ET.parse(directory / "junit.xml").getroot().iter("testcase")}
    assert cases["test_target"] >= {"evidence"}


def test_unmarked_cluster_refuses_destructive_tests(tmp_path):
    done, directory = inner(tmp_path, "unmarked")
    assert "PASSED test_inner.py::test_target" in done.stdout
    messages = junit_messages(directory)
    assert list(messages) == ["test_destructive"]
    assert "refused: destructive test on kind://tootcheck, which the suite did not create" in (
        messages["test_destructive"])
    assert "pass --allow-destructive to override" in messages["test_destructive"]


def test_allow_destructive_overrides(tmp_path):
    done, _ = inner(tmp_path, "unmarked", "--allow-destructive")
    assert "PASSED test_inner.py::test_destructive" in done.stdout


def test_a_cluster_created_then_failed_is_kept_with_reconnect_lines(tmp_path):
    # The cluster phase failed after `kind create`: the fixture never yielded, so
    # --tootcheck-keep-cluster is applied on the failure path itself.
    done, directory = inner(tmp_path, "cluster-fail")
    assert done.returncode == pytest.ExitCode.TESTS_FAILED
    assert "bring-up phase cluster failed: the API server stopped answering" in done.stdout
    assert "kind cluster 'tootcheck' kept: a test or the bring-up failed" in done.stdout
    assert "delete cluster" not in (directory / "clusters.calls").read_text()


def test_a_cluster_created_then_failed_is_deleted_with_keep_never(tmp_path):
    done, directory = inner(tmp_path, "cluster-fail", "--tootcheck-keep-cluster=never")
    assert done.returncode == pytest.ExitCode.TESTS_FAILED
    assert "delete cluster --name=tootcheck" in (directory / "clusters.calls").read_text()
    assert "kind cluster 'tootcheck' deleted: --tootcheck-keep-cluster=never" in done.stdout


def test_a_reused_cluster_without_the_marker_survives_keep_never(tmp_path):
    # --reuse-cluster on a kind cluster the suite did not create: never deleted.
    done, directory = inner(tmp_path, "pass", "--reuse-cluster", "--tootcheck-keep-cluster=never",
                            existing=True)
    assert "PASSED test_inner.py::test_target" in done.stdout, done.stdout + done.stderr
    assert "refused: destructive test on kind://tootcheck" in done.stdout  # foreign, as above
    assert "delete cluster" not in (directory / "clusters.calls").read_text()
    assert "kind cluster 'tootcheck' kept: the suite did not create it" in done.stdout
