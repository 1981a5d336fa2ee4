"""Cluster access against a fake API server on 127.0.0.1: contexts, reachability,
get/list, and the server-side apply request itself (verb, content type, field manager)."""

from __future__ import annotations

import json
import socket
import tempfile
from pathlib import Path

import pytest
import yaml
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from tootcheck.errors import BadInput, KindNotServed
from tootcheck.kube import client

API_V1 = {"kind": "APIResourceList", "groupVersion": "v1", "resources": [
    {"name": "configmaps", "singularName": "configmap", "namespaced": True, "kind": "ConfigMap",
     "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"]},
    {"name": "namespaces", "singularName": "namespace", "namespaced": False, "kind": "Namespace",
     "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"]},
]}
APPS_V1 = {"kind": "APIResourceList", "groupVersion": "apps/v1", "resources": [
    {"name": "deployments", "singularName": "deployment", "namespaced": True, "kind": "Deployment",
     "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"]}]}
VERSION = {"major": "1", "minor": "34", "gitVersion": "v1.34.0", "gitCommit": "abc",
           "gitTreeState": "clean", "buildDate": "2025-08-27T00:00:00Z", "goVersion": "go1.24.6",
           "compiler": "gc", "platform": "linux/amd64", "emulationMajor": "1", "emulationMinor": "34",
           "minCompatibilityMajor": "1", "minCompatibilityMinor": "33"}
GROUPS = {"kind": "APIGroupList", "apiVersion": "v1", "groups": [
    {"name": "apps", "versions": [{"groupVersion": "apps/v1", "version": "v1"}],
     "preferredVersion": {"groupVersion": "apps/v1", "version": "v1"}}]}


def kubeconfig(tmp_path: Path, server: str, contexts=("kind-tootcheck",)) -> Path:
    config = {
        "apiVersion": "v1", "kind": "Config", "current-context": contexts[0],
        "clusters": [{"name": "c", "cluster": {"server": server}}],
        "users": [{"name": "u", "user": {"token": "not-a-real-token-123456"}}],
        "contexts": [{"name": n, "context": {"cluster": "c", "user": "u"}} for n in contexts],
    }
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump(config))
    return path


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_unknown_context_is_one_line_naming_the_known_ones(tmp_path):
    path = kubeconfig(tmp_path, "http://127.0.0.1:1", contexts=("kind-tootcheck", "prod"))
    with pytest.raises(BadInput) as info:
        client.connect(path, "kind-other")
    assert str(info.value) == (f"kube context 'kind-other' not found in {path} "
                               "(known: kind-tootcheck, prod)")


def test_unreachable_cluster_is_one_line(tmp_path):
    path = kubeconfig(tmp_path, f"http://127.0.0.1:{closed_port()}")
    with pytest.raises(BadInput) as info:
        client.connect(path, "kind-tootcheck", timeout=3)
    text = str(info.value)
    assert text.startswith("cluster http://127.0.0.1:") and "(context kind-tootcheck) unreachable" in text
    assert "\n" not in text and "not-a-real-token" not in text


def test_unreadable_kubeconfig(tmp_path):
    bad = tmp_path / "kubeconfig"
    bad.write_text("this: [is not a kubeconfig")
    with pytest.raises(BadInput, match="cannot read kubeconfig"):
        client.connect(bad)


@pytest.fixture
def api(httpserver: HTTPServer) -> HTTPServer:
    for path in ("/version", "/version/"):
        httpserver.expect_request(path).respond_with_json(VERSION)
    httpserver.expect_request("/api").respond_with_json({"kind": "APIVersions", "versions": ["v1"]})
    httpserver.expect_request("/apis").respond_with_json(GROUPS)
    httpserver.expect_request("/api/v1").respond_with_json(API_V1)
    httpserver.expect_request("/apis/apps/v1").respond_with_json(APPS_V1)
    return httpserver


def test_connect_get_list_and_server_side_apply(tmp_path, api, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # discovery cache of the dynamic client
    kube = client.connect(kubeconfig(tmp_path, api.url_for("").rstrip("/")), "kind-tootcheck")
    assert kube.server_version() == "v1.34.0"

    api.expect_request("/api/v1/namespaces/mastodon/configmaps/missing").respond_with_json(
        {"kind": "Status", "code": 404, "reason": "NotFound", "message": "not found"}, status=404)
    assert kube.get("v1", "ConfigMap", "missing", "mastodon") is None

    api.expect_request("/api/v1/namespaces/mastodon/configmaps").respond_with_json(
        {"kind": "ConfigMapList", "apiVersion": "v1", "items": [
            {"metadata": {"name": "mastodon-env", "namespace": "mastodon"}, "data": {"A": "1"}}]})
    listed = kube.list("v1", "ConfigMap", "mastodon")
    assert listed[0]["kind"] == "ConfigMap" and listed[0]["data"] == {"A": "1"}

    seen: list[Request] = []

    def apply_handler(request: Request) -> Response:
        seen.append(request)
        body = yaml.safe_load(request.get_data(as_text=True))
        return Response(json.dumps({**body, "metadata": {**body["metadata"], "uid": "u1"}}),
                        content_type="application/json")

    api.expect_request("/apis/apps/v1/namespaces/mastodon/deployments/mastodon",
                       method="PATCH").respond_with_handler(apply_handler)
    doc = {"apiVersion": "apps/v1", "kind": "Deployment",
           "metadata": {"name": "mastodon", "namespace": "mastodon"}, "spec": {"replicas": 1}}
    result = kube.apply(doc)
    assert result["metadata"]["uid"] == "u1"
    request = seen[0]
    assert request.headers["Content-Type"] == "application/apply-patch+yaml"
    assert request.args["fieldManager"] == "tootcheck" and request.args["force"] == "true"
    assert request.headers["Authorization"] == "Bearer not-a-real-token-123456"


def test_unknown_kind_fails_fast_when_discovery_may_not_wait(tmp_path, api, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    kube = client.connect(kubeconfig(tmp_path, api.url_for("").rstrip("/")), "kind-tootcheck")
    kube.discovery_timeout = 0
    with pytest.raises(BadInput, match=r"serves no Certificate in cert-manager\.io/v1") as info:
        kube.list("cert-manager.io/v1", "Certificate", "mastodon")
    assert isinstance(info.value, KindNotServed)  # what a wait may poll through


def test_waiting_for_an_unserved_kind_does_not_block_other_lookups(tmp_path, api, monkeypatch):
    """One phase waits (bounded) for a CRD to be served; the others' lookups of served kinds
    go on meanwhile instead of queueing behind that wait."""
    import threading

    from tootcheck.waiting import Poll, wait_until

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    for path in ("/api/v1/namespaces/warm-up", "/api/v1/namespaces/mastodon/configmaps/missing"):
        api.expect_request(path).respond_with_json(
            {"kind": "Status", "code": 404, "reason": "NotFound", "message": "not found"},
            status=404)
    kube = client.connect(kubeconfig(tmp_path, api.url_for("").rstrip("/")), "kind-tootcheck")
    assert kube.get("v1", "Namespace", "warm-up") is None  # discovery fetched, as in a bring-up
    kube.discovery_timeout = 1.5

    def groups_fetched() -> int:
        return sum(1 for request, _ in api.log if request.path == "/apis")

    before = groups_fetched()
    outcome: list[BaseException] = []
    waiting = threading.Thread(
        target=lambda: outcome.extend(_raised(lambda: kube.list("cert-manager.io/v1",
                                                                 "Certificate", "mastodon"))))
    waiting.start()
    try:
        # the waiting thread has refreshed discovery once: it is in its wait
        wait_until(lambda: Poll(groups_fetched() > before, state=f"{groups_fetched()} fetches"),
                   what="the discovery refresh", timeout=5, interval=0.01)
        assert kube.get("v1", "ConfigMap", "missing", "mastodon") is None
        assert waiting.is_alive(), "the served kind's lookup waited for the unserved one"
    finally:
        waiting.join(10)
    assert len(outcome) == 1 and isinstance(outcome[0], KindNotServed)


def _raised(call) -> list[BaseException]:
    try:
        call()
    except BaseException as exc:  # handed to the test thread
        return [exc]
    return []


def test_api_paths_of_core_and_grouped_kinds() -> None:
    assert client.api_path("v1", "persistentvolumes") == "/api/v1/persistentvolumes"
    assert client.api_path("apps/v1", "deployments", "mastodon") == \
        "/apis/apps/v1/namespaces/mastodon/deployments"
    assert client.api_path("v1", "secrets", "mastodon", "kirchner-social-tls") == \
        "/api/v1/namespaces/mastodon/secrets/kirchner-social-tls"
    assert client.api_path("v1", "namespaces", name="a/b") == "/api/v1/namespaces/a%2Fb"
