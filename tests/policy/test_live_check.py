"""policy.live_objects against a local fake API server: passes on the reference objects,
fails on a violation and on an unreachable cluster."""

from __future__ import annotations

from pathlib import Path

from pytest_httpserver import HTTPServer

from tests.policy.test_live import SECRET_VALUE, cluster_objects, kubeconfig, serve
from tootcheck.policy.live_check import check_live_objects
from tootcheck.target import Target
from tootcheck.testing import expect_fault, expect_ok


def target_for(kc: Path) -> Target:
    return Target(name="fake://cluster", kubeconfig=kc, namespace="mastodon")


def test_reference_objects_pass(httpserver: HTTPServer, tmp_path: Path) -> None:
    serve(httpserver, cluster_objects())
    result = check_live_objects(target_for(kubeconfig(tmp_path, httpserver.url_for("/").rstrip("/"))),
                                waivers=None)
    expect_ok(result)
    assert SECRET_VALUE not in result.summary


def test_missing_secret_key_is_a_violation(httpserver: HTTPServer, tmp_path: Path) -> None:
    serve(httpserver, cluster_objects(missing_key="ACTIVE_RECORD_ENCRYPTION_PRIMARY_KEY"))
    result = check_live_objects(target_for(kubeconfig(tmp_path, httpserver.url_for("/").rstrip("/"))),
                                waivers=None)
    expect_fault(result, "violation", mentions="MSTDN-SECRET-004")
    assert SECRET_VALUE not in result.summary


def test_unreachable_cluster(tmp_path: Path) -> None:
    result = check_live_objects(target_for(kubeconfig(tmp_path, "https://127.0.0.1:1")), waivers=None)
    expect_fault(result, "cluster-unreachable", mentions="unreachable")
