"""The objects the bring-up creates itself, built as plain dicts (pure).

Names and keys are the ones the manifests reference (docs/e2e.md "Secrets and
ConfigMaps the bring-up creates"): Secret ``mastodon/mastodon-secrets``, Secret
``authentik/authentik-bootstrap`` (read by the chart through
``authentik.existingSecret`` and by the blueprint through ``!Env``), ConfigMap
``mastodon/tootcheck-ca`` with the test CA, Secret ``cert-manager/tootcheck-root-ca``
(the test CA's key pair, read by the CA ClusterIssuer), and the suite's own bookkeeping in
``kube-system``: the run's secrets and the bring-up state. Secret values go in
``data`` (base64), never in anything that is printed.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

from tootcheck.kube.safety import MANAGED_BY
from tootcheck.secretgen import MASTODON_SECRET_KEYS, SecretSet

SUITE_NAMESPACE = "kube-system"
RUN_SECRETS = "tootcheck-run-secrets"
STATE = "tootcheck-state"
ACCOUNTS_SECRET = "tootcheck-accounts"
MASTODON_SECRET = "mastodon-secrets"
AUTHENTIK_SECRET = "authentik-bootstrap"
CA_CONFIGMAP = "tootcheck-ca"
# The test CA's key pair for ClusterIssuer kirchner-social-issuer (manifests/infra/issuers): a CA
# ClusterIssuer reads its Secret from the cluster resource namespace, cert-manager's own.
ROOT_CA_SECRET = ("cert-manager", "tootcheck-root-ca")  # namespace, name
ENV_CONFIGMAP = "mastodon-env"
OIDC_USERNAME = "tootcheck-oidc"  # manifests/infra/authentik/blueprints/mastodon.yaml

# authentik-bootstrap key -> SecretSet name (the chart reads AUTHENTIK_*, the blueprint the rest)
AUTHENTIK_KEYS = {
    "AUTHENTIK_SECRET_KEY": "AUTHENTIK_SECRET_KEY",
    "AUTHENTIK_POSTGRESQL__PASSWORD": "AUTHENTIK_POSTGRESQL_PASSWORD",
    "AUTHENTIK_BOOTSTRAP_PASSWORD": "AUTHENTIK_BOOTSTRAP_PASSWORD",
    "AUTHENTIK_BOOTSTRAP_TOKEN": "AUTHENTIK_BOOTSTRAP_TOKEN",
    "MASTODON_OIDC_CLIENT_SECRET": "OIDC_CLIENT_SECRET",
    "TOOTCHECK_OIDC_PASSWORD": "OIDC_TEST_USER_PASSWORD",
}


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _meta(name: str, namespace: str) -> dict[str, Any]:
    return {"name": name, "namespace": namespace, "labels": {MANAGED_BY[0]: MANAGED_BY[1]}}


def secret(name: str, namespace: str, data: Mapping[str, str], *,
           type_: str = "Opaque") -> dict[str, Any]:
    """A Secret whose ``data`` is already base64."""
    return {"apiVersion": "v1", "kind": "Secret", "metadata": _meta(name, namespace),
            "type": type_, "data": dict(data)}


def configmap(name: str, namespace: str, data: Mapping[str, str]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": _meta(name, namespace),
            "data": dict(data)}


def run_secrets(values: SecretSet, extra: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Every secret of the run, so a reused cluster gets the same values back; ``extra``
    holds plain values kept beside them (the test CA's certificate and key)."""
    data = values.secret_data()
    data.update({k: _b64(v) for k, v in (extra or {}).items()})
    return secret(RUN_SECRETS, SUITE_NAMESPACE, data)


def root_ca_secret(cert_pem: str, key_pem: str) -> dict[str, Any]:
    """The test CA as a TLS Secret for the CA ClusterIssuer (``ca.crt``: the root itself)."""
    namespace, name = ROOT_CA_SECRET
    return secret(name, namespace, {"tls.crt": _b64(cert_pem), "tls.key": _b64(key_pem),
                                    "ca.crt": _b64(cert_pem)}, type_="kubernetes.io/tls")


def mastodon_secrets(values: SecretSet) -> dict[str, Any]:
    return secret(MASTODON_SECRET, "mastodon", values.secret_data(MASTODON_SECRET_KEYS))


def authentik_bootstrap(values: SecretSet, domain: str) -> dict[str, Any]:
    data = {key: _b64(values[name].reveal()) for key, name in AUTHENTIK_KEYS.items()}
    data["AUTHENTIK_BOOTSTRAP_EMAIL"] = _b64(f"tootcheck-admin@{domain}")
    return secret(AUTHENTIK_SECRET, "authentik", data)


def ca_configmap(ca_pem: str) -> dict[str, Any]:
    return configmap(CA_CONFIGMAP, "mastodon", {"ca.crt": ca_pem})


def state_configmap(data: Mapping[str, str]) -> dict[str, Any]:
    return configmap(STATE, SUITE_NAMESPACE, data)


def accounts_secret(fields: Mapping[str, str]) -> dict[str, Any]:
    """``<role>.<field>`` -> plain value, stored base64."""
    return secret(ACCOUNTS_SECRET, "mastodon", {k: _b64(v) for k, v in fields.items()})


def with_env(docs: list[dict[str, Any]], values: Mapping[str, str], *,
             configmap_name: str = ENV_CONFIGMAP) -> list[dict[str, Any]]:
    """The docs with ``values`` set in the data of ConfigMap ``configmap_name``.

    The kind overlay renders the reference ConfigMap, whose VAPID_PUBLIC_KEY is the
    production key; the run generates its own pair, so its public half replaces it
    here, just before the apply. Raises when the ConfigMap is not in the render.
    """
    out, found = [], False
    for doc in docs:
        if doc.get("kind") == "ConfigMap" and (doc.get("metadata") or {}).get("name") == configmap_name:
            doc = {**doc, "data": {**(doc.get("data") or {}), **values}}
            found = True
        out.append(doc)
    if not found:
        raise ValueError(f"ConfigMap {configmap_name} not in the render")
    return out


def namespace_docs(docs: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    """The Namespace object named ``name`` from a render (PSA labels included)."""
    return [d for d in docs if d.get("kind") == "Namespace"
            and (d.get("metadata") or {}).get("name") == name]


def decode_data(obj: Mapping[str, Any] | None) -> dict[str, str]:
    if not obj:
        return {}
    return {k: base64.b64decode(v).decode() for k, v in (obj.get("data") or {}).items()}
