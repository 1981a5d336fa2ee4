"""Every pinned version in one place. Manifests and bootstrap scripts must agree
with these (tests check it), so an upgrade is one reviewed edit here plus the
files the tests point at."""

from __future__ import annotations

# The system under test. v4.7.2 is the newest release confirmed upstream here
# (mastodon/mastodon#40521 "Bump version to v4.7.2", mastodon/chart#248).
MASTODON = "v4.7.2"
MASTODON_IMAGE = "ghcr.io/mastodon/mastodon"
MASTODON_STREAMING_IMAGE = "ghcr.io/mastodon/mastodon-streaming"

# bjw-s app-template: the newest release whose chart source is available to render
# and verify offline here (tag app-template-4.1.1, common 4.1.1).
APP_TEMPLATE = "4.1.1"

# Kubernetes version the manifests are validated against (strict schemas).
KUBERNETES = "1.34.0"

# Tools of the kind bring-up; `make tools` (scripts/bootstrap-tools) fetches these
# official releases into .tools/bin unless a compatible one is already on PATH.
# helm stays on v3: kustomize 5.5/5.6 (kubectl 1.32/1.33) reject helm v4 in
# --enable-helm. kind v0.30.0's default node image is Kubernetes v1.34.0.
KIND = "v0.30.0"
KUBECTL = "v1.34.1"
HELM = "v3.19.0"
# sha256 of the official artifacts (kind binary, kubectl binary, helm .tar.gz), as
# published next to them (kind-<os>-<arch>.sha256sum, kubectl.sha256,
# helm-<v>-<os>-<arch>.tar.gz.sha256sum). Taken from cert-manager's
# makefile-modules tools.mk; the linux/amd64 values also agree with several other
# repositories' pinned install scripts (the other platforms were not cross-checked).
# The bootstrap also fetches the official checksum file and refuses a download that
# disagrees with either.
TOOL_SHA256 = {
    ("kind", "linux", "amd64"): "517ab7fc89ddeed5fa65abf71530d90648d9638ef0c4cde22c2c11f8097b8889",
    ("kind", "linux", "arm64"): "7ea2de9d2d190022ed4a8a4e3ac0636c8a455e460b9a13ccf19f15d07f4f00eb",
    ("kind", "darwin", "amd64"): "4f0b6e3b88bdc66d922c08469f05ef507d4903dd236e6319199bb9c868eed274",
    ("kind", "darwin", "arm64"): "ceaf40df1d1551c481fb50e3deb5c3deecad5fd599df5469626b70ddf52a1518",
    ("kubectl", "linux", "amd64"): "7721f265e18709862655affba5343e85e1980639395d5754473dafaadcaa69e3",
    ("kubectl", "linux", "arm64"): "420e6110e3ba7ee5a3927b5af868d18df17aae36b720529ffa4e9e945aa95450",
    ("kubectl", "darwin", "amd64"): "bb211f2b31f2b3bc60562b44cc1e3b712a16a98e9072968ba255beb04cefcfdf",
    ("kubectl", "darwin", "arm64"): "d80e5fa36f2b14005e5bb35d3a72818acb1aea9a081af05340a000e5fbdb2f76",
    ("helm", "linux", "amd64"): "a7f81ce08007091b86d8bd696eb4d86b8d0f2e1b9f6c714be62f82f96a594496",
    ("helm", "linux", "arm64"): "440cf7add0aee27ebc93fada965523c1dc2e0ab340d4348da2215737fc0d76ad",
    ("helm", "darwin", "amd64"): "09a108c0abda42e45af172be65c49125354bf7cd178dbe10435e94540e49c7b9",
    ("helm", "darwin", "arm64"): "31513e1193da4eb4ae042eb5f98ef9aca7890cfa136f4707c8d4f70e2115bef6",
}

# Infrastructure of the kind deployment (manifests/kind, manifests/infra; docs/e2e.md "Pins").
# tests/e2e_manifests check that the manifests, values files and renders agree with these.
# kind v0.30.0's own default node image (kubernetes-sigs/kind pkg/apis/config/defaults/image.go).
KIND_NODE_IMAGE = ("kindest/node:v1.34.0"
                   "@sha256:7416a61b42b1662ca6ca89f02028ac133a309a2a30ba309614e8ec94d976dc5a")
TRAEFIK_CHART = "41.3.0"  # traefik/traefik-helm-chart tag v41.3.0
TRAEFIK = "v3.7.11"  # that chart's appVersion
CERT_MANAGER_CHART = "v1.21.1"  # cert-manager/cert-manager tag v1.21.1 (chart and images)
AUTHENTIK_CHART = "2026.8.0"  # goauthentik/helm tag authentik-2026.8.0
AUTHENTIK = "2026.8.0"  # ghcr.io/goauthentik/server, the chart's appVersion
NFS_PROVISIONER = "v4.0.8"  # registry.k8s.io/sig-storage/nfs-provisioner (NFS-Ganesha V4.0.8)
INFRA_POSTGRES = "17.11-bookworm"  # docker.io/library/postgres for Authentik's database

# In-cluster peers of the kind environment (manifests/infra/mailpit, .../fediverse-peer).
# Mailpit v1.30.5 is the release whose source (axllent/mailpit, API v1, MP_* settings)
# was read for this suite; v1.31.1 exists upstream (microsoft/winget-pkgs#430419).
MAILPIT_IMAGE = "docker.io/axllent/mailpit:v1.30.5"
# The fediverse peer runs from a stock image with its code mounted from a ConfigMap.
PEER_PYTHON_IMAGE = "docker.io/library/python:3.13.16-slim-trixie"
