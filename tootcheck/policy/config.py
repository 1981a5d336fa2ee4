"""Gate configuration: the facts about the deployment that rules compare against.

Defaults describe the kirchner.social reference deployment. A YAML file
(``manifests/policy-config.yaml`` when present, or ``--config``) overrides them
key by key; an unknown key is bad input, so a typo cannot silently disable a check.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import yaml

from tootcheck.errors import BadInput
from tootcheck.settings import REPO_ROOT

DEFAULT_CONFIG_FILE = REPO_ROOT / "manifests" / "policy-config.yaml"

# Keys of the externally provided Secret `mastodon-secrets` (never rendered).
MASTODON_SECRET_KEYS = (
    "SECRET_KEY_BASE", "OTP_SECRET", "VAPID_PRIVATE_KEY", "DB_PASS", "REDIS_PASSWORD",
    "OIDC_CLIENT_SECRET", "ACTIVE_RECORD_ENCRYPTION_DETERMINISTIC_KEY",
    "ACTIVE_RECORD_ENCRYPTION_KEY_DERIVATION_SALT", "ACTIVE_RECORD_ENCRYPTION_PRIMARY_KEY",
    "SMTP_PASSWORD",
)


@dataclass(frozen=True)
class PolicyConfig:
    # the instance
    domain: str = "kirchner.social"
    namespace: str = "mastodon"  # namespace of rendered objects that carry none
    web_port: int = 3000
    streaming_port: int = 4000
    oidc_redirect_path: str = "/auth/auth/openid_connect/callback"
    oidc_host_suffix: str = ""  # empty: the domain
    mastodon_registry: str = "ghcr.io/mastodon"
    # ingress and TLS
    ingress_class: str = "traefik"
    allowed_issuers: tuple[str, ...] = ("kirchner-social-issuer",)
    entrypoint_redirect: bool = False  # Traefik redirects web->websecure at the entrypoint
    # storage
    nfs_storage_classes: tuple[str, ...] = ("nfs-csi",)
    nfs_provisioners: tuple[str, ...] = (
        "nfs.csi.k8s.io", "cluster.local/nfs-subdir-external-provisioner")
    # Secrets provided outside the manifests ("name" or "namespace/name") -> keys they hold
    external_secrets: Mapping[str, tuple[str, ...]] = field(
        default_factory=lambda: {"mastodon/mastodon-secrets": MASTODON_SECRET_KEYS})
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

    @property
    def oidc_redirect_uri(self) -> str:
        return f"https://{self.domain}{self.oidc_redirect_path}"

    @property
    def oidc_suffix(self) -> str:
        return self.oidc_host_suffix or self.domain

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


_TUPLES = {"allowed_issuers", "nfs_storage_classes", "nfs_provisioners", "overlay_sources",
           "external_configmaps"}


def config_from_mapping(raw: Mapping[str, Any], base: PolicyConfig | None = None,
                        origin: str = "policy config") -> PolicyConfig:
    base = base or PolicyConfig()
    known = {f.name for f in fields(PolicyConfig)}
    changes: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in known:
            raise BadInput(f"{origin}: unknown key {key!r} (known: {', '.join(sorted(known))})")
        if key in _TUPLES:
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise BadInput(f"{origin}: {key} must be a list of strings")
            value = tuple(value)
        elif key == "external_secrets":
            if not isinstance(value, Mapping) or not all(
                    isinstance(v, list) for v in value.values()):
                raise BadInput(f"{origin}: external_secrets must map a Secret name to its keys")
            value = {str(k): tuple(str(x) for x in v) for k, v in value.items()}
        elif key in ("web_port", "streaming_port"):
            if not isinstance(value, int) or isinstance(value, bool):
                raise BadInput(f"{origin}: {key} must be an integer")
        elif key == "entrypoint_redirect":
            if not isinstance(value, bool):
                raise BadInput(f"{origin}: {key} must be true or false")
        elif not isinstance(value, str):
            raise BadInput(f"{origin}: {key} must be a string")
        changes[key] = value
    return replace(base, **changes)


def load_config(path: Path | None = None, *, domain: str | None = None) -> PolicyConfig:
    """Defaults, then the config file (explicit path, or the repo's if present)."""
    base = PolicyConfig() if domain is None else PolicyConfig(domain=domain)
    explicit = path is not None
    path = path or DEFAULT_CONFIG_FILE
    if not path.exists():
        if explicit:
            raise BadInput(f"policy config {path} does not exist")
        return base
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except (OSError, UnicodeDecodeError, yaml.YAMLError, ValueError, TypeError) as exc:
        raise BadInput(f"policy config {path}: cannot read: {_one_line(exc)}") from None
    if not isinstance(raw, Mapping):
        raise BadInput(f"policy config {path}: expected a mapping of settings")
    return config_from_mapping(raw, base, origin=f"policy config {path}")


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())
