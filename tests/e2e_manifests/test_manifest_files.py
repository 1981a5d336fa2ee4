"""Every file under manifests/kind, manifests/infra and manifests/overlays parses, is used by a
kustomization, and every Kubernetes object in them and in their committed renders validates
strictly: built-in kinds against kubernetes-validate's strict schemas for
versions.KUBERNETES, custom resources against the project schemas in manifests/schemas/ and
against the pinned charts' own CRDs."""

from __future__ import annotations

from functools import cache

import pytest

from tests.e2e_manifests import crd_schema
from tests.e2e_manifests.manifests import (
    KIND_CONFIG,
    SNAPSHOTS,
    kustomization,
    kustomization_dirs,
    load_docs,
    references,
    rel,
    rendered,
    yaml_files,
)
from tootcheck.policy.schema import validate_object
from tootcheck.versions import KUBERNETES

FILES = yaml_files()
KUSTOMIZATIONS = kustomization_dirs()

# kustomize's Kustomization fields (sigs.k8s.io/kustomize/api/types/kustomization.go) and
# HelmChart fields (helmchartargs.go, kustomize 5.5). Anything else is a typo kustomize
# would reject, or a field it ignores.
KUSTOMIZATION_FIELDS = {
    "apiVersion", "kind", "metadata", "resources", "components", "patches", "namespace",
    "namePrefix", "nameSuffix", "labels", "commonLabels", "commonAnnotations", "images",
    "replicas", "configMapGenerator", "generatorOptions", "helmCharts", "helmGlobals",
    "replacements", "transformers", "generators", "validators", "buildMetadata",
    "sortOptions", "openapi", "crds",
}
HELM_CHART_FIELDS = {
    "name", "version", "repo", "releaseName", "namespace", "valuesFile", "valuesInline",
    "valuesMerge", "additionalValuesFiles", "includeCRDs", "skipHooks", "kubeVersion",
    "apiVersions", "nameTemplate", "skipTests", "debug",
}


def test_the_trees_hold_manifests():
    assert len(FILES) >= 15, [rel(f) for f in FILES]
    assert len(KUSTOMIZATIONS) >= 7, [rel(d) for d in KUSTOMIZATIONS]


@pytest.mark.parametrize("path", FILES, ids=rel)
def test_file_parses(path):
    docs = load_docs(path)
    assert docs, f"{rel(path)} holds no YAML document"
    assert all(isinstance(d, dict) for d in docs), f"{rel(path)}: a document is not a mapping"


def test_every_file_is_used_by_a_kustomization():
    used = {KIND_CONFIG.resolve()}
    for directory in KUSTOMIZATIONS:
        used.add((directory / "kustomization.yaml").resolve())
        refs = references(directory)
        used.update(refs.resources + refs.patches + refs.values + refs.generated)
    orphans = [rel(f) for f in FILES if f.resolve() not in used]
    assert not orphans, f"files no kustomization applies (so nothing validates them): {orphans}"


@pytest.mark.parametrize("directory", KUSTOMIZATIONS, ids=rel)
def test_kustomization_is_strict(directory):
    data = kustomization(directory)
    unknown = set(data) - KUSTOMIZATION_FIELDS
    assert not unknown, f"{rel(directory)}/kustomization.yaml: unknown field(s) {sorted(unknown)}"
    assert "secretGenerator" not in data
    for chart in data.get("helmCharts") or []:
        extra = set(chart) - HELM_CHART_FIELDS
        assert not extra, f"{rel(directory)}: helmCharts {chart.get('name')}: unknown {sorted(extra)}"
    refs = references(directory)
    missing = [rel(p) for p in refs.resources + refs.patches + refs.values + refs.generated
               if not p.is_file()] + [rel(p) for p in refs.bases
                                      if not (p / "kustomization.yaml").is_file()]
    assert not missing, f"{rel(directory)} references missing files: {missing}"


def _resource_files():
    return sorted({f for d in KUSTOMIZATIONS for f in references(d).resources}, key=str)


@pytest.mark.parametrize("path", _resource_files(), ids=rel)
def test_resource_file_is_schema_valid(path):
    for doc in load_docs(path):
        problems = validate_object(doc, KUBERNETES)
        assert not problems, (f"{rel(path)} {doc.get('kind')}/{doc['metadata'].get('name')}: "
                              + "; ".join(f"{'.'.join(map(str, p.path))}: {p.message}"
                                          for p in problems))


@pytest.mark.parametrize("snapshot", SNAPSHOTS, ids=lambda s: s.name)
def test_render_is_schema_valid(snapshot):
    objects = rendered(snapshot.name)
    assert objects, f"{snapshot.output} is empty"
    bad = []
    for obj in objects:
        for p in validate_object(obj, KUBERNETES):
            bad.append(f"{obj['kind']}/{obj['metadata'].get('name')} "
                       f"{'.'.join(map(str, p.path))}: {p.message}")
    assert not bad, f"{snapshot.output}: " + " | ".join(bad[:10])


@cache
def _pinned_crds() -> list[dict]:
    return [o for name in ("infra-cert-manager", "infra-traefik") for o in rendered(name)
            if o["kind"] == "CustomResourceDefinition"]


@pytest.mark.parametrize("snapshot", SNAPSHOTS, ids=lambda s: s.name)
def test_custom_resources_match_the_pinned_crds(snapshot):
    """What the pinned cert-manager and Traefik charts' API servers would accept, strictly."""
    crds = _pinned_crds()
    groups = {c["spec"]["group"] for c in crds}
    checked = 0
    for obj in rendered(snapshot.name):
        if obj["apiVersion"].partition("/")[0] in groups:
            problems = crd_schema.problems(obj, crds)
            assert not problems, f"{obj['kind']}/{obj['metadata']['name']}: {problems}"
            checked += 1
    if snapshot.name in ("infra-issuers", "overlay-kind"):
        assert checked, f"{snapshot.output}: no custom resource was checked"
    if not checked:
        pytest.skip(f"{snapshot.output} has no cert-manager or Traefik custom resources")


def test_strict_crd_schema_rejects_an_unknown_field():
    """The CRD check is not vacuous: a misspelt field fails it."""
    issuer = next(o for o in rendered("infra-issuers") if o["kind"] == "ClusterIssuer")
    bad = {**issuer, "spec": {**issuer["spec"], "selfSigend": {}}}
    assert crd_schema.problems(bad, _pinned_crds())
