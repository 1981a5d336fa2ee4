"""Secrets handling (MSTDN-SECRET-*): secret values stay in Secrets, references resolve."""

from __future__ import annotations

import re
from collections.abc import Iterator

from tootcheck.model import Severity
from tootcheck.policy.envmerge import configmap_data, issued_secret, secret_keys
from tootcheck.policy.k8s import WORKLOAD_KINDS, pod_spec, pod_spec_path
from tootcheck.policy.registry import rule
from tootcheck.policy.types import Context, Hit, Subject
from tootcheck.redaction import is_secret_key

E, INFO = Severity.ERROR, Severity.INFO

_PEM_KEY = re.compile(r"(?i)-BEGIN\s+.*PRIVATE KEY-")
_URL_CREDENTIALS = re.compile(r"(?i)\b[a-z][a-z0-9+.-]*://[^\s/@:]*:[^\s/@]+@")


def is_secret_name(name: str) -> bool:
    """A setting whose value is a credential (the value is never looked at)."""
    return is_secret_key(name)


@rule("MSTDN-SECRET-001", E, "No ConfigMap key holds a secret setting",
      profile="baseline", kinds=("ConfigMap",),
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
      profile="baseline", kinds=WORKLOAD_KINDS, scope="container",
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
      profile="baseline", kinds=("ConfigMap",),
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
      profile="baseline", kinds=WORKLOAD_KINDS,
      remediation="Render the referenced ConfigMap (or list it under external_configmaps), "
                  "give a rendered Secret the keys read from it, and declare an externally "
                  "provided Secret's keys under external_secrets; do not mark required "
                  "references optional.",
      refs=("kube-linter env-value-from", "Kubernetes: pods with unresolved references stay in "
            "CreateContainerConfigError"))
def references_resolve(s: Subject, ctx: Context) -> Iterator[Hit]:
    """A pod whose reference does not resolve never starts (CreateContainerConfigError).
    envFrom configMapRef, valueFrom configMapKeyRef and configMap volumes must name a
    rendered ConfigMap (or one allow-listed as external), with the key; a rendered Secret
    must hold the keys read from it. Offline, a Secret that is not rendered (sealed,
    external, created by hand) is assumed to provide them (MSTDN-SECRET-006 names the
    keys); live, it must exist and hold every key the config declares for it. A
    reference marked optional for a Mastodon secret would start the app without it.
    Depends on the cluster only through Secrets created outside the manifests."""
    seen: set[tuple[str, ...]] = set()
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
            if not (var.from_secret and var.optional):
                continue
            declared = ctx.config.external_secret_keys(s.obj.namespace, var.ref or "") or ()
            if var.key in declared:
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
            if ctx.mode == "offline" and (kind == "Secret"  # assumed: MSTDN-SECRET-006
                                          or ctx.config.is_external_configmap(ns, name)):
                continue
            where = "in the cluster" if ctx.mode == "live" else \
                f"rendered nor an allow-listed external {kind}"
            yield Hit(f"volume {vol.get('name')} mounts {kind} {name}, which is not {where}",
                      (*sp, "volumes", i))
    if ctx.mode == "live":
        for c in ctx.containers(s.obj):
            for kind, name in ctx.env(c).env_from:
                listed = ctx.config.external_secret_keys(ns, name)
                if kind != "Secret" or listed is None or (c.name, name) in seen:
                    continue
                found = ctx.bundle.find("Secret", ns, name)
                if found is None:
                    continue
                seen.add((c.name, name))
                missing = sorted(set(listed) - secret_keys(found))
                if missing:
                    yield Hit(f"Secret {name} in the cluster lacks key(s) {', '.join(missing)}",
                              c.field("envFrom"), c.name)


@rule("MSTDN-SECRET-005", E, "No plaintext Secret with data is committed",
      profile="baseline", kinds=("Secret",), modes=("offline",),
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


@rule("MSTDN-SECRET-006", INFO, "Secrets referenced but not rendered are assumed to hold "
      "their keys", profile="baseline", kinds=WORKLOAD_KINDS, modes=("offline",),
      remediation="Nothing to fix offline: make sure the Secret exists in the cluster with the "
                  "keys named (tootcheck policy --live checks it), or declare it with its keys "
                  "under external_secrets in the policy config.",
      refs=("Bitnami sealed-secrets, external-secrets.io: Secrets that are not in the render",))
def assumed_secrets(s: Subject, ctx: Context) -> Iterator[Hit]:
    """A Secret created outside the manifests (sealed, external, by hand) cannot be
    checked offline; the gate takes it to provide the keys read from it (for envFrom,
    Mastodon's secret settings not defined before it) and says which, so a missing key
    is looked for in the right place. Depends on the cluster: the live gate checks that
    the Secret exists."""
    seen: set[str] = set()
    for c in ctx.containers(s.obj):
        for a in ctx.env(c).assumed:
            text = f"Secret {a.name} is not rendered; assumed to provide " + (
                ", ".join(a.keys) if a.keys else "no key not defined before it")
            if text not in seen:
                seen.add(text)
                yield Hit(text, a.path, c.name)
    sp = pod_spec_path(s.obj) or ()
    for i, vol in enumerate((pod_spec(s.obj) or {}).get("volumes") or []):
        name = (vol.get("secret") or {}).get("secretName") if isinstance(vol, dict) else None
        if name and ctx.bundle.find("Secret", s.obj.namespace, str(name)) is None and \
                not issued_secret(ctx.bundle, s.obj.namespace, str(name)) and \
                ctx.config.external_secret_keys(s.obj.namespace, str(name)) is None:
            yield Hit(f"volume {vol.get('name')} mounts Secret {name}, which is not rendered; "
                      f"assumed to exist", (*sp, "volumes", i))
