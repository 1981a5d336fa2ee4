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
