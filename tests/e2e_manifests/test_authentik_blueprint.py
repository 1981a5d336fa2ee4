"""The Authentik blueprint gives Mastodon exactly the OIDC client the reference configures:
redirect URI, issuer, client id and scopes match the reference ConfigMap; secrets come only
from the per-run Secret (!Env); only model names and fields confirmed in authentik's source
are used; the chart mounts it in the worker."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
import yaml

from tests.e2e_manifests.manifests import (
    MANIFESTS,
    Tag,
    TagLoader,
    configmap_value,
    find,
    load_docs,
    reference,
    rendered,
)
from tests.peers.oidc_idp import AuthentikConfig

BLUEPRINT = MANIFESTS / "infra" / "authentik" / "blueprints" / "mastodon.yaml"
BLUEPRINT_CONFIGMAP = "authentik-blueprint-mastodon"
# Keys of Secret authentik/authentik-bootstrap (docs/e2e.md); the worker reads them as env.
BOOTSTRAP_KEYS = {
    "AUTHENTIK_SECRET_KEY", "AUTHENTIK_BOOTSTRAP_PASSWORD", "AUTHENTIK_BOOTSTRAP_TOKEN",
    "AUTHENTIK_BOOTSTRAP_EMAIL", "AUTHENTIK_POSTGRESQL__PASSWORD", "MASTODON_OIDC_CLIENT_SECRET",
    "TOOTCHECK_OIDC_PASSWORD",
}
# Models and the attributes used, as found in goauthentik/authentik (docs/e2e.md "Authentik").
MODEL_FIELDS = {
    "authentik_blueprints.metaapplyblueprint": {"identifiers", "required"},
    "authentik_providers_oauth2.oauth2provider": {
        "name", "client_type", "client_id", "client_secret", "authorization_flow",
        "invalidation_flow", "redirect_uris", "issuer_mode", "sub_mode",
        "include_claims_in_id_token", "signing_key", "property_mappings", "grant_types"},
    "authentik_core.application": {"name", "slug", "provider", "meta_launch_url",
                                   "policy_engine_mode"},
    "authentik_core.user": {"username", "name", "email", "is_active", "password"},
}
ENTRY_FIELDS = {"model", "id", "state", "identifiers", "attrs", "conditions", "permissions"}


def blueprint() -> dict:
    (doc,) = load_docs(BLUEPRINT)
    return doc


def entries(model: str) -> list[dict]:
    return [e for e in blueprint()["entries"] if e["model"] == model]


def provider() -> dict:
    (entry,) = entries("authentik_providers_oauth2.oauth2provider")
    return entry


def application() -> dict:
    (entry,) = entries("authentik_core.application")
    return entry


def mastodon_env(key: str) -> str:
    return configmap_value(reference(), "mastodon-env", key)


def env_names(node: object) -> set[str]:
    if isinstance(node, Tag):
        return ({node.value} if node.tag == "!Env" else set()) | env_names(node.value)
    if isinstance(node, dict):
        return set().union(*(env_names(v) for v in node.values())) if node else set()
    if isinstance(node, list):
        return set().union(*(env_names(v) for v in node)) if node else set()
    return set()


def test_blueprint_shape():
    doc = blueprint()
    assert doc["version"] == 1 and doc["metadata"]["name"]
    for entry in doc["entries"]:
        assert set(entry) <= ENTRY_FIELDS, entry
        assert entry["model"] in MODEL_FIELDS, f"unverified model {entry['model']}"
        assert set(entry["attrs"]) <= MODEL_FIELDS[entry["model"]], entry["model"]
        assert entry.get("state", "present") in ("present", "created", "must_created", "absent")


def test_redirect_uri_is_mastodons_exactly_with_strict_matching():
    assert provider()["attrs"]["redirect_uris"] == [
        {"matching_mode": "strict", "url": mastodon_env("OIDC_REDIRECT_URI")}]


def test_issuer_is_the_one_mastodon_is_given():
    """per_provider: https://<authentik host>/application/o/<application slug>/
    (OAuth2Provider.get_issuer, authentik/providers/oauth2/models.py)."""
    assert provider()["attrs"]["issuer_mode"] == "per_provider"
    ingress = find(rendered("infra-authentik"), "Ingress", "authentik-server", "authentik")
    (rule,) = ingress["spec"]["rules"]
    assert rule["host"] in ingress["spec"]["tls"][0]["hosts"]
    issuer = f"https://{rule['host']}/application/o/{application()['identifiers']['slug']}/"
    assert issuer == mastodon_env("OIDC_ISSUER")
    assert urlsplit(mastodon_env("OIDC_ISSUER")).hostname == rule["host"]


def test_client_is_mastodons_confidential_client():
    attrs = provider()["attrs"]
    assert attrs["client_id"] == mastodon_env("OIDC_CLIENT_ID")
    assert attrs["client_type"] == "confidential"
    assert attrs["client_secret"] == Tag("!Env", "MASTODON_OIDC_CLIENT_SECRET")
    assert application()["attrs"]["provider"] == Tag("!KeyOf", provider()["id"])


def test_flows_key_and_scopes():
    attrs = provider()["attrs"]
    assert attrs["authorization_flow"] == Tag(
        "!Find", ["authentik_flows.flow", ["slug", "default-provider-authorization-implicit-consent"]])
    assert attrs["invalidation_flow"] == Tag(
        "!Find", ["authentik_flows.flow", ["slug", "default-provider-invalidation-flow"]])
    assert attrs["signing_key"] == Tag(
        "!Find", ["authentik_crypto.certificatekeypair", ["name", "authentik Self-signed Certificate"]])
    scopes = {m.value[1][1].rsplit("scope-", 1)[1] for m in attrs["property_mappings"]}
    assert set(mastodon_env("OIDC_SCOPE").split(",")) <= scopes == {"openid", "email", "profile"}


# GrantType choices of OAuth2Provider.grant_types (SAY-5/authentik, a goauthentik fork with its
# history: authentik/providers/oauth2/migrations/0032_oauth2provider_grant_types.py, b881edd9).
GRANT_TYPES = {"authorization_code", "implicit", "hybrid", "refresh_token", "client_credentials",
               "password", "urn:ietf:params:oauth:grant-type:device_code"}


def test_provider_lists_the_grants_mastodon_uses():
    """Since 2026.x a provider's grant_types defaults to [] and authorize/token refuse every
    grant not listed: the code flow Mastodon uses (response_type=code, then grant_type
    authorization_code) and refresh_token must be listed, and nothing broader."""
    grants = provider()["attrs"].get("grant_types")
    assert isinstance(grants, list) and set(grants) <= GRANT_TYPES, grants
    assert sorted(grants) == ["authorization_code", "refresh_token"]
    assert len(grants) == len(set(grants))
    # the OIDC peer's provider is configured like this blueprint
    assert AuthentikConfig().grant_types == tuple(grants)


def test_test_user_password_is_per_run():
    (user,) = entries("authentik_core.user")
    assert user["identifiers"] == {"username": "tootcheck-oidc"}
    assert user["attrs"]["password"] == Tag("!Env", "TOOTCHECK_OIDC_PASSWORD")
    assert user["attrs"]["email"] and user["attrs"]["is_active"] is True


def test_secrets_come_only_from_the_bootstrap_secret():
    assert env_names(blueprint()) == {"MASTODON_OIDC_CLIENT_SECRET", "TOOTCHECK_OIDC_PASSWORD"}
    assert env_names(blueprint()) <= BOOTSTRAP_KEYS


def test_chart_mounts_the_blueprint_in_the_worker():
    objects = rendered("infra-authentik")
    text = configmap_value(objects, BLUEPRINT_CONFIGMAP, "mastodon.yaml")
    assert text == BLUEPRINT.read_text()
    assert yaml.load(text, Loader=TagLoader) == blueprint()
    worker = find(objects, "Deployment", "authentik-worker", "authentik")
    spec = worker["spec"]["template"]["spec"]
    assert {"name": f"blueprints-cm-{BLUEPRINT_CONFIGMAP}",
            "configMap": {"name": BLUEPRINT_CONFIGMAP}} in spec["volumes"]
    mounts = spec["containers"][0]["volumeMounts"]
    assert any(m["mountPath"] == f"/blueprints/mounted/cm-{BLUEPRINT_CONFIGMAP}" for m in mounts)


@pytest.mark.parametrize("deployment", ["authentik-server", "authentik-worker"])
def test_authentik_reads_its_secrets_from_the_per_run_secret(deployment):
    objects = rendered("infra-authentik")
    assert not [o for o in objects if o["kind"] == "Secret"]
    container = find(objects, "Deployment", deployment, "authentik")["spec"]["template"]["spec"][
        "containers"][0]
    assert container["envFrom"] == [{"secretRef": {"name": "authentik-bootstrap"}}]
    literal = {e["name"] for e in container.get("env", []) if "value" in e}
    assert not literal & BOOTSTRAP_KEYS
    assert {"AUTHENTIK_POSTGRESQL__HOST", "AUTHENTIK_POSTGRESQL__NAME",
            "AUTHENTIK_POSTGRESQL__USER"} <= literal
