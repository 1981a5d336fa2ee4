"""The kind overlay applies the reference deployment unchanged except for what kind needs:
the test CA for web, sidekiq and db-migrate, and the mail/federation settings of
patches/mail-federation-env.yaml. Nothing in it carries a secret value."""

from __future__ import annotations

import copy

import pytest

from tests.e2e_manifests.manifests import (
    MAIL_FEDERATION_PATCH,
    MANIFESTS,
    find,
    kustomization,
    load_docs,
    object_key,
    reference,
    rendered,
    yaml_files,
)
from tootcheck.secretgen import MASTODON_SECRET_KEYS

OVERLAY = MANIFESTS / "overlays" / "kind"
CA_MOUNT = "/etc/tootcheck-ca"
CA_ENV = {"name": "SSL_CERT_FILE", "value": f"{CA_MOUNT}/ca.crt"}
CA_CONTAINERS = {"web", "sidekiq", "db-migrate"}
# What patches/mail-federation-env.yaml may change in ConfigMap mastodon-env (its helper's).
MAIL_FEDERATION_KEYS = {"SMTP_SERVER", "SMTP_PORT", "SMTP_AUTH_METHOD", "SMTP_ENABLE_STARTTLS",
                        "ALLOWED_PRIVATE_ADDRESSES"}


def overlay() -> list[dict]:
    return rendered("overlay-kind")


def deployment(objects: list[dict]) -> dict:
    return find(objects, "Deployment", "mastodon", "mastodon")


def without_kind_additions(objects: list[dict]) -> list[dict]:
    """The overlay's objects with exactly the documented additions taken out again."""
    out = copy.deepcopy(objects)
    spec = deployment(out)["spec"]["template"]["spec"]
    spec["volumes"] = [v for v in spec["volumes"] if v["name"] != "tootcheck-ca"]
    for c in spec["initContainers"] + spec["containers"]:
        if c["name"] in CA_CONTAINERS:
            c["env"] = [e for e in c["env"] if e != CA_ENV]
            if not c["env"]:
                del c["env"]
            c["volumeMounts"] = [m for m in c["volumeMounts"] if m["mountPath"] != CA_MOUNT]
    env = find(out, "ConfigMap", "mastodon-env", "mastodon")["data"]
    ref_env = find(reference(), "ConfigMap", "mastodon-env", "mastodon")["data"]
    for key in MAIL_FEDERATION_KEYS:
        if key in ref_env:
            env[key] = ref_env[key]
        else:
            env.pop(key, None)
    return out


def test_overlay_is_the_reference_plus_the_documented_additions():
    assert kustomization(OVERLAY)["resources"] == ["../../apps/mastodon"]
    ours = sorted(without_kind_additions(overlay()), key=object_key)
    ref = sorted(reference(), key=object_key)
    assert [object_key(o) for o in ours] == [object_key(o) for o in ref]
    for mine, theirs in zip(ours, ref, strict=True):
        assert mine == theirs, f"{object_key(mine)} differs from the reference beyond the kind additions"


def test_container_order_is_the_references():
    """db-migrate must stay after the postgres and redis native sidecars."""
    for key in ("initContainers", "containers"):
        names = [c["name"] for c in deployment(overlay())["spec"]["template"]["spec"][key]]
        assert names == [c["name"] for c in deployment(reference())["spec"]["template"]["spec"][key]]


def test_ca_reaches_every_process_that_calls_out():
    spec = deployment(overlay())["spec"]["template"]["spec"]
    assert {"name": "tootcheck-ca", "configMap": {
        "name": "tootcheck-ca", "items": [{"key": "ca.crt", "path": "ca.crt"}]}} in spec["volumes"]
    for c in spec["initContainers"] + spec["containers"]:
        has_env = CA_ENV in c.get("env", [])
        has_mount = any(m["mountPath"] == CA_MOUNT and m["name"] == "tootcheck-ca"
                        and m.get("readOnly") for m in c.get("volumeMounts", []))
        assert has_env == has_mount == (c["name"] in CA_CONTAINERS), c["name"]


def test_the_mail_federation_patch_is_included():
    assert MAIL_FEDERATION_PATCH.is_file(), "patches/mail-federation-env.yaml is missing"
    paths = [p["path"] for p in kustomization(OVERLAY)["patches"]]
    assert "patches/mail-federation-env.yaml" in paths
    changed = {k for k, v in find(overlay(), "ConfigMap", "mastodon-env", "mastodon")["data"].items()
               if find(reference(), "ConfigMap", "mastodon-env", "mastodon")["data"].get(k) != v}
    assert changed and changed <= MAIL_FEDERATION_KEYS


def test_storage_and_routing_names_are_not_patched():
    for kind in ("PersistentVolumeClaim", "Ingress", "Middleware", "Service"):
        ours = [o for o in overlay() if o["kind"] == kind]
        assert ours == [o for o in reference() if o["kind"] == kind]


def _own_files():
    return [f for f in yaml_files() if "fediverse-peer" not in f.parts and "mailpit" not in f.parts]


@pytest.mark.parametrize("path", _own_files(), ids=lambda p: p.relative_to(MANIFESTS).as_posix())
def test_no_secret_objects_or_values_in_the_manifests(path):
    for doc in load_docs(path):
        assert doc.get("kind") != "Secret", f"{path.name} contains a Secret"
        assert "secretGenerator" not in doc
        for obj_env in _env_entries(doc):
            if obj_env.get("name") in MASTODON_SECRET_KEYS:
                assert "value" not in obj_env, f"{path.name}: literal {obj_env['name']}"


def _env_entries(node: object):
    if isinstance(node, dict):
        if "env" in node and isinstance(node["env"], list):
            yield from (e for e in node["env"] if isinstance(e, dict))
        for value in node.values():
            yield from _env_entries(value)
    elif isinstance(node, list):
        for value in node:
            yield from _env_entries(value)


@pytest.mark.parametrize("name", ["overlay-kind", "infra-authentik", "infra-nfs", "infra-traefik",
                                  "infra-cert-manager", "infra-issuers", "infra-coredns"])
def test_renders_contain_no_secret(name):
    objects = rendered(name)
    assert not [o for o in objects if o["kind"] == "Secret"]
    for cm in (o for o in objects if o["kind"] == "ConfigMap"):
        assert not set(cm.get("data") or {}) & set(MASTODON_SECRET_KEYS), cm["metadata"]["name"]


def test_authentik_values_set_no_secret():
    (values,) = load_docs(MANIFESTS / "infra" / "authentik" / "values.yaml")
    authentik = values.get("authentik", {})
    for key in ("secret_key", "bootstrap_password", "bootstrap_token", "bootstrap_email"):
        assert key not in authentik
    assert "password" not in authentik.get("postgresql", {})
    assert "auth" not in values.get("postgresql", {})


def test_the_comparison_notices_any_other_change():
    """Not vacuous: one more changed field anywhere makes the overlay differ."""
    changed = copy.deepcopy(overlay())
    claim = next(o for o in changed if o["kind"] == "PersistentVolumeClaim")
    claim["spec"]["storageClassName"] = "standard"
    ours = sorted(without_kind_additions(changed), key=object_key)
    assert ours != sorted(reference(), key=object_key)
