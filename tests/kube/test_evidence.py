"""Evidence collectors against a fake API object: what a bundle holds, censored."""

from __future__ import annotations

import base64

from tests.kube.fakes import FakeKube
from tootcheck.kube import evidence
from tootcheck.redaction import MASK, Secret

DB_PASS = "s3cr3t-db-password-value"
REGISTERED = Secret("registered-token-abcdef", "token")


def cluster() -> FakeKube:
    kube = FakeKube([
        {"kind": "Namespace", "metadata": {"name": "mastodon"}},
        {"kind": "Pod", "apiVersion": "v1", "metadata": {"name": "mastodon-abc", "namespace": "mastodon"},
         "spec": {"initContainers": [{"name": "postgres", "restartPolicy": "Always"}, {"name": "db-migrate"}],
                  "containers": [{"name": "web"}]},
         "status": {"phase": "Running",
                    "initContainerStatuses": [
                        {"name": "postgres", "ready": True, "started": True, "restartCount": 0,
                         "state": {"running": {}}},
                        {"name": "db-migrate", "restartCount": 2,
                         "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                         "lastState": {"terminated": {"exitCode": 1}}}],
                    "containerStatuses": [{"name": "web", "ready": False, "restartCount": 0,
                                           "state": {"waiting": {"reason": "PodInitializing"}}}]}},
        {"kind": "Pod", "apiVersion": "v1", "metadata": {"name": "traefik-1", "namespace": "traefik"},
         "spec": {"containers": [{"name": "traefik"}]},
         "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}],
                    "containerStatuses": [{"name": "traefik", "ready": True, "restartCount": 0,
                                           "state": {"running": {}}}]}},
        {"kind": "Deployment", "apiVersion": "apps/v1",
         "metadata": {"name": "mastodon", "namespace": "mastodon", "generation": 1},
         "spec": {"replicas": 1, "template": {"spec": {"containers": [{"env": [{"value": "x"}]}]}}},
         "status": {"observedGeneration": 1, "replicas": 1, "updatedReplicas": 1, "availableReplicas": 0}},
        {"kind": "PersistentVolumeClaim", "apiVersion": "v1",
         "metadata": {"name": "mastodon-system", "namespace": "mastodon"}, "status": {"phase": "Bound"}},
        {"kind": "Certificate", "apiVersion": "cert-manager.io/v1",
         "metadata": {"name": "kirchner-social-tls", "namespace": "mastodon"},
         "spec": {"dnsNames": ["kirchner.social"]},
         "status": {"conditions": [{"type": "Ready", "status": "False", "reason": "Issuing"}]}},
        {"kind": "ClusterIssuer", "apiVersion": "cert-manager.io/v1",
         "metadata": {"name": "kirchner-social-issuer"},
         "status": {"conditions": [{"type": "Ready", "status": "True"}]}},
        {"kind": "Secret", "apiVersion": "v1",
         "metadata": {"name": "mastodon-secrets", "namespace": "mastodon"},
         "type": "Opaque", "data": {"DB_PASS": base64.b64encode(DB_PASS.encode()).decode()}},
        {"kind": "Event", "apiVersion": "v1", "metadata": {"name": "e2", "namespace": "mastodon"},
         "involvedObject": {"kind": "Pod", "name": "mastodon-abc"}, "reason": "BackOff",
         "lastTimestamp": "2026-11-27T10:00:05Z", "message": "Back-off restarting failed container"},
        {"kind": "Event", "apiVersion": "v1", "metadata": {"name": "e1", "namespace": "mastodon"},
         "involvedObject": {"kind": "Pod", "name": "mastodon-abc"}, "reason": "Scheduled",
         "lastTimestamp": "2026-11-27T10:00:00Z", "message": "Successfully assigned"},
    ])
    kube.logs[("mastodon", "mastodon-abc", "postgres", False)] = "LOG: ready to accept connections\n"
    kube.logs[("mastodon", "mastodon-abc", "db-migrate", False)] = (
        f"connecting with password {DB_PASS}\n")
    kube.logs[("mastodon", "mastodon-abc", "db-migrate", True)] = (
        f"PG::ConnectionBad password={REGISTERED.reveal()}\n")
    kube.logs[("traefik", "traefik-1", "traefik", False)] = "level=info msg=started\n"
    return kube


def test_safe_name():
    assert evidence.safe_name("suites/https/test_https.py::test_cert[kind://tootcheck]") == (
        "suites.https.test_https.py__test_cert_kind_tootcheck")


def test_collect_holds_every_part(tmp_path):
    render = tmp_path / "mastodon.yaml"
    render.write_text("kind: Deployment\n")
    source = evidence.Source(cluster(), renders={"mastodon": render})
    collected, values = evidence.collect(source)
    files = collected.files
    assert files["pods/mastodon/mastodon-abc/postgres.log"].startswith("LOG: ready")
    assert "pods/mastodon/mastodon-abc/db-migrate.previous.log" in files  # restarted: previous log
    assert "pods/mastodon/mastodon-abc/postgres.previous.log" not in files
    assert files["logs/traefik.log"].count("level=info") == 1
    events = files["events.txt"].splitlines()
    assert "Scheduled" in events[0] and "BackOff" in events[1]  # sorted by time
    assert "not-ready/Deployment_mastodon_mastodon.yaml" in files
    assert "not-ready/Pod_mastodon_mastodon-abc.yaml" in files
    assert "not-ready/Certificate_mastodon_kirchner-social-tls.yaml" in files
    assert not any("mastodon-system" in f or "traefik-1" in f for f in files if f.startswith("not-ready/"))
    pod_doc = files["not-ready/Pod_mastodon_mastodon-abc.yaml"]
    assert "CrashLoopBackOff" in pod_doc and "Back-off restarting" in pod_doc
    assert "pod template omitted" in files["not-ready/Deployment_mastodon_mastodon.yaml"]
    assert "kirchner-social-issuer" in files["cert-manager.yaml"]
    assert files["render/mastodon.yaml"] == "kind: Deployment\n"
    assert DB_PASS in values
    assert files["pods/mastodon/mastodon-abc/web.log"] == "(container never started: PodInitializing)\n"
    assert collected.errors == []


def test_bundle_is_censored_everywhere(tmp_path):
    snapshot = evidence.take_snapshot(evidence.Source(cluster(), namespaces=["mastodon", "traefik"]))
    dest = tmp_path / "bundle"
    written = evidence.write_bundle(dest, f"AssertionError: token {REGISTERED.reveal()} rejected\n",
                                    snapshot)
    assert "failure.txt" in written and "secrets.yaml" in written
    for path in dest.rglob("*"):
        if path.is_file():
            text = path.read_text()
            assert DB_PASS not in text, path
            assert REGISTERED.reveal() not in text, path
            assert base64.b64encode(DB_PASS.encode()).decode() not in text, path
    assert f"DB_PASS: '{MASK}'" in (dest / "secrets.yaml").read_text()
    assert MASK in (dest / "pods/mastodon/mastodon-abc/db-migrate.log").read_text()
    assert (dest / "failure.txt").read_text() == f"AssertionError: token {MASK} rejected\n"
    assert "events.txt" in (dest / "index.txt").read_text()


def test_collector_errors_are_recorded_not_raised(tmp_path):
    kube = cluster()
    kube.fail["list:Event"] = RuntimeError("events API timed out")
    kube.fail["list:Certificate"] = LookupError("cert-manager not installed")
    del kube.logs[("mastodon", "mastodon-abc", "postgres", False)]
    snapshot = evidence.take_snapshot(evidence.Source(kube, namespaces=["mastodon"]))
    dest = tmp_path / "bundle"
    written = evidence.write_bundle(dest, "the original failure\n", snapshot)
    errors = (dest / "collector-errors.txt").read_text()
    assert "events in mastodon: RuntimeError: events API timed out" in errors
    assert "cert-manager not installed" in errors
    assert (dest / "failure.txt").read_text() == "the original failure\n"
    assert "log mastodon/mastodon-abc/postgres: LookupError" in errors
    assert "pods/mastodon/mastodon-abc/db-migrate.log" in written  # the rest still collected


def test_unreachable_cluster_still_gets_a_bundle(tmp_path):
    kube = cluster()
    kube.fail["namespaces"] = ConnectionError("connection refused")
    kube.fail["list"] = ConnectionError("connection refused")
    dest = tmp_path / "b"
    evidence.write_bundle(dest, "failure\n", evidence.take_snapshot(evidence.Source(kube)))
    assert (dest / "failure.txt").exists()
    assert "namespaces: ConnectionError" in (dest / "collector-errors.txt").read_text()


def test_no_source_writes_the_failure_and_says_why(tmp_path):
    dest = tmp_path / "b"
    assert evidence.write_bundle(dest, "f\n", None, note="no kubeconfig") == ["failure.txt", "index.txt"]
    assert (dest / "index.txt").read_text() == "no cluster access in this run: no kubeconfig\n"
