"""Live mode against a local fake Kubernetes API server (pytest-httpserver on 127.0.0.1)
serving the reference objects: the same rules run, status and managedFields are
stripped, and Secret values never leave the client (keys only)."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from pytest_httpserver import HTTPServer

from tests import REPO_ROOT, load_all
from tests.policy.casefiles import CASE_CONFIG
from tootcheck.cli import main
from tootcheck.policy.config import MASTODON_SECRET_KEYS
from tootcheck.policy.engine import evaluate
from tootcheck.policy.live import load_live_bundle

REFERENCE = REPO_ROOT / "manifests" / "rendered" / "mastodon.yaml"
SECRET_VALUE = "live-secret-value-that-must-never-leave-the-client"
LISTS = {
    ("v1", "ConfigMap"): "/api/v1/namespaces/mastodon/configmaps",
    ("v1", "Secret"): "/api/v1/namespaces/mastodon/secrets",
    ("v1", "Service"): "/api/v1/namespaces/mastodon/services",
    ("v1", "ServiceAccount"): "/api/v1/namespaces/mastodon/serviceaccounts",
    ("v1", "PersistentVolumeClaim"): "/api/v1/namespaces/mastodon/persistentvolumeclaims",
    ("v1", "Pod"): "/api/v1/namespaces/mastodon/pods",
    ("apps/v1", "Deployment"): "/apis/apps/v1/namespaces/mastodon/deployments",
    ("apps/v1", "StatefulSet"): "/apis/apps/v1/namespaces/mastodon/statefulsets",
    ("apps/v1", "DaemonSet"): "/apis/apps/v1/namespaces/mastodon/daemonsets",
    ("batch/v1", "Job"): "/apis/batch/v1/namespaces/mastodon/jobs",
    ("batch/v1", "CronJob"): "/apis/batch/v1/namespaces/mastodon/cronjobs",
    ("networking.k8s.io/v1", "Ingress"): "/apis/networking.k8s.io/v1/namespaces/mastodon/ingresses",
    ("networking.k8s.io/v1", "NetworkPolicy"):
        "/apis/networking.k8s.io/v1/namespaces/mastodon/networkpolicies",
    ("v1", "PersistentVolume"): "/api/v1/persistentvolumes",
    ("storage.k8s.io/v1", "StorageClass"): "/apis/storage.k8s.io/v1/storageclasses",
    ("traefik.io/v1alpha1", "Middleware"): "/apis/traefik.io/v1alpha1/namespaces/mastodon/middlewares",
    ("cert-manager.io/v1", "Certificate"):
        "/apis/cert-manager.io/v1/namespaces/mastodon/certificates",
    ("cert-manager.io/v1", "Issuer"): "/apis/cert-manager.io/v1/namespaces/mastodon/issuers",
    ("cert-manager.io/v1", "ClusterIssuer"): "/apis/cert-manager.io/v1/clusterissuers",
}
VERSION = {"major": "1", "minor": "34", "gitVersion": "v1.34.0", "gitCommit": "0",
           "gitTreeState": "clean", "buildDate": "2026-01-01T00:00:00Z", "goVersion": "go1.24",
           "compiler": "gc", "platform": "linux/amd64"}


def cluster_objects(missing_key: str | None = None) -> list[dict[str, Any]]:
    docs = [d for d in load_all(REFERENCE.read_text()) if d]
    for d in docs:
        d["metadata"]["managedFields"] = [{"manager": "kubectl", "operation": "Apply"}]
        if d["kind"] == "PersistentVolumeClaim":
            d["status"] = {"phase": "Bound"}
    secret_data = {k: base64.b64encode(SECRET_VALUE.encode()).decode()
                   for k in MASTODON_SECRET_KEYS if k != missing_key}
    docs.append({"apiVersion": "v1", "kind": "Secret", "type": "Opaque", "data": secret_data,
                 "metadata": {"name": "mastodon-secrets", "namespace": "mastodon", "annotations": {
                     "kubectl.kubernetes.io/last-applied-configuration": json.dumps(
                         {"stringData": {"SECRET_KEY_BASE": SECRET_VALUE}})}}})
    docs.append({"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
                 "metadata": {"name": "nfs-csi"}, "provisioner": "nfs.csi.k8s.io",
                 "reclaimPolicy": "Retain"})
    docs.append({"apiVersion": "cert-manager.io/v1", "kind": "ClusterIssuer",
                 "metadata": {"name": "kirchner-social-issuer"},
                 "spec": {"ca": {"secretName": "root-ca"}}})
    return docs


def serve(httpserver: HTTPServer, docs: list[dict[str, Any]]) -> None:
    httpserver.expect_request("/version/").respond_with_json(VERSION)
    ns = next(d for d in docs if d["kind"] == "Namespace")
    httpserver.expect_request("/api/v1/namespaces/mastodon").respond_with_json(ns)
    for (api_version, kind), path in LISTS.items():
        items = [d for d in docs if d["kind"] == kind]
        httpserver.expect_request(path).respond_with_json(
            {"apiVersion": api_version, "kind": f"{kind}List", "metadata": {}, "items": items})
    # the IngressRoute CRD is not installed: the API answers 404 and the kind is skipped
    httpserver.expect_request(
        "/apis/traefik.io/v1alpha1/namespaces/mastodon/ingressroutes").respond_with_json(
        {"kind": "Status", "code": 404}, status=404)


def kubeconfig(tmp_path: Path, server: str) -> Path:
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "fake",
        "clusters": [{"name": "fake", "cluster": {"server": server}}],
        "users": [{"name": "u", "user": {"token": "not-a-token"}}],
        "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "u"}}]}))
    return path


def test_live_bundle_is_clean_and_keys_only(httpserver: HTTPServer, tmp_path: Path) -> None:
    serve(httpserver, cluster_objects())
    kc = kubeconfig(tmp_path, httpserver.url_for("/").rstrip("/"))
    bundle = load_live_bundle(kc, None, "mastodon", CASE_CONFIG)
    dump = json.dumps([o.data for o in bundle])
    assert SECRET_VALUE not in dump
    assert base64.b64encode(SECRET_VALUE.encode()).decode() not in dump
    secret = bundle.find("Secret", "mastodon", "mastodon-secrets")
    assert secret is not None and set(secret.data["data"]) == set(MASTODON_SECRET_KEYS)
    assert set(secret.data["data"].values()) == {""}
    assert "managedFields" not in dump and '"status"' not in dump
    pvc = bundle.find("PersistentVolumeClaim", "mastodon", "mastodon-system")
    assert pvc is not None and pvc.live_status == {"phase": "Bound"}
    assert bundle.mode == "live" and bundle.objects[0].source == "live:fake/mastodon"
    run = evaluate([bundle], CASE_CONFIG)
    assert not run.failed(strict=False), [f.text() for f in run.findings]
    not_run = {o.rule.id for o in run.outcomes if o.not_run}
    assert not_run == {"MSTDN-SECRET-005", "MSTDN-SECRET-006", "MSTDN-UPG-002"}  # offline only


def test_live_secret_missing_a_key(httpserver: HTTPServer, tmp_path: Path,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    serve(httpserver, cluster_objects(missing_key="ACTIVE_RECORD_ENCRYPTION_PRIMARY_KEY"))
    kc = kubeconfig(tmp_path, httpserver.url_for("/").rstrip("/"))
    code = main(["policy", "--live", "--kubeconfig", str(kc), "--namespace", "mastodon",
                 "--no-waivers"])
    out = capsys.readouterr().out
    assert code == 1
    assert "MSTDN-SECRET-004" in out and "lacks key(s) ACTIVE_RECORD_ENCRYPTION_PRIMARY_KEY" in out
    assert "MSTDN-CFG-001" in out
    assert SECRET_VALUE not in out


def test_live_missing_namespace(httpserver: HTTPServer, tmp_path: Path,
                                capsys: pytest.CaptureFixture[str]) -> None:
    httpserver.expect_request("/version/").respond_with_json(VERSION)
    httpserver.expect_request("/api/v1/namespaces/nope").respond_with_json(
        {"kind": "Status", "code": 404}, status=404)
    kc = kubeconfig(tmp_path, httpserver.url_for("/").rstrip("/"))
    code = main(["policy", "--live", "--kubeconfig", str(kc), "--namespace", "nope"])
    err = capsys.readouterr().err
    assert code == 2 and err.strip() == "tootcheck: error: namespace nope not found in context fake"


def test_live_objects_are_the_servers_json(httpserver: HTTPServer, tmp_path: Path) -> None:
    """No typed model between the API's JSON and the rules: a field the client version does
    not know (an API newer than the client) reaches them as the server sent it."""
    docs = cluster_objects()
    cm = next(d for d in docs if d["kind"] == "ConfigMap")
    cm["futureField"] = {"sentBy": "a newer API server"}
    cm["metadata"]["futureMeta"] = "kept"
    serve(httpserver, docs)
    kc = kubeconfig(tmp_path, httpserver.url_for("/").rstrip("/"))
    bundle = load_live_bundle(kc, None, "mastodon", CASE_CONFIG)
    got = bundle.find("ConfigMap", "mastodon", cm["metadata"]["name"])
    assert got is not None and got.data["futureField"] == {"sentBy": "a newer API server"}
    assert got.data["metadata"]["futureMeta"] == "kept"
    assert got.data["data"] == cm["data"]


def test_live_forbidden_list_is_one_line(httpserver: HTTPServer, tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    """An account that may not list Secrets (RBAC): one line naming the kind, exit 2."""
    httpserver.expect_request(LISTS[("v1", "Secret")]).respond_with_json(
        {"kind": "Status", "code": 403, "reason": "Forbidden"}, status=403)
    serve(httpserver, cluster_objects())
    kc = kubeconfig(tmp_path, httpserver.url_for("/").rstrip("/"))
    code = main(["policy", "--live", "--kubeconfig", str(kc), "--namespace", "mastodon"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("tootcheck: error: cannot list Secret in mastodon: HTTP 403 ")
    assert len(err.strip().splitlines()) == 1
