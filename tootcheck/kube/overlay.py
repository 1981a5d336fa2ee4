"""The kind overlay composed around an operator's own apps/mastodon (``make e2e APP=DIR``).

manifests/overlays/kind adapts the reference deployment with fixed patches. For any
other DIR the same adaptation is composed at run time, in a temporary directory:

* ``kustomization.yaml`` naming DIR as its only base, so DIR renders exactly as its
  own kustomization says (images stay exactly as DIR pins them);
* a ConfigMap patch for every ConfigMap the Mastodon containers read: mail to the
  in-cluster Mailpit, federation with the in-cluster peer, the OIDC issuer and client
  of the in-cluster Authentik (when DIR enables OIDC), all taken from the reference
  overlay and settings;
* a workload patch: the Rails containers trust the run's test CA (ConfigMap
  ``tootcheck-ca``), and each inline ``nfs:`` volume becomes a claim on the in-cluster
  NFS server's class (its provisioner exports one directory per claim; an arbitrary
  inline export path would not exist there);
* one PersistentVolumeClaim per inline NFS volume, and the Namespace when DIR leaves
  it to ArgoCD;
* the certificates issued by the kind cluster's issuer (the run's test CA) instead of
  DIR's own (e.g. letsencrypt-prod, which does not exist there).

Secret values never reach a file: after the render, :func:`inject_run_secrets`
puts the run's values into the ConfigMap keys that hold secrets (DIR keeps them
there) and builds the Secrets DIR references but does not render.

Pure functions over the rendered documents, plus :func:`write_overlay`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tootcheck import resources
from tootcheck.errors import BadInput
from tootcheck.redaction import is_secret_key
from tootcheck.secretgen import MASTODON_SECRET_KEYS

# The reference kind overlay's environment patch, shipped as package data.
KIND_ENV_PATCH = ("kind-overlay-patches", "mail-federation-env.yaml")
NFS_CLASS = "nfs-csi"  # manifests/infra/nfs: the in-cluster NFS server's StorageClass
NFS_CLAIM_SIZE = "5Gi"
CA_CONFIGMAP = "tootcheck-ca"
CA_MOUNT = "/etc/tootcheck-ca"
OIDC_CLIENT_ID = "mastodon"  # manifests/infra/authentik/blueprints/mastodon.yaml
KIND_ISSUER = "kirchner-social-issuer"  # manifests/infra/issuers: the run's test CA
CM_CLUSTER_ISSUER = "cert-manager.io/cluster-issuer"
CM_ISSUER = "cert-manager.io/issuer"
WORKLOAD_KINDS = frozenset({"Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob"})


@dataclass(frozen=True)
class InlineNfs:
    kind: str
    workload: str
    volume: str

    @property
    def claim(self) -> str:
        return f"{self.workload}-{self.volume}"[:63]


@dataclass
class AppFacts:
    """What the overlay needs to know about DIR's render."""

    namespace: str
    env_configmaps: list[str] = field(default_factory=list)  # read by Mastodon containers
    configmap_secret_keys: dict[str, list[str]] = field(default_factory=dict)
    secret_keys: dict[str, list[str]] = field(default_factory=dict)  # unrendered Secrets
    inline_nfs: list[InlineNfs] = field(default_factory=list)
    rails: dict[tuple[str, str], list[str]] = field(default_factory=dict)  # (kind, name) -> containers
    images: list[str] = field(default_factory=list)
    oidc: bool = False


def _pod_spec(doc: Mapping[str, Any]) -> dict[str, Any]:
    spec = doc.get("spec") or {}
    if doc.get("kind") == "CronJob":
        spec = ((spec.get("jobTemplate") or {}).get("spec") or {})
    return ((spec.get("template") or {}).get("spec") or {})


def _containers(doc: Mapping[str, Any]) -> list[dict[str, Any]]:
    spec = _pod_spec(doc)
    return [c for key in ("initContainers", "containers") for c in spec.get(key) or []
            if isinstance(c, dict)]


def image_name(image: str) -> str:
    """``ghcr.io/mastodon/mastodon:v4.7.2`` -> ``mastodon``."""
    path = image.split("@", 1)[0]
    last = path.rsplit("/", 1)[-1]
    return last.split(":", 1)[0]


def inspect_app(docs: Sequence[Mapping[str, Any]], namespace: str = "mastodon") -> AppFacts:
    """The facts of DIR's render; BadInput (one line) when the suite cannot adapt it."""
    facts = AppFacts(namespace)
    rendered = {(d.get("kind"), (d.get("metadata") or {}).get("name")) for d in docs}
    configmaps = {(d.get("metadata") or {}).get("name"): d for d in docs
                  if d.get("kind") == "ConfigMap"}
    for doc in docs:
        if doc.get("kind") not in WORKLOAD_KINDS:
            continue
        name = str((doc.get("metadata") or {}).get("name"))
        for vol in _pod_spec(doc).get("volumes") or []:
            if isinstance(vol, dict) and "nfs" in vol:
                facts.inline_nfs.append(InlineNfs(str(doc["kind"]), name, str(vol.get("name"))))
        for c in _containers(doc):
            image = str(c.get("image", ""))
            facts.images.append(image)
            mastodon = image_name(image) in ("mastodon", "mastodon-streaming")
            if image_name(image) == "mastodon":
                facts.rails.setdefault((str(doc["kind"]), name), []).append(str(c.get("name")))
            for entry in c.get("envFrom") or []:
                cm = (entry.get("configMapRef") or {}).get("name")
                if cm and mastodon and cm not in facts.env_configmaps:
                    facts.env_configmaps.append(str(cm))
                secret = (entry.get("secretRef") or {}).get("name")
                if secret and ("Secret", secret) not in rendered:
                    keys = facts.secret_keys.setdefault(str(secret), [])
                    keys += [k for k in MASTODON_SECRET_KEYS if k not in keys]
            for entry in c.get("env") or []:
                ref = ((entry.get("valueFrom") or {}).get("secretKeyRef") or {})
                if ref.get("name") and ("Secret", ref["name"]) not in rendered:
                    keys = facts.secret_keys.setdefault(str(ref["name"]), [])
                    if ref.get("key") and ref["key"] not in keys:
                        keys.append(str(ref["key"]))
    for cm_name, cm in configmaps.items():
        secret = sorted(str(k) for k in (cm.get("data") or {}) if is_secret_key(str(k)))
        if secret:
            facts.configmap_secret_keys[str(cm_name)] = secret
        if cm_name in facts.env_configmaps and \
                str((cm.get("data") or {}).get("OIDC_ENABLED", "")).lower() == "true":
            facts.oidc = True
    if not facts.rails:
        raise BadInput("the app renders no container running ghcr.io/mastodon/mastodon: "
                       "nothing to bring up")
    missing = [n for n in facts.env_configmaps if n not in configmaps]
    if not facts.env_configmaps or missing:
        raise BadInput("the app's Mastodon containers read no rendered ConfigMap (envFrom "
                       "configMapRef), which the kind overlay must patch"
                       + (f"; not rendered: {', '.join(missing)}" if missing else ""))
    return facts


def kind_env(facts: AppFacts, oidc_issuer: str, domain: str) -> dict[str, str]:
    """The settings kind needs: the reference overlay's mail/federation values, and the
    in-cluster Authentik when the app enables OIDC."""
    patch = yaml.safe_load(resources.data_path(*KIND_ENV_PATCH).read_text())
    env = {str(k): str(v) for k, v in (patch.get("data") or {}).items()}
    if facts.oidc:
        env.update(OIDC_ISSUER=oidc_issuer, OIDC_CLIENT_ID=OIDC_CLIENT_ID,
                   OIDC_REDIRECT_URI=f"https://{domain}/auth/auth/openid_connect/callback")
    return env


def configmap_patches(facts: AppFacts, env: Mapping[str, str]) -> list[dict[str, Any]]:
    return [{"apiVersion": "v1", "kind": "ConfigMap",
             "metadata": {"name": name, "namespace": facts.namespace}, "data": dict(env)}
            for name in facts.env_configmaps]


def workload_patches(facts: AppFacts, docs: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Strategic-merge patches: CA trust for the Rails containers, claims for inline NFS.
    Every container is named, in order, so the merge keeps the init containers' order."""
    out = []
    nfs_by_workload: dict[tuple[str, str], list[InlineNfs]] = {}
    for n in facts.inline_nfs:
        nfs_by_workload.setdefault((n.kind, n.workload), []).append(n)
    for doc in docs:
        key = (str(doc.get("kind")), str((doc.get("metadata") or {}).get("name")))
        if key not in facts.rails and key not in nfs_by_workload:
            continue
        rails = set(facts.rails.get(key, []))
        spec = _pod_spec(doc)
        pod: dict[str, Any] = {}
        for section in ("initContainers", "containers"):
            named = []
            for c in spec.get(section) or []:
                entry: dict[str, Any] = {"name": c.get("name")}
                if c.get("name") in rails:
                    entry["env"] = [{"name": "SSL_CERT_FILE", "value": f"{CA_MOUNT}/ca.crt"}]
                    entry["volumeMounts"] = [{"name": CA_CONFIGMAP, "mountPath": CA_MOUNT,
                                              "readOnly": True}]
                named.append(entry)
            if named:
                pod[section] = named
        volumes: list[dict[str, Any]] = []
        if rails:
            volumes.append({"name": CA_CONFIGMAP, "configMap": {
                "name": CA_CONFIGMAP, "items": [{"key": "ca.crt", "path": "ca.crt"}]}})
        volumes += [{"name": n.volume, "nfs": None,
                     "persistentVolumeClaim": {"claimName": n.claim}}
                    for n in nfs_by_workload.get(key, [])]
        pod["volumes"] = volumes
        template = {"spec": pod}
        spec_key: dict[str, Any] = {"template": template}
        if key[0] == "CronJob":
            spec_key = {"jobTemplate": {"spec": {"template": template}}}
        out.append({"apiVersion": doc.get("apiVersion"), "kind": key[0],
                    "metadata": {"name": key[1], "namespace": facts.namespace},
                    "spec": spec_key})
    return out


def issuer_patches(facts: AppFacts, docs: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """DIR's certificates come from the kind cluster's issuer (the run's test CA): its
    own (e.g. letsencrypt-prod) does not exist there and could not reach kind anyway."""
    out: list[dict[str, Any]] = []
    for doc in docs:
        meta = doc.get("metadata") or {}
        ann = meta.get("annotations") or {}
        if doc.get("kind") == "Ingress" and (CM_CLUSTER_ISSUER in ann or CM_ISSUER in ann):
            out.append({"apiVersion": doc.get("apiVersion"), "kind": "Ingress", "metadata": {
                "name": meta.get("name"), "namespace": facts.namespace,
                "annotations": {CM_CLUSTER_ISSUER: KIND_ISSUER, CM_ISSUER: None}}})
        elif doc.get("kind") == "Certificate" and not (doc.get("spec") or {}).get("isCA"):
            out.append({"apiVersion": doc.get("apiVersion"), "kind": "Certificate",
                        "metadata": {"name": meta.get("name"), "namespace": facts.namespace},
                        "spec": {"issuerRef": {"name": KIND_ISSUER, "kind": "ClusterIssuer",
                                               "group": "cert-manager.io"}}})
    return out


def nfs_claims(facts: AppFacts) -> list[dict[str, Any]]:
    return [{"apiVersion": "v1", "kind": "PersistentVolumeClaim",
             "metadata": {"name": n.claim, "namespace": facts.namespace,
                          "labels": {"app.kubernetes.io/managed-by": "tootcheck"}},
             "spec": {"accessModes": ["ReadWriteMany"], "storageClassName": NFS_CLASS,
                      "resources": {"requests": {"storage": NFS_CLAIM_SIZE}}}}
            for n in facts.inline_nfs]


def namespace_doc(name: str) -> dict[str, Any]:
    """The namespace, for a DIR that leaves it to ArgoCD (the bring-up applies Secrets
    into it first). No enforce label: DIR's pods are admitted as DIR wrote them."""
    return {"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": name, "labels": {"pod-security.kubernetes.io/warn": "restricted"}}}


def kustomization(app_dir: Path, dest: Path, n_workloads: int, claims: bool,
                  namespace: bool = False) -> dict[str, Any]:
    resources = [os.path.relpath(app_dir.resolve(), dest.resolve())]
    if namespace:
        resources.append("namespace.yaml")
    if claims:
        resources.append("nfs-claims.yaml")
    patches = [{"path": "patches/env.yaml"}]
    patches += [{"path": f"patches/workload-{i}.yaml"} for i in range(n_workloads)]
    return {"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
            "resources": resources, "patches": patches}


def write_overlay(app_dir: Path, docs: Sequence[Mapping[str, Any]], dest: Path, *,
                  oidc_issuer: str, domain: str) -> AppFacts:
    """Compose the overlay for ``app_dir`` (whose render is ``docs``) into ``dest``."""
    if not (app_dir / "kustomization.yaml").is_file():
        raise BadInput(f"{app_dir}: no kustomization.yaml (APP must be a kustomize directory "
                       "such as apps/mastodon)")
    facts = inspect_app(docs)
    env = configmap_patches(facts, kind_env(facts, oidc_issuer, domain))
    workloads = workload_patches(facts, docs) + issuer_patches(facts, docs)
    (dest / "patches").mkdir(parents=True, exist_ok=True)
    (dest / "patches" / "env.yaml").write_text(yaml.safe_dump_all(env, sort_keys=False))
    for i, patch in enumerate(workloads):
        (dest / "patches" / f"workload-{i}.yaml").write_text(yaml.safe_dump(patch, sort_keys=False))
    if facts.inline_nfs:
        (dest / "nfs-claims.yaml").write_text(yaml.safe_dump_all(nfs_claims(facts), sort_keys=False))
    has_namespace = any(d.get("kind") == "Namespace" and
                        (d.get("metadata") or {}).get("name") == facts.namespace for d in docs)
    if not has_namespace:
        (dest / "namespace.yaml").write_text(yaml.safe_dump(namespace_doc(facts.namespace)))
    (dest / "kustomization.yaml").write_text(yaml.safe_dump(
        kustomization(app_dir, dest, len(workloads), bool(facts.inline_nfs),
                      namespace=not has_namespace), sort_keys=False))
    return facts


def inject_run_secrets(docs: Sequence[Mapping[str, Any]], facts: AppFacts,
                       value_for: Callable[[str], str]) -> list[dict[str, Any]]:
    """The overlay's render with the run's values in the ConfigMap keys that hold
    secrets, plus the Secrets DIR references but does not render (``stringData``)."""
    out: list[dict[str, Any]] = []
    for doc in docs:
        name = (doc.get("metadata") or {}).get("name")
        if doc.get("kind") == "ConfigMap" and name in facts.configmap_secret_keys:
            data = dict(doc.get("data") or {})
            data.update({k: value_for(k) for k in facts.configmap_secret_keys[str(name)]})
            doc = {**doc, "data": data}
        out.append(dict(doc))
    for name, keys in facts.secret_keys.items():
        out.append({"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                    "metadata": {"name": name, "namespace": facts.namespace,
                                 "labels": {"app.kubernetes.io/managed-by": "tootcheck"}},
                    "stringData": {k: value_for(k) for k in keys}})
    return out


def check_app_dir(app_dir: Path) -> Path:
    """``app_dir`` if it can be a base (a directory with kustomization.yaml); BadInput
    naming what is missing otherwise."""
    if not app_dir.is_dir():
        raise BadInput(f"APP={app_dir}: no such directory")
    if not (app_dir / "kustomization.yaml").is_file():
        raise BadInput(f"APP={app_dir}: no kustomization.yaml (APP must be a kustomize directory "
                       "such as apps/mastodon)")
    return app_dir


def run_values(known: Mapping[str, str], generate: Callable[[], str]) -> Callable[[str], str]:
    """A value per secret key for this run: the run's own (``known``) where it has one,
    else generated once per key, so a key read in two places gets one value."""
    extra: dict[str, str] = {}

    def value_for(key: str) -> str:
        if key in known:
            return known[key]
        if key not in extra:
            extra[key] = generate()
        return extra[key]

    return value_for


def compose_app_overlay(app_dir: Path, render_fn: Callable[[Path], str], work_dir: Path, *,
                        oidc_issuer: str, domain: str) -> tuple[list[dict[str, Any]], AppFacts]:
    """Render DIR, compose the overlay around it in ``work_dir`` and render that: the
    documents the bring-up applies once :func:`with_run_values` put the run's values in."""
    def docs_of(text: str) -> list[dict[str, Any]]:
        return [d for d in yaml.safe_load_all(text) if isinstance(d, dict)]

    base = docs_of(render_fn(check_app_dir(app_dir)))
    facts = write_overlay(app_dir, base, work_dir, oidc_issuer=oidc_issuer, domain=domain)
    return docs_of(render_fn(work_dir)), facts


def with_run_values(docs: Sequence[Mapping[str, Any]], facts: AppFacts,
                    value_for: Callable[[str], str], vapid_public_key: str) -> list[dict[str, Any]]:
    """The composed overlay's render with the run's secrets in, and the run's VAPID public
    key where DIR keeps it."""
    out = inject_run_secrets(docs, facts, value_for)
    for doc in out:
        if doc.get("kind") == "ConfigMap" and \
                (doc.get("metadata") or {}).get("name") in facts.env_configmaps:
            doc["data"] = {**(doc.get("data") or {}), "VAPID_PUBLIC_KEY": vapid_public_key}
    return out
