"""Mutation test: break the committed reference render in one of the ways operators
break deployments and assert the right rule fires on the right object.

Deterministic (derandomized) and small: each example evaluates the catalogue (minus
schema validation, which has its own cases) over the 12-object reference.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests import REPO_ROOT
from tests.policy.casefiles import CASE_CONFIG
from tootcheck.policy.bundle import Bundle, K8sObject, parse_stream
from tootcheck.policy.config import MASTODON_SECRET_KEYS
from tootcheck.policy.engine import evaluate
from tootcheck.policy.registry import all_rules

REFERENCE = REPO_ROOT / "manifests" / "rendered" / "mastodon.yaml"
RULES = [r for r in all_rules() if r.id != "MSTDN-WL-010"]
CONFIG = CASE_CONFIG
Docs = list[dict[str, Any]]


def reference_docs() -> Docs:
    if not REFERENCE.exists():
        pytest.fail(f"{REFERENCE} is missing: the mutation test needs the reference render")
    return [o.data for o in parse_stream(REFERENCE.read_text(), "mastodon.yaml")]


BASE = reference_docs() if REFERENCE.exists() else []


def fired(docs: Docs) -> set[tuple[str, str]]:
    objects = [K8sObject(data=d, source="manifests/rendered/mastodon.yaml", doc=i, line=1)
               for i, d in enumerate(docs)]
    run = evaluate([Bundle(objects)], CONFIG, rules=RULES)
    return {(f.rule.id, f.object_id) for f in run.findings if not f.suppressed}


def find(docs: Docs, kind: str, name: str | None = None) -> dict[str, Any]:
    return next(d for d in docs if d["kind"] == kind and (name is None
                                                          or d["metadata"]["name"] == name))


def pod(docs: Docs) -> dict[str, Any]:
    return find(docs, "Deployment")["spec"]["template"]["spec"]


def container(docs: Docs, name: str) -> dict[str, Any]:
    spec = pod(docs)
    return next(c for c in spec.get("initContainers", []) + spec["containers"]
                if c["name"] == name)


def serving_ingress(docs: Docs) -> dict[str, Any]:
    return next(d for d in docs if d["kind"] == "Ingress" and d["spec"].get("tls"))


DEPLOY = "Deployment/mastodon/mastodon"
INGRESS = "Ingress/mastodon/mastodon"
Mutation = Callable[[Docs, st.DataObject], tuple[str, str]]


def drop_probe(docs: Docs, data: st.DataObject) -> tuple[str, str]:
    name, probe = data.draw(st.sampled_from([("web", "readinessProbe"), ("web", "livenessProbe"),
                                             ("streaming", "readinessProbe"),
                                             ("streaming", "livenessProbe"),
                                             ("sidekiq", "livenessProbe")]), label="probe")
    del container(docs, name)[probe]
    return "MSTDN-WL-002", DEPLOY


def unpin_image(docs: Docs, data: st.DataObject) -> tuple[str, str]:
    name = data.draw(st.sampled_from(["web", "streaming", "sidekiq", "db-migrate", "postgres",
                                      "redis"]), label="container")
    c = container(docs, name)
    repo = c["image"].rsplit(":", 1)[0]
    c["image"] = data.draw(st.sampled_from([f"{repo}:latest", repo]), label="image")
    return "MSTDN-WL-005", DEPLOY


def secret_into_configmap(docs: Docs, data: st.DataObject) -> tuple[str, str]:
    key = data.draw(st.sampled_from(MASTODON_SECRET_KEYS), label="key")
    find(docs, "ConfigMap", "mastodon-env")["data"][key] = "planted-value-0123456789"
    return "MSTDN-SECRET-001", "ConfigMap/mastodon/mastodon-env"


def remove_tls(docs: Docs, data: st.DataObject) -> tuple[str, str]:
    del serving_ingress(docs)["spec"]["tls"]
    return "MSTDN-TLS-002", INGRESS


def streaming_to_3000(docs: Docs, data: st.DataObject) -> tuple[str, str]:
    how = data.draw(st.sampled_from(["backend", "targetPort"]), label="how")
    if how == "backend":
        for p in serving_ingress(docs)["spec"]["rules"][0]["http"]["paths"]:
            if p["path"] == "/api/v1/streaming":
                p["backend"]["service"] = {"name": "mastodon-web", "port": {"number": 3000}}
    else:
        find(docs, "Service", "mastodon-streaming")["spec"]["ports"][0]["targetPort"] = 3000
    return "MSTDN-ING-002", INGRESS


def non_nfs_claim(docs: Docs, data: st.DataObject) -> tuple[str, str]:
    name = data.draw(st.sampled_from(["mastodon-system", "mastodon-postgres", "mastodon-redis"]),
                     label="claim")
    spec = find(docs, "PersistentVolumeClaim", name)["spec"]
    cls = data.draw(st.sampled_from(["standard", "local-path", None]), label="class")
    if cls is None:
        del spec["storageClassName"]
    else:
        spec["storageClassName"] = cls
    return "MSTDN-PV-002", f"PersistentVolumeClaim/mastodon/{name}"


def mismatched_version(docs: Docs, data: st.DataObject) -> tuple[str, str]:
    name = data.draw(st.sampled_from(["sidekiq", "streaming", "db-migrate"]), label="container")
    c = container(docs, name)
    repo = c["image"].rsplit(":", 1)[0]
    c["image"] = f"{repo}:{data.draw(st.sampled_from(['v4.7.1', 'v4.6.9', 'v4.8.0']))}"
    return "MSTDN-UPG-001", DEPLOY


def missing_active_record_key(docs: Docs, data: st.DataObject) -> tuple[str, str]:
    """The Secret that reaches the pods (as kubectl shows it, values blanked) lacks a key."""
    ar = [k for k in MASTODON_SECRET_KEYS if k.startswith("ACTIVE_RECORD_ENCRYPTION_")]
    missing = data.draw(st.sampled_from(ar), label="key")
    docs.append({"apiVersion": "v1", "kind": "Secret",
                 "metadata": {"name": "mastodon-secrets", "namespace": "mastodon"},
                 "data": {k: "" for k in MASTODON_SECRET_KEYS if k != missing}})
    return "MSTDN-CFG-001", DEPLOY


MUTATIONS: list[Mutation] = [drop_probe, unpin_image, secret_into_configmap, remove_tls,
                             streaming_to_3000, non_nfs_claim, mismatched_version,
                             missing_active_record_key]


def test_reference_is_clean() -> None:
    found = fired(copy.deepcopy(BASE))
    errors = {x for x in found if next(r for r in RULES if r.id == x[0]).severity.value
              != "INFO"}
    assert not errors, f"the unmutated reference already fails: {sorted(errors)}"


# 16 draws: two per mutation on average; test_each_mutation_once runs each one for sure.
@settings(max_examples=16, derandomize=True, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(mutation=st.sampled_from(MUTATIONS), data=st.data())
def test_mutation_fires_the_right_rule(mutation: Mutation, data: st.DataObject) -> None:
    docs = copy.deepcopy(BASE)
    rule_id, object_id = mutation(docs, data)
    found = fired(docs)
    assert (rule_id, object_id) in found, (
        f"{mutation.__name__}: expected {rule_id} on {object_id}; fired: {sorted(found)}")


@pytest.mark.parametrize("mutation", MUTATIONS, ids=[m.__name__ for m in MUTATIONS])
def test_each_mutation_once(mutation: Mutation) -> None:
    """Every mutation runs at least once whatever hypothesis draws (first choices)."""
    docs = copy.deepcopy(BASE)
    rule_id, object_id = mutation(docs, _FirstChoice())
    assert (rule_id, object_id) in fired(docs)


class _FirstChoice:
    """A stand-in for st.data() that always draws the first sampled element."""

    def draw(self, strategy: Any, label: str | None = None) -> Any:
        return strategy.elements[0]  # every mutation draws from st.sampled_from
