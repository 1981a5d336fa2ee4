"""Secrets handling (MSTDN-SECRET-*): secret values stay in Secrets, references resolve."""

from __future__ import annotations

import re
from collections.abc import Iterator

from tootcheck.model import Severity
from tootcheck.policy.envmerge import configmap_data, issued_secret, secret_keys
from tootcheck.policy.k8s import WORKLOAD_KINDS, pod_spec, pod_spec_path
from tootcheck.policy.registry import rule
from tootcheck.policy.types import Context, Hit, Subject

E = Severity.ERROR

# Mastodon's secret-valued settings (config.md "Secrets"; the ENV reads of config/, app/
# and lib/), beyond what Polaris's name patterns catch (they miss DB_PASS,
# REPLICA_DB_PASS, ES_PASS, VAPID_PRIVATE_KEY, SAML_PRIVATE_KEY, SWIFT_TEMP_URL_KEY and
# ACTIVE_RECORD_*).
MASTODON_SECRETS = frozenset({
    "SECRET_KEY_BASE", "OTP_SECRET", "VAPID_PRIVATE_KEY", "DB_PASS", "REPLICA_DB_PASS",
    "REDIS_PASSWORD", "OIDC_CLIENT_SECRET", "SMTP_PASSWORD", "BULK_SMTP_PASSWORD",
    "AWS_SECRET_ACCESS_KEY", "ES_PASS", "SIDEKIQ_REDIS_PASSWORD", "CACHE_REDIS_PASSWORD",
    "POSTGRES_PASSWORD", "LDAP_PASSWORD", "SAML_PRIVATE_KEY", "CACHE_BUSTER_SECRET",
    "DEEPL_API_KEY", "LIBRE_TRANSLATE_API_KEY", "HCAPTCHA_SECRET_KEY", "SWIFT_PASSWORD",
    "SWIFT_TEMP_URL_KEY", "AZURE_STORAGE_ACCESS_KEY", "FETCH_REPLIES_TOKEN"})
_POLARIS_NAME = re.compile(r"(?i)password|token|bearer|secret|^AWS_SECRET_ACCESS_KEY$|"
                           r"^GOOGLE_APPLICATION_CREDENTIALS$|^AZURE_.+KEY$|"
                           r"^OCI_CLI_KEY_CONTENT$")
# Plain settings whose names match those patterns: a public key, URLs, a header name, flags.
NOT_SECRET = frozenset({
    "VAPID_PUBLIC_KEY", "OIDC_CLIENT_AUTH_METHOD", "OIDC_TOKEN_ENDPOINT",
    "OIDC_SEND_SCOPE_TO_TOKEN_ENDPOINT", "CACHE_BUSTER_SECRET_HEADER",
    "IGNORE_ALREADY_SET_SECRETS"})
_PEM_KEY = re.compile(r"(?i)-BEGIN\s+.*PRIVATE KEY-")
_URL_CREDENTIALS = re.compile(r"(?i)\b[a-z][a-z0-9+.-]*://[^\s/@:]*:[^\s/@]+@")


def is_secret_name(name: str) -> bool:
    """A setting whose value is a credential (the value is never looked at)."""
    if name in NOT_SECRET:
        return False
    return (name in MASTODON_SECRETS or name.startswith("ACTIVE_RECORD_ENCRYPTION_")
            or bool(_POLARIS_NAME.search(name)))


@rule("MSTDN-SECRET-001", E, "No ConfigMap key holds a secret setting",
      kinds=("ConfigMap",),
      remediation="Move the key into the externally provided Secret (mastodon-secrets) and "
                  "delete it from the ConfigMap.",
      refs=("Polaris sensitiveConfigmapContent", "mastodon/documentation content/en/admin/"
            "config.md (Secrets)"))
def configmap_secret_keys(s: Subject, ctx: Context) -> Iterator[Hit]:
    """ConfigMaps are readable by anyone who can read the namespace's configuration and
    are committed with the manifests; Mastodon's secret settings (SECRET_KEY_BASE,
    OTP_SECRET, VAPID_PRIVATE_KEY, DB_PASS, REDIS_PASSWORD, OIDC_CLIENT_SECRET,
    SMTP_PASSWORD, ACTIVE_RECORD_ENCRYPTION_*, and any key matching Polaris's
    password/token/bearer/secret patterns) belong in a Secret. VAPID_PUBLIC_KEY is public,
    and OIDC_TOKEN_ENDPOINT is a URL the OIDC rules need to read."""
    for key in configmap_data(s.obj):
        if is_secret_name(key):
            yield Hit(f"ConfigMap key {key} holds a secret setting", ("data", key))


@rule("MSTDN-SECRET-002", E, "No secret setting is a literal env value",
      kinds=WORKLOAD_KINDS, scope="container",
      remediation="Read the variable from the Secret (envFrom secretRef or "
                  "valueFrom.secretKeyRef) instead of a literal value.",
      refs=("Polaris sensitiveContainerEnvVar", "kube-linter env-var-secret"))
def literal_secret_env(s: Subject, ctx: Context) -> Iterator[Hit]:
    """A literal env value is committed with the manifest and shown by kubectl describe."""
    c = s.container
    assert c is not None
    for i, entry in enumerate(c.data.get("env") or []):
        if not isinstance(entry, dict) or "valueFrom" in entry:
            continue
        name = str(entry.get("name", ""))
        value = entry.get("value")
        if is_secret_name(name) and value not in (None, ""):
            yield Hit(f"env {name} is a literal value", c.field("env", i, "value"))
        elif isinstance(value, str) and _PEM_KEY.search(value):
            yield Hit(f"env {name} holds a PEM private key", c.field("env", i, "value"))


@rule("MSTDN-SECRET-003", E, "ConfigMap values contain no private keys or URL credentials",
      kinds=("ConfigMap",),
      remediation="Move the credential into a Secret; for databases set DB_HOST/DB_USER/"
                  "DB_NAME in the ConfigMap and DB_PASS in the Secret instead of DATABASE_URL.",
      refs=("Polaris sensitiveConfigmapContent (value pattern)", "mastodon/documentation "
            "content/en/admin/config.md DATABASE_URL/REDIS_URL"))
def configmap_secret_values(s: Subject, ctx: Context) -> Iterator[Hit]:
    """Whatever the key is called, a PEM private key or a user:password@ URL in a
    ConfigMap is a leaked credential (the value itself is never printed)."""
    for key, value in configmap_data(s.obj).items():
        if _PEM_KEY.search(value):
            yield Hit(f"ConfigMap key {key} holds a PEM private key", ("data", key))
        elif _URL_CREDENTIALS.search(value):
            yield Hit(f"ConfigMap key {key} holds a URL with a password", ("data", key))


@rule("MSTDN-SECRET-004", E, "Every Secret and ConfigMap reference resolves",
      kinds=WORKLOAD_KINDS,
      remediation="Render the referenced ConfigMap/Secret, or list an externally provided "
                  "Secret and its keys under external_secrets in the policy config; do not "
                  "mark required references optional.",
      refs=("kube-linter env-value-from", "Kubernetes: pods with unresolved references stay in "
            "CreateContainerConfigError"))
def references_resolve(s: Subject, ctx: Context) -> Iterator[Hit]:
    """envFrom secretRef/configMapRef, valueFrom secretKeyRef/configMapKeyRef and
    secret/configMap volumes must name an object the bundle renders (or a Secret a
    rendered cert-manager Certificate issues), or (offline) one allow-listed as
    externally provided; live, it must exist and an external Secret must hold every key
    the config declares. A reference marked optional for a Mastodon secret
    would start the app without it."""
    seen: set[tuple] = set()
    for c in ctx.containers(s.obj):
        env = ctx.env(c)
        for u in env.unresolved:
            if u.optional and u.why.startswith("not "):
                continue  # an optional reference to an absent object is allowed
            what = f"{u.kind} {u.name}" + (f" key {u.key}" if u.key else "")
            key = (c.name, what, u.why)
            if key in seen:
                continue
            seen.add(key)
            if u.why.startswith("not "):
                yield Hit(f"{what} referenced by {c.name!r} is {u.why}", u.path, c.name)
            else:
                yield Hit(f"{u.kind} {u.name} {u.why}", u.path, c.name)
        for var in env.definitions:
            declared = ctx.config.external_secret_keys(s.obj.namespace, var.ref or "") or ()
            if var.from_secret and var.optional and var.key in declared:
                yield Hit(f"reference to Secret {var.ref} is optional although it holds "
                          f"required key {var.key}", var.path, c.name)
                break
    sp = pod_spec_path(s.obj) or ()
    ns = s.obj.namespace
    for i, vol in enumerate((pod_spec(s.obj) or {}).get("volumes") or []):
        if not isinstance(vol, dict):
            continue
        refs = [("Secret", vol.get("secret"), "secretName"),
                ("ConfigMap", vol.get("configMap"), "name")]
        for src in (vol.get("projected") or {}).get("sources") or []:
            if isinstance(src, dict):
                refs += [("Secret", src.get("secret"), "name"),
                         ("ConfigMap", src.get("configMap"), "name")]
        for kind, src, name_key in refs:
            if not isinstance(src, dict) or src.get("optional"):
                continue
            name = str(src.get(name_key, ""))
            if ctx.bundle.find(kind, ns, name) is not None or (
                    kind == "Secret" and ctx.mode == "offline"
                    and issued_secret(ctx.bundle, ns, name)):
                continue
            external = (ctx.config.external_secret_keys(ns, name) is not None
                        if kind == "Secret" else ctx.config.is_external_configmap(ns, name))
            if external and ctx.mode == "offline":
                continue
            where = "in the cluster" if ctx.mode == "live" else \
                f"rendered nor an allow-listed external {kind}"
            yield Hit(f"volume {vol.get('name')} mounts {kind} {name}, which is not {where}",
                      (*sp, "volumes", i))
    if ctx.mode == "live":
        for c in ctx.containers(s.obj):
            for kind, name in ctx.env(c).env_from:
                declared = ctx.config.external_secret_keys(ns, name)
                if kind != "Secret" or declared is None or (c.name, name) in seen:
                    continue
                found = ctx.bundle.find("Secret", ns, name)
                if found is None:
                    continue
                seen.add((c.name, name))
                missing = sorted(set(declared) - secret_keys(found))
                if missing:
                    yield Hit(f"Secret {name} in the cluster lacks key(s) {', '.join(missing)}",
                              c.field("envFrom"), c.name)


@rule("MSTDN-SECRET-005", E, "No plaintext Secret with data is committed",
      kinds=("Secret",), modes=("offline",),
      remediation="Do not commit Secret data: provide the Secret outside the manifests "
                  "(listed under external_secrets), or commit it SOPS-encrypted or as a "
                  "SealedSecret/ExternalSecret.",
      refs=("Kubernetes documentation: Secrets are base64-encoded, not encrypted",))
def committed_secret(s: Subject, ctx: Context) -> Iterator[Hit]:
    """base64 is not encryption: a rendered Secret with data or stringData puts the
    credential in git. SOPS-encrypted Secrets (a sops: section) are accepted."""
    if "sops" in s.obj.data:
        return
    keys = sorted(secret_keys(s.obj))
    if keys:
        section = "stringData" if s.obj.data.get("stringData") else "data"
        yield Hit(f"Secret carries {len(keys)} plaintext key(s): {', '.join(keys[:5])}"
                  + ("..." if len(keys) > 5 else ""), (section,))
