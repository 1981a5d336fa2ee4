"""Deleting a pod and waiting for its replacement; picking a Ready pod for exec."""

from __future__ import annotations

import pytest

from tests.kube.fakes import Clock, FakeKube
from tootcheck.errors import BadInput
from tootcheck.kube import pods
from tootcheck.kube.waits import NotReady

SELECTOR = "app.kubernetes.io/name=mastodon,app.kubernetes.io/controller=mastodon"
LABELS = {"app.kubernetes.io/name": "mastodon", "app.kubernetes.io/controller": "mastodon"}


def pod(name: str, uid: str, ready: bool = True, terminating: bool = False) -> dict:
    meta = {"name": name, "namespace": "mastodon", "uid": uid, "labels": dict(LABELS)}
    if terminating:
        meta["deletionTimestamp"] = "2026-11-27T10:00:00Z"
    return {"kind": "Pod", "apiVersion": "v1", "metadata": meta,
            "spec": {"containers": [{"name": "web"}]},
            "status": {"phase": "Running",
                       "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
                       "containerStatuses": [{"name": "web", "ready": ready, "restartCount": 0,
                                              "state": {"running": {}}}]}}


def test_restart_waits_for_a_ready_replacement_with_a_new_uid():
    kube = FakeKube([pod("mastodon-old", "uid-1")])
    polls = []

    def controller(k: FakeKube) -> None:
        """Acts like the Deployment controller: a new pod after the delete, ready later."""
        if not k.deleted:
            return
        polls.append(1)
        k.put(pod("mastodon-new", "uid-2", ready=len(polls) > 3))

    kube.on_poll.append(controller)
    clock = Clock()
    names = pods.restart_pods(kube, "mastodon", SELECTOR, timeout=120, clock=clock.time,
                              sleep=clock.sleep)
    assert names == ["mastodon-new"]
    assert kube.deleted == [("Pod", "mastodon", "mastodon-old")]


def test_restart_times_out_naming_the_replacement_state():
    kube = FakeKube([pod("mastodon-old", "uid-1")])
    kube.on_poll.append(lambda k: k.put(pod("mastodon-new", "uid-2", ready=False)) if k.deleted else None)
    clock = Clock()
    with pytest.raises(NotReady) as info:
        pods.restart_pods(kube, "mastodon", SELECTOR, timeout=30, clock=clock.time, sleep=clock.sleep)
    assert "mastodon-new: container web not ready" in str(info.value)


def test_restart_without_matching_pods_is_one_line():
    with pytest.raises(BadInput, match="no pod matches app=none in namespace mastodon"):
        pods.restart_pods(FakeKube(), "mastodon", "app=none", timeout=5)


def test_replacement_readiness():
    old = {"uid-1"}
    assert "old pod(s) still present" in pods.replacement_readiness(
        [pod("a", "uid-1", terminating=True)], old, 1).reason
    assert pods.replacement_readiness([], old, 1).reason == "0 of 1 replacement pod(s) exist"
    assert pods.replacement_readiness([pod("b", "uid-2")], old, 1).ready


def test_pick_ready_skips_terminating_and_unready_pods():
    chosen = pods.pick_ready([pod("c", "3", ready=False), pod("b", "2", terminating=True), pod("a", "1")])
    assert chosen["metadata"]["name"] == "a"
    assert pods.pick_ready([pod("x", "1", ready=False)]) is None


def test_ready_pod_names_the_selector_when_none_is_ready():
    kube = FakeKube([pod("x", "1", ready=False)])
    with pytest.raises(BadInput, match=f"no Ready pod matches {SELECTOR}"):
        pods.ready_pod(kube, "mastodon", SELECTOR)
