"""Every image is pinned by an explicit tag (never latest), every chart by an exact version,
and both agree with tootcheck/versions.py."""

from __future__ import annotations

import re

import pytest

from tests.e2e_manifests.manifests import (
    SNAPSHOTS,
    containers,
    kustomization,
    kustomization_dirs,
    load_docs,
    references,
    rel,
    rendered,
)
from tootcheck import versions

# registry/path:tag or registry/path:tag@sha256:<64 hex>; a digest alone is not a readable pin.
PINNED = re.compile(r"^(?P<repo>[a-z0-9.\-/_:]+?):(?P<tag>[A-Za-z0-9_][A-Za-z0-9_.\-]{0,127})"
                    r"(?:@sha256:[0-9a-f]{64})?$")
IMAGE_ARG = re.compile(r"^--[a-z0-9-]*image=(?P<image>\S+)$")
EXACT_VERSION = re.compile(r"^v?\d+\.\d+\.\d+$")

CHART_PINS = {
    "traefik": versions.TRAEFIK_CHART,
    "cert-manager": versions.CERT_MANAGER_CHART,
    "authentik": versions.AUTHENTIK_CHART,
}
CERT_MANAGER_IMAGES = ("controller", "webhook", "cainjector", "acmesolver")
EXPECTED_IMAGES = {
    "infra-nfs": {f"registry.k8s.io/sig-storage/nfs-provisioner:{versions.NFS_PROVISIONER}"},
    "infra-traefik": {f"docker.io/traefik:{versions.TRAEFIK}"},
    "infra-cert-manager": {f"quay.io/jetstack/cert-manager-{c}:{versions.CERT_MANAGER_CHART}"
                           for c in CERT_MANAGER_IMAGES},
    "infra-authentik": {f"ghcr.io/goauthentik/server:{versions.AUTHENTIK}",
                        f"docker.io/library/postgres:{versions.INFRA_POSTGRES}"},
    "overlay-kind": {f"{versions.MASTODON_IMAGE}:{versions.MASTODON}",
                     f"{versions.MASTODON_STREAMING_IMAGE}:{versions.MASTODON}",
                     "docker.io/library/postgres:17.11-bookworm",
                     "docker.io/library/redis:7.4.11-alpine"},
}


def images_of(objects: list[dict]) -> set[str]:
    """Container images, plus images passed as --*-image= arguments (cert-manager's solver)."""
    found: set[str] = set()
    for obj in objects:
        for c in containers(obj):
            found.add(c["image"])
            for arg in c.get("args") or []:
                m = IMAGE_ARG.match(str(arg))
                if m:
                    found.add(m["image"])
    return found


def is_pinned(image: str) -> bool:
    m = PINNED.match(image)
    return bool(m) and m["tag"] != "latest"


def test_pin_pattern_rejects_unpinned_images():
    assert is_pinned("docker.io/traefik:v3.7.11")
    assert is_pinned("kindest/node:v1.34.0@sha256:" + "a" * 64)
    for bad in ("docker.io/traefik", "docker.io/traefik:latest", "traefik@sha256:" + "a" * 64,
                "ghcr.io/goauthentik/server:"):
        assert not is_pinned(bad), bad


@pytest.mark.parametrize("snapshot", SNAPSHOTS, ids=lambda s: s.name)
def test_render_images_are_pinned(snapshot):
    images = images_of(rendered(snapshot.name))
    unpinned = sorted(i for i in images if not is_pinned(i))
    assert not unpinned, f"{snapshot.output}: images without an explicit tag: {unpinned}"


@pytest.mark.parametrize("name", sorted(EXPECTED_IMAGES))
def test_render_images_are_the_pinned_versions(name):
    assert images_of(rendered(name)) == EXPECTED_IMAGES[name]


def _chart_entries():
    return [(d, c) for d in kustomization_dirs() for c in kustomization(d).get("helmCharts") or []]


@pytest.mark.parametrize(("directory", "chart"), _chart_entries(),
                         ids=lambda v: rel(v) if hasattr(v, "parts") else v["name"])
def test_chart_version_is_exact_and_pinned(directory, chart):
    version = str(chart.get("version", ""))
    assert EXACT_VERSION.match(version), f"{rel(directory)}: chart {chart['name']} version {version!r}"
    assert str(chart.get("repo", "")).startswith("https://"), f"{chart['name']}: repo {chart.get('repo')}"
    if chart["name"] in CHART_PINS:
        assert version == CHART_PINS[chart["name"]]
    assert chart.get("kubeVersion", versions.KUBERNETES) == versions.KUBERNETES


def test_every_infra_chart_is_pinned_in_versions():
    names = {c["name"] for d, c in _chart_entries() if "infra" in d.parts}
    assert names == set(CHART_PINS)


@pytest.mark.parametrize("snapshot", SNAPSHOTS, ids=lambda s: s.name)
def test_render_comes_from_the_pinned_chart(snapshot):
    """helm.sh/chart labels name exactly the pinned chart versions of the kustomization."""
    labels = {o["metadata"].get("labels", {}).get("helm.sh/chart") for o in rendered(snapshot.name)}
    labels.discard(None)
    expected = {f"{c['name']}-{c['version']}" for c in
                kustomization(snapshot.source_path).get("helmCharts") or []}
    if snapshot.name == "overlay-kind":
        expected = {f"app-template-{versions.APP_TEMPLATE}"}
    assert labels == expected


def _values_files():
    return [v for d in kustomization_dirs() for v in references(d).values]


def test_values_files_pin_their_images():
    values = {p.parent.name: load_docs(p)[0] for p in _values_files()}
    assert values["traefik"]["image"]["tag"] == versions.TRAEFIK
    cm = values["cert-manager"]
    assert {cm["image"]["tag"], cm["webhook"]["image"]["tag"], cm["cainjector"]["image"]["tag"],
            cm["acmesolver"]["image"]["tag"]} == {versions.CERT_MANAGER_CHART}
    assert values["authentik"]["global"]["image"]["tag"] == versions.AUTHENTIK


@pytest.mark.parametrize("path", [f for d in kustomization_dirs()
                                  for f in references(d).resources], ids=rel)
def test_plain_manifest_images_are_pinned(path):
    images = images_of(load_docs(path))
    assert all(is_pinned(i) for i in images), sorted(images)
