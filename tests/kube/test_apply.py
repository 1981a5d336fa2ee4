"""Server-side apply of a render: parsing, CRDs first, refusals named."""

from __future__ import annotations

import pytest

from tests.kube.fakes import FakeKube
from tootcheck.errors import BadInput
from tootcheck.kube import apply

RENDER = """
apiVersion: v1
kind: Namespace
metadata: {name: traefik}
---
# a comment-only document
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: traefik, namespace: traefik}
---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: middlewares.traefik.io}
---
apiVersion: v1
kind: List
items:
  - {apiVersion: v1, kind: ConfigMap, metadata: {name: a, namespace: traefik}}
"""


def kinds(docs):
    return [d["kind"] for d in docs]


def test_split_flattens_lists_and_skips_empty_documents():
    assert kinds(apply.split_documents(RENDER)) == [
        "Namespace", "Deployment", "CustomResourceDefinition", "ConfigMap"]


@pytest.mark.parametrize(("text", "fragment"), [
    ("a: [b", "not valid YAML"), ("just a string\n", "document 1 is not a Kubernetes object"),
    ("kind: X\n", "document 1 is not a Kubernetes object")])
def test_malformed_render_is_one_line(text, fragment):
    with pytest.raises(BadInput) as info:
        apply.split_documents(text, "manifests/overlays/kind")
    assert fragment in str(info.value) and "\n" not in str(info.value)
    assert str(info.value).startswith("manifests/overlays/kind: ")


def test_order_is_crds_then_namespaces_then_render_order():
    assert kinds(apply.apply_order(apply.split_documents(RENDER))) == [
        "CustomResourceDefinition", "Namespace", "Deployment", "ConfigMap"]


def test_apply_waits_for_crds_before_the_rest():
    kube = FakeKube()
    events = []
    original = kube.get

    def get(api_version, kind, name, namespace=None):
        if kind == "CustomResourceDefinition":
            events.append("crd checked")
        return original(api_version, kind, name, namespace)

    kube.get = get  # type: ignore[method-assign]
    applied = apply.apply_documents(kube, apply.split_documents(RENDER),
                                    on_applied=lambda d: events.append(f"applied {d['kind']}"))
    assert applied[0] == "CustomResourceDefinition/middlewares.traefik.io"
    assert events[:3] == ["applied CustomResourceDefinition", "crd checked", "applied Namespace"]


class Refused(Exception):
    def __init__(self, body: str) -> None:
        super().__init__("(422)")
        self.body = body


def test_refused_object_is_named_with_the_api_message():
    kube = FakeKube()
    kube.fail["apply"] = Refused('{"kind":"Status","message":"Deployment.apps \\"traefik\\" is invalid: '
                                 'spec.template.spec.containers: Required value"}')
    with pytest.raises(apply.ApplyError) as info:
        apply.apply_documents(kube, apply.split_documents(RENDER)[1:2], api_errors=(Refused,))
    assert str(info.value) == ('apply Deployment/traefik/traefik refused: Deployment.apps "traefik" is '
                               'invalid: spec.template.spec.containers: Required value')


def test_crd_names_conflict_fails_fast():
    kube = FakeKube()
    original = kube.apply

    def apply_conflicting(doc):
        result = original(doc)
        key = ("CustomResourceDefinition", None, doc["metadata"]["name"])
        kube.objects[key]["status"] = {"conditions": [
            {"type": "NamesAccepted", "status": "False", "message": "plural in use"}]}
        return result

    kube.apply = apply_conflicting  # type: ignore[method-assign]
    with pytest.raises(apply.ApplyError, match="names not accepted: plural in use"):
        apply.apply_documents(kube, apply.split_documents(RENDER)[2:3])
