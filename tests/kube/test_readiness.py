"""Readiness judged from literal status dicts, as the API serves them."""

from __future__ import annotations

import copy

import pytest

from tootcheck.kube import readiness as r


def deployment(generation=2, observed=2, replicas=1, updated=1, total=1, available=1, conds=()):
    return {
        "kind": "Deployment",
        "metadata": {"name": "mastodon", "namespace": "mastodon", "generation": generation},
        "spec": {"replicas": replicas},
        "status": {"observedGeneration": observed, "updatedReplicas": updated, "replicas": total,
                   "availableReplicas": available, "conditions": list(conds)},
    }


class TestDeployment:
    def test_complete(self):
        assert r.deployment_readiness(deployment()).ready

    def test_generation_not_observed(self):
        verdict = r.deployment_readiness(deployment(generation=3, observed=2))
        assert not verdict.ready and "generation 3 not yet observed" in verdict.reason

    def test_missing_observed_generation(self):
        obj = deployment()
        del obj["status"]["observedGeneration"]
        assert not r.deployment_readiness(obj).ready

    def test_not_updated(self):
        verdict = r.deployment_readiness(deployment(replicas=2, updated=1, total=2, available=1))
        assert verdict.reason == "1 of 2 replicas updated"

    def test_old_replicas_pending(self):
        verdict = r.deployment_readiness(deployment(updated=1, total=2))
        assert "old replica" in verdict.reason and not verdict.ready

    def test_not_available(self):
        verdict = r.deployment_readiness(deployment(available=0))
        assert verdict.reason == "0 of 1 updated replicas available"

    def test_progress_deadline_is_failure(self):
        cond = {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded",
                'message': 'ReplicaSet "mastodon-5d8" has timed out progressing.'}
        verdict = r.deployment_readiness(deployment(available=0, conds=[cond]))
        assert verdict.failed and "deadline" in verdict.reason

    def test_no_status_at_all(self):
        obj = {"kind": "Deployment", "metadata": {"name": "x", "generation": 1}, "spec": {}}
        assert not r.deployment_readiness(obj).ready

    def test_scaled_to_zero_is_ready(self):
        obj = deployment(replicas=0, updated=0, total=0, available=0)
        assert r.deployment_readiness(obj).ready


def statefulset(**status):
    base = {"observedGeneration": 1, "readyReplicas": 1, "updatedReplicas": 1,
            "currentRevision": "web-1", "updateRevision": "web-1"}
    base.update(status)
    return {"kind": "StatefulSet", "metadata": {"name": "pg", "namespace": "authentik", "generation": 1},
            "spec": {"replicas": 1}, "status": base}


class TestStatefulSet:
    def test_ready(self):
        assert r.statefulset_readiness(statefulset()).ready

    def test_not_ready(self):
        assert r.statefulset_readiness(statefulset(readyReplicas=0)).reason == "0 of 1 replicas ready"

    def test_revision_rolling(self):
        verdict = r.statefulset_readiness(statefulset(updateRevision="web-2"))
        assert not verdict.ready and "web-2" in verdict.reason

    def test_generation(self):
        assert not r.statefulset_readiness(statefulset(observedGeneration=0)).ready

    def test_partition(self):
        obj = statefulset(updateRevision="web-2", updatedReplicas=0)
        obj["spec"] = {"replicas": 3, "updateStrategy": {"type": "RollingUpdate",
                                                          "rollingUpdate": {"partition": 3}}}
        obj["status"]["readyReplicas"] = 3
        assert r.statefulset_readiness(obj).ready


def daemonset(**status):
    base = {"observedGeneration": 4, "desiredNumberScheduled": 1, "updatedNumberScheduled": 1,
            "numberAvailable": 1}
    base.update(status)
    return {"kind": "DaemonSet", "metadata": {"name": "kindnet", "namespace": "kube-system",
                                              "generation": 4}, "spec": {}, "status": base}


class TestDaemonSet:
    def test_ready(self):
        assert r.daemonset_readiness(daemonset()).ready

    def test_not_updated(self):
        assert r.daemonset_readiness(daemonset(updatedNumberScheduled=0)).reason == "0 of 1 pods updated"

    def test_not_available(self):
        assert not r.daemonset_readiness(daemonset(numberAvailable=0)).ready

    def test_nothing_scheduled_yet(self):
        assert not r.daemonset_readiness(daemonset(desiredNumberScheduled=0)).ready

    def test_generation(self):
        assert not r.daemonset_readiness(daemonset(observedGeneration=3)).ready


def running(name, ready=True, restarts=0, started=True):
    return {"name": name, "ready": ready, "started": started, "restartCount": restarts,
            "state": {"running": {"startedAt": "2026-11-27T10:00:00Z"}}}


def completed(name, code=0):
    return {"name": name, "ready": False, "restartCount": 0,
            "state": {"terminated": {"exitCode": code, "reason": "Completed" if code == 0 else "Error"}}}


def mastodon_pod(**overrides):
    """The reference pod: sidecars postgres and redis, init db-migrate, three containers."""
    pod = {
        "kind": "Pod",
        "metadata": {"name": "mastodon-abc", "namespace": "mastodon"},
        "spec": {
            "initContainers": [{"name": "postgres", "restartPolicy": "Always"},
                               {"name": "redis", "restartPolicy": "Always"},
                               {"name": "db-migrate"}],
            "containers": [{"name": "sidekiq"}, {"name": "streaming"}, {"name": "web"}],
        },
        "status": {
            "phase": "Running",
            "conditions": [{"type": "Initialized", "status": "True"}, {"type": "Ready", "status": "True"}],
            "initContainerStatuses": [running("postgres"), running("redis"), completed("db-migrate")],
            "containerStatuses": [running("sidekiq"), running("streaming"), running("web")],
        },
    }
    pod["status"].update(overrides)
    return pod


class TestPod:
    def test_ready_with_sidecars_and_completed_init(self):
        verdict = r.pod_readiness(mastodon_pod())
        assert verdict.ready and "2 sidecars" in verdict.reason

    def test_sidecar_not_ready(self):
        pod = mastodon_pod(initContainerStatuses=[running("postgres", ready=False), running("redis"),
                                                  completed("db-migrate")])
        verdict = r.pod_readiness(pod)
        assert not verdict.ready and verdict.reason.startswith("sidecar postgres")

    def test_sidecar_not_started(self):
        pod = mastodon_pod(initContainerStatuses=[running("postgres", started=False)])
        assert "sidecar postgres" in r.pod_readiness(pod).reason

    def test_migration_running(self):
        pod = mastodon_pod(initContainerStatuses=[
            running("postgres"), running("redis"),
            {"name": "db-migrate", "restartCount": 0, "state": {"running": {}}}])
        verdict = r.pod_readiness(pod)
        assert verdict.reason == "init container db-migrate running"

    def test_migration_failed_and_crash_looping(self):
        pod = mastodon_pod(initContainerStatuses=[
            running("postgres"), running("redis"),
            {"name": "db-migrate", "restartCount": 3,
             "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 40s"}},
             "lastState": {"terminated": {"exitCode": 1, "reason": "Error"}}}])
        verdict = r.pod_readiness(pod)
        assert not verdict.ready and not verdict.failed
        assert "db-migrate: CrashLoopBackOff" in verdict.reason and "restarts=3" in verdict.reason

    def test_container_not_ready(self):
        pod = mastodon_pod(containerStatuses=[running("sidekiq"), running("streaming"),
                                              running("web", ready=False, restarts=2)])
        assert r.pod_readiness(pod).reason == "container web not ready (restarts=2)"

    def test_container_missing(self):
        pod = mastodon_pod(containerStatuses=[running("sidekiq")])
        assert "streaming not created" in r.pod_readiness(pod).reason

    def test_image_pull_backoff_is_named(self):
        pod = mastodon_pod(containerStatuses=[
            running("sidekiq"), running("streaming"),
            {"name": "web", "ready": False, "restartCount": 0,
             "state": {"waiting": {"reason": "ImagePullBackOff", "message": "pull access denied"}}}])
        verdict = r.pod_readiness(pod)
        assert "web: ImagePullBackOff (pull access denied)" in verdict.reason and not verdict.failed

    def test_invalid_image_is_fatal(self):
        pod = mastodon_pod(containerStatuses=[
            {"name": "web", "state": {"waiting": {"reason": "InvalidImageName"}}}])
        pod["spec"]["containers"] = [{"name": "web"}]
        assert r.pod_readiness(pod).failed

    def test_ready_condition_false(self):
        pod = mastodon_pod(conditions=[{"type": "Ready", "status": "False", "reason": "ContainersNotReady"}])
        verdict = r.pod_readiness(pod)
        assert not verdict.ready and "Ready=False" in verdict.reason

    def test_failed_phase(self):
        assert r.pod_readiness(mastodon_pod(phase="Failed", reason="Evicted")).failed

    def test_pending_without_statuses(self):
        pod = {"kind": "Pod", "metadata": {"name": "p"}, "spec": {"containers": [{"name": "a"}]},
               "status": {"phase": "Pending"}}
        assert not r.pod_readiness(pod).ready


class TestInitContainer:
    def test_completed(self):
        assert r.init_container_readiness(mastodon_pod(), "db-migrate").ready

    def test_exit_code_nonzero(self):
        pod = mastodon_pod(initContainerStatuses=[completed("db-migrate", code=1)])
        verdict = r.init_container_readiness(pod, "db-migrate")
        assert not verdict.ready and "exited 1" in verdict.reason

    def test_running_again_after_failure(self):
        pod = mastodon_pod(initContainerStatuses=[
            {"name": "db-migrate", "restartCount": 1, "state": {"running": {}},
             "lastState": {"terminated": {"exitCode": 1}}}])
        assert "running again after exit 1" in r.init_container_readiness(pod, "db-migrate").reason

    def test_no_status(self):
        pod = mastodon_pod(initContainerStatuses=[])
        assert not r.init_container_readiness(pod, "db-migrate").ready


class TestJob:
    def test_complete(self):
        job = {"kind": "Job", "status": {"succeeded": 1,
                                         "conditions": [{"type": "Complete", "status": "True"}]}}
        assert r.job_readiness(job).ready

    def test_failed(self):
        job = {"kind": "Job", "status": {"failed": 6, "conditions": [
            {"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded",
             "message": "Job has reached the specified backoff limit"}]}}
        verdict = r.job_readiness(job)
        assert verdict.failed and "BackoffLimitExceeded" in verdict.reason

    def test_running(self):
        assert r.job_readiness({"kind": "Job", "status": {"active": 1}}).reason.startswith("running")


class TestCrdCertificatePvcEndpoints:
    def test_crd_established(self):
        crd = {"kind": "CustomResourceDefinition", "status": {"conditions": [
            {"type": "NamesAccepted", "status": "True"}, {"type": "Established", "status": "True"}]}}
        assert r.crd_readiness(crd).ready

    def test_crd_not_established(self):
        crd = {"kind": "CustomResourceDefinition", "status": {"conditions": [
            {"type": "NamesAccepted", "status": "True"}, {"type": "Established", "status": "False"}]}}
        assert not r.crd_readiness(crd).ready

    def test_crd_names_conflict_fails(self):
        crd = {"kind": "CustomResourceDefinition", "status": {"conditions": [
            {"type": "NamesAccepted", "status": "False", "message": "plural name in use"}]}}
        assert r.crd_readiness(crd).failed

    def test_certificate_ready(self):
        cert = {"kind": "Certificate", "status": {"conditions": [
            {"type": "Ready", "status": "True", "reason": "Ready"}]}}
        assert r.ready_condition_readiness(cert).ready

    def test_certificate_issuing(self):
        cert = {"kind": "Certificate", "metadata": {"name": "kirchner-social-tls", "namespace": "mastodon"},
                "status": {"conditions": [{"type": "Ready", "status": "False", "reason": "DoesNotExist",
                                           "message": "Issuing certificate as Secret does not exist"}]}}
        verdict = r.ready_condition_readiness(cert)
        assert not verdict.ready and "DoesNotExist" in verdict.reason

    def test_certificate_without_conditions(self):
        assert r.ready_condition_readiness({"kind": "Certificate"}).reason == "no Ready condition yet"

    def test_certificate_request_denied_fails(self):
        req = {"kind": "CertificateRequest", "status": {"conditions": [
            {"type": "Ready", "status": "False", "reason": "Denied", "message": "denied by policy"}]}}
        assert r.ready_condition_readiness(req).failed

    def test_pvc(self):
        assert r.pvc_readiness({"status": {"phase": "Bound"}, "spec": {"volumeName": "pv-1"}}).ready
        assert r.pvc_readiness({"status": {"phase": "Pending"}}).reason == "phase Pending"
        assert r.pvc_readiness({"status": {"phase": "Lost"}}).failed

    def test_endpoint_slices(self):
        ready = {"kind": "EndpointSlice", "endpoints": [
            {"addresses": ["10.244.0.7"], "conditions": {"ready": True}}]}
        unready = {"kind": "EndpointSlice", "endpoints": [
            {"addresses": ["10.244.0.7"], "conditions": {"ready": False}}]}
        assert r.endpoints_readiness([ready]).ready
        assert not r.endpoints_readiness([unready]).ready
        assert r.endpoints_readiness([]).reason == "no endpoints object yet"
        assert r.endpoints_readiness([{"kind": "EndpointSlice", "endpoints": None}]).reason == (
            "no ready endpoint")

    def test_legacy_endpoints(self):
        assert r.endpoints_readiness([{"kind": "Endpoints", "subsets": [
            {"addresses": [{"ip": "10.244.0.7"}]}]}]).ready
        assert not r.endpoints_readiness([{"kind": "Endpoints", "subsets": [
            {"notReadyAddresses": [{"ip": "10.244.0.7"}]}]}]).ready


class TestFoldAndDescribe:
    def test_all_ready(self):
        verdict = r.all_ready([deployment(), daemonset()], what="workloads")
        assert verdict.ready and verdict.reason == "2 workloads ready"

    def test_empty_is_not_ready(self):
        assert not r.all_ready([], what="pods").ready

    def test_first_pending_with_count(self):
        verdict = r.all_ready([deployment(available=0), daemonset(numberAvailable=0)], what="w")
        assert verdict.reason.startswith("Deployment/mastodon/mastodon:") and "(+1 more)" in verdict.reason

    def test_failure_wins(self):
        bad = deployment(conds=[{"type": "Progressing", "reason": "ProgressDeadlineExceeded"}])
        assert r.all_ready([daemonset(numberAvailable=0), bad], what="w").failed

    def test_unknown_kind_exists_is_ready(self):
        assert r.readiness({"kind": "ConfigMap"}).ready

    def test_describe_pod_lists_containers_and_restarts(self):
        pod = mastodon_pod(containerStatuses=[
            running("sidekiq"), running("streaming"),
            {"name": "web", "ready": False, "restartCount": 4, "state": {"running": {}},
             "lastState": {"terminated": {"reason": "OOMKilled", "exitCode": 137}}}])
        text = r.describe_state(pod)
        assert "web running restarts=4 last=OOMKilled" in text
        assert "db-migrate(init) terminated Completed exit=0" in text
        assert text.startswith("Pod/mastodon/mastodon-abc: container web not ready")

    def test_describe_conditions(self):
        cert = {"kind": "Certificate", "metadata": {"name": "c", "namespace": "n"},
                "status": {"conditions": [{"type": "Ready", "status": "False", "reason": "Pending",
                                           "message": "waiting\nfor issuer"}]}}
        assert "conditions: Ready=False (Pending: waiting for issuer)" in r.describe_state(cert)

    @pytest.mark.parametrize("kind", sorted(r.JUDGES))
    def test_every_judge_survives_an_empty_object(self, kind):
        verdict = r.readiness({"kind": kind})
        assert isinstance(verdict, r.Readiness) and verdict.reason

    def test_judges_do_not_mutate(self):
        pod = mastodon_pod()
        before = copy.deepcopy(pod)
        r.describe_state(pod)
        r.pod_readiness(pod)
        assert pod == before
