"""Render-vs-live drift: only fields the render sets count; cluster-owned fields are ignored."""

from __future__ import annotations

import copy

import pytest

from tootcheck.checks.drift import check_render_vs_live
from tootcheck.drift import IGNORED, compare, diff_objects, is_ignored, render_at
from tootcheck.errors import BadInput
from tootcheck.model import ObjectRef
from tootcheck.testing import expect_fault, expect_ok

REF = ObjectRef("Deployment", "mastodon", "mastodon")


def rendered() -> list[dict]:
    return render_at("HEAD")


def as_live(obj: dict) -> dict:
    """What the API server returns for an applied object: defaults and bookkeeping added."""
    live = copy.deepcopy(obj)
    live.setdefault("metadata", {}).update(
        uid="1234", resourceVersion="99", generation=3, creationTimestamp="2026-11-27T00:00:00Z",
        managedFields=[{"manager": "tootcheck"}])
    live["metadata"].setdefault("annotations", {})["deployment.kubernetes.io/revision"] = "4"
    live["status"] = {"readyReplicas": 1}
    if obj["kind"] == "Deployment":
        pod = live["spec"]["template"]["spec"]
        pod["schedulerName"] = "default-scheduler"
        for container in pod["containers"]:
            container["terminationMessagePath"] = "/dev/termination-log"
        pod["containers"].reverse()  # order is not significant for named lists
    if obj["kind"] == "Service":
        live["spec"]["clusterIP"] = "10.96.0.12"
        for port in live["spec"]["ports"]:
            port["targetPort"] = int(port["targetPort"])
    return live


def cluster_of(objects: list[dict]) -> dict:
    return {(o["kind"], o["metadata"]["name"]): as_live(o) for o in objects}


def fetcher(cluster: dict):
    return lambda obj: cluster.get((obj["kind"], obj["metadata"]["name"]))


def test_identical_apply_has_no_drift():
    objects = rendered()
    assert diff_objects(objects, fetcher(cluster_of(objects))) == []


def test_changed_image_is_drift_with_path():
    objects = rendered()
    cluster = cluster_of(objects)
    web = next(c for c in cluster[("Deployment", "mastodon")]["spec"]["template"]["spec"]["containers"]
               if c["name"] == "web")
    web["image"] = "ghcr.io/mastodon/mastodon:v4.7.1"
    drifts = diff_objects(objects, fetcher(cluster))
    assert [d.path for d in drifts] == ["spec.template.spec.containers[web].image"]
    assert "v4.7.1" in str(drifts[0]) and "v4.7.2" in str(drifts[0])


def test_removed_env_and_missing_object_are_drift():
    objects = rendered()
    cluster = cluster_of(objects)
    del cluster[("ConfigMap", "mastodon-env")]["data"]["OIDC_ISSUER"]
    del cluster[("Ingress", "mastodon-redirect")]
    kinds = {(d.kind, d.path) for d in diff_objects(objects, fetcher(cluster))}
    assert ("missing-field", "data.OIDC_ISSUER") in kinds
    assert ("missing-object", "") in kinds


def test_documented_cluster_fields_are_ignored():
    assert is_ignored("metadata.managedFields")
    assert is_ignored("status.conditions")
    assert not is_ignored("spec.template.spec.containers")
    assert all(reason for reason in IGNORED.values())
    desired = {"metadata": {"uid": "a"}, "spec": {"clusterIP": "None"}}
    assert compare(desired, {"metadata": {"uid": "b"}, "spec": {"clusterIP": "10.0.0.1"}}, REF) == []


def test_render_at_unknown_revision_is_bad_input():
    with pytest.raises(BadInput, match="no render") as excinfo:
        render_at("no-such-revision-xyz")
    assert "\n" not in str(excinfo.value)


def test_check_passes_on_matching_cluster():
    objects = rendered()
    expect_ok(check_render_vs_live(objects, fetcher(cluster_of(objects)), target="stub://cluster"))


def test_check_reports_field_drift():
    objects = rendered()
    cluster = cluster_of(objects)
    cluster[("ConfigMap", "mastodon-env")]["data"]["LOCAL_DOMAIN"] = "example.org"
    result = check_render_vs_live(objects, fetcher(cluster), target="stub://cluster")
    expect_fault(result, "field-drift", mentions="data.LOCAL_DOMAIN")


def test_check_reports_missing_object():
    objects = rendered()
    cluster = cluster_of(objects)
    del cluster[("NetworkPolicy", "mastodon")]
    result = check_render_vs_live(objects, fetcher(cluster), target="stub://cluster")
    expect_fault(result, "object-missing", mentions="NetworkPolicy/mastodon/mastodon")
