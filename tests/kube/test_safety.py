"""Who created the cluster: the verdict behind the destructive-suite refusal."""

from __future__ import annotations

import pytest

from tootcheck.kube import safety

MARK = safety.marker("tootcheck", "20261127T100000Z", "2026-11-27T10:00:00Z")


def judge(**overrides):
    args = {"cluster": "tootcheck", "context": "kind-tootcheck", "server": "https://127.0.0.1:41234",
            "marker_configmap": MARK, "kind_clusters": ["tootcheck", "other"]}
    args.update(overrides)
    return safety.verdict(**args)


def test_created_by_suite():
    v = judge()
    assert v.created_by_suite and "run 20261127T100000Z" in v.reason


@pytest.mark.parametrize(("overrides", "fragment"), [
    ({"context": "prod-admin"}, "is not 'kind-tootcheck'"),
    ({"context": None}, "is not 'kind-tootcheck'"),
    ({"kind_clusters": ["other"]}, "no cluster named 'tootcheck'"),
    ({"server": "https://k8s.kirchner.social:6443"}, "not on loopback"),
    ({"server": "https://10.0.0.5:6443"}, "not on loopback"),
    ({"marker_configmap": None}, "no marker ConfigMap kube-system/tootcheck-cluster"),
    ({"marker_configmap": {**MARK, "metadata": {"name": "tootcheck-cluster", "labels": {}}}},
     "lacks label"),
    ({"marker_configmap": {**MARK, "data": {"cluster": "someone-else"}}}, "names cluster 'someone-else'"),
])
def test_not_created_by_suite(overrides, fragment):
    v = judge(**overrides)
    assert not v.created_by_suite and fragment in v.reason and "\n" not in v.reason


def test_unknown_kind_list_is_not_held_against_the_cluster():
    assert judge(kind_clusters=None).created_by_suite


@pytest.mark.parametrize(("server", "loopback"), [
    ("https://127.0.0.1:6443", True), ("https://localhost:6443", True), ("https://[::1]:6443", True),
    ("https://192.168.1.2:6443", False), ("https://kind-control-plane:6443", False)])
def test_loopback(server, loopback):
    assert safety.is_loopback_server(server) is loopback


def test_marker_shape():
    assert MARK["metadata"]["labels"] == {"app.kubernetes.io/managed-by": "tootcheck-tests"}
    assert MARK["data"]["cluster"] == "tootcheck"


@pytest.mark.parametrize(("name", "created", "allow", "action"), [
    ("kind://tootcheck", True, False, "run"),
    ("kind://tootcheck", False, True, "run"),
    ("kind://tootcheck", False, False, "fail"),
    ("live://kirchner.social", False, False, "skip"),
    ("live://kirchner.social", False, True, "run"),
])
def test_destructive_decision(name, created, allow, action):
    got, message = safety.destructive_decision(target_name=name, created_by_suite=created,
                                               reason="r", allow_destructive=allow)
    assert got == action and "\n" not in message
    if action != "run":
        assert "--allow-destructive" in message
