"""A simulated Deployment controller doing a Recreate rollout, for the orchestration tests.

It answers the read/apply surface of ``tootcheck.kube.client.Kube`` that
``tootcheck.rehearsal.run`` uses, from several threads at once (the poller reads pods
while the main thread waits for the rollout). Applying a Deployment whose Mastodon
image changed starts a rollout whose state is a function of the time since the apply:
the old pod terminates, no pod, the new pod with its sidecars up and db-migrate
running, then everything Ready. Availability probes read the same clock.
"""

from __future__ import annotations

import copy
import threading
import time
from typing import Any

from tests.rehearsal.pods import LABELS, iso, mastodon_pod
from tootcheck.rehearsal.downtime import Observation
from tootcheck.rehearsal.plan import image_tag, mastodon_deployment
from tootcheck.rehearsal.verify import mastodon_tag

NAMESPACE = "mastodon"


class RecreateSim:
    def __init__(self, deployment: dict[str, Any], *, terminate_s: float = 0.15,
                 gone_s: float = 0.1, migrate_s: float = 0.3, fail_migration: bool = False,
                 config: dict[str, Any] | None = None) -> None:
        self.lock = threading.Lock()
        self.config = copy.deepcopy(config)  # ConfigMap mastodon-env as applied at bring-up
        self.node_images: set[str] = set()  # what the node reports in status.images
        self.deployment = copy.deepcopy(deployment)
        self.deployment["metadata"]["generation"] = 1
        self.tag = mastodon_tag(self.deployment["spec"]["template"])
        self.old_tag = self.tag
        self.applied_at: float | None = None
        self.terminate_s, self.gone_s, self.migrate_s = terminate_s, gone_s, migrate_s
        self.fail_migration = fail_migration
        self.applied: list[dict[str, Any]] = []
        self.log_reads: list[tuple[str, str, bool]] = []
        self.started = time.time() - 600

    # -- the rollout as a function of time

    def _phase(self) -> str:
        if self.applied_at is None:
            return "old"
        elapsed = time.time() - self.applied_at
        if elapsed < self.terminate_s:
            return "terminating"
        if elapsed < self.terminate_s + self.gone_s:
            return "none"
        if elapsed < self.terminate_s + self.gone_s + self.migrate_s or self.fail_migration:
            return "migrating"
        return "new"

    def _pods(self) -> list[dict[str, Any]]:
        phase = self._phase()
        if phase in ("old", "terminating"):
            pod = mastodon_pod(self.old_tag, name="mastodon-old", uid="uid-old",
                               start=self.started)
            if phase == "terminating":
                pod["metadata"]["deletionTimestamp"] = iso(self.applied_at or 0)
            return [pod]
        if phase == "none":
            return []
        assert self.applied_at is not None
        created = self.applied_at + self.terminate_s + self.gone_s
        finished = created + self.migrate_s
        if phase == "migrating":
            exit_code = 1 if self.fail_migration else 0
            migrate = (0.0, finished - created if self.fail_migration else None)
            return [mastodon_pod(self.tag, name="mastodon-new", uid="uid-new", start=created,
                                 sidecars_at=(0, 0), migrate=migrate, migrate_exit=exit_code)]
        return [mastodon_pod(self.tag, name="mastodon-new", uid="uid-new", start=created,
                             sidecars_at=(0, 0), migrate=(0, finished - created),
                             containers_at=finished - created)]

    def _deployment(self) -> dict[str, Any]:
        deployment = copy.deepcopy(self.deployment)
        ready = self._phase() in ("old", "new")
        generation = deployment["metadata"]["generation"]
        deployment["status"] = {
            "observedGeneration": generation, "replicas": 1, "updatedReplicas": 1,
            "readyReplicas": 1 if ready else 0, "availableReplicas": 1 if ready else 0}
        return deployment

    # -- the Kube surface

    def get(self, api_version: str, kind: str, name: str, namespace: str | None = None):
        with self.lock:
            if kind == "Deployment" and name == self.deployment["metadata"]["name"]:
                return self._deployment()
            if kind == "ConfigMap" and self.config and name == self.config["metadata"]["name"]:
                return copy.deepcopy(self.config)
            return None

    def list(self, api_version: str, kind: str, namespace: str | None = None, *,
             label_selector: str | None = None, field_selector: str | None = None):
        with self.lock:
            if kind == "Pod":
                return self._pods()
            if kind == "Deployment":
                return [self._deployment()]
            if kind == "Node":
                return [{"metadata": {"name": "tootcheck-control-plane"},
                         "status": {"images": [{"names": list(self.node_images)}]}}]
            return []

    def apply(self, doc: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            self.applied.append(copy.deepcopy(doc))
            if doc.get("kind") == "ConfigMap" and self.config and \
                    doc["metadata"]["name"] == self.config["metadata"]["name"]:
                self.config = copy.deepcopy(doc)
            if doc.get("kind") == "Deployment" and doc["metadata"]["name"] == \
                    self.deployment["metadata"]["name"]:
                new_tag = mastodon_tag(doc["spec"]["template"])
                if new_tag != self.tag:
                    self.old_tag, self.tag = self.tag, new_tag
                    self.applied_at = time.time()
                    generation = self.deployment["metadata"]["generation"] + 1
                    self.deployment = copy.deepcopy(doc)
                    self.deployment["metadata"]["generation"] = generation
            return copy.deepcopy(doc)

    MIGRATION_LOG = ("2026-12-04T11:00:00.000000000Z == 20260720101010 DeduplicateAccountUris: migrating\n"
                     "2026-12-04T11:00:01.000000000Z PG::UniqueViolation: ERROR:  could not create "
                     "unique index \"index_accounts_on_uri\"\n")

    def pod_log(self, namespace: str, pod: str, container: str, *, previous: bool = False,
                tail_lines: int | None = None) -> str:
        self.log_reads.append((pod, container, previous))
        if previous:
            raise RuntimeError("previous terminated container not found")
        return self.MIGRATION_LOG if self.fail_migration else ""

    # -- what /health and streaming answer

    def probe(self) -> Observation:
        with self.lock:
            up = self._phase() in ("old", "new")
        return Observation(up, "HTTP 200" if up else "HTTP 502")


def deployment_of(docs: list[dict[str, Any]]) -> dict[str, Any]:
    deployment = copy.deepcopy(dict(mastodon_deployment(docs)))
    deployment["spec"]["template"].setdefault("metadata", {})["labels"] = dict(LABELS)
    return deployment


def tag_of(deployment: dict[str, Any]) -> str:
    return image_tag(deployment["spec"]["template"]["spec"]["containers"][0]["image"])
