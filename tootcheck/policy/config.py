"""Gate configuration: the facts about the deployment that rules compare against.

Defaults are neutral: no domain (each Mastodon's LOCAL_DOMAIN is its domain), any
cert-manager issuer, no external Secrets declared (an unrendered Secret is assumed to
provide the keys it is read for, and reported so), the baseline profile.
kirchner.social's facts live in this repository's config file. The config file
(``tootcheck.toml`` or ``[tool.tootcheck]`` found upward from the working directory, or
``--config``) overrides them key by key; an unknown key is bad input, so a typo cannot
silently disable a check. Finding and validating the file: :mod:`tootcheck.config_file`,
:mod:`tootcheck.policy.config_loader`.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping
from dataclasses import dataclass, field

# Rule profiles, smallest first: baseline holds what breaks Mastodon, loses data, leaks
# secrets or misroutes traffic; hardened adds the hardening preferences.
PROFILES = ("baseline", "hardened")

# Keys of the externally provided Secret `mastodon-secrets` (never rendered).
MASTODON_SECRET_KEYS = (
    "SECRET_KEY_BASE", "OTP_SECRET", "VAPID_PRIVATE_KEY", "DB_PASS", "REDIS_PASSWORD",
    "OIDC_CLIENT_SECRET", "ACTIVE_RECORD_ENCRYPTION_DETERMINISTIC_KEY",
    "ACTIVE_RECORD_ENCRYPTION_KEY_DERIVATION_SALT", "ACTIVE_RECORD_ENCRYPTION_PRIMARY_KEY",
    "SMTP_PASSWORD",
)


@dataclass(frozen=True)
class PolicyConfig:
    # which rules run: baseline (breaks Mastodon, loses data, leaks secrets, misroutes
    # traffic) or hardened (adds the hardening preferences)
    profile: str = "baseline"
    # the instance; empty: LOCAL_DOMAIN of the manifests
    domain: str = ""
    namespace: str = "mastodon"  # namespace of rendered objects that carry none
    web_port: int = 3000
    streaming_port: int = 4000
    oidc_redirect_path: str = "/auth/auth/openid_connect/callback"
    oidc_host_suffix: str = ""  # empty: the domain
    mastodon_registry: str = "ghcr.io/mastodon"
    # ingress and TLS
    ingress_class: str = "traefik"
    allowed_issuers: tuple[str, ...] = ()  # empty: any cert-manager issuer
    entrypoint_redirect: bool = False  # Traefik redirects web->websecure at the entrypoint
    # storage
    nfs_storage_classes: tuple[str, ...] = ("nfs-csi",)
    nfs_provisioners: tuple[str, ...] = (
        "nfs.csi.k8s.io", "cluster.local/nfs-subdir-external-provisioner")
    # Secrets provided outside the manifests ("name" or "namespace/name") -> keys they hold
    external_secrets: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    # ConfigMaps provided outside the manifests ("name" or "namespace/name")
    external_configmaps: tuple[str, ...] = ()
    # Sources (repo-relative globs) that are overlays of the reference, e.g. the kind overlay.
    overlay_sources: tuple[str, ...] = (
        "manifests/overlays/*", "manifests/kind/*", "manifests/rendered/*kind*.yaml",
        "manifests/rendered/overlay*.yaml",
    )

    @property
    def web_host(self) -> str:
        return self.domain

    def oidc_redirect_uri(self, domain: str) -> str:
        """Mastodon's callback on ``domain`` (the configured one wins)."""
        return f"https://{self.domain or domain}{self.oidc_redirect_path}"

    def oidc_suffix(self, domain: str) -> str:
        return self.oidc_host_suffix or self.domain or domain

    def external_secret_keys(self, namespace: str | None, name: str) -> tuple[str, ...] | None:
        """The declared keys of an external Secret, None when it is not allow-listed."""
        for key in (f"{namespace}/{name}", name):
            if key in self.external_secrets:
                return self.external_secrets[key]
        return None

    def is_external_configmap(self, namespace: str | None, name: str) -> bool:
        return f"{namespace}/{name}" in self.external_configmaps or \
            name in self.external_configmaps

    def is_overlay_source(self, source: str) -> bool:
        return any(fnmatch.fnmatch(source, pattern) for pattern in self.overlay_sources)
