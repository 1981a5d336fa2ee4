"""Live objects of one namespace, thin over the ``kubernetes`` client.

Lists the kinds the rules read as the API server's JSON (``Kube.get_json``: the same
dicts a render gives, with no typed model between that could drop a field), strips
``status`` and ``managedFields`` (and the last-applied annotation, which repeats the
object), and never keeps a Secret value: a Secret becomes its metadata and its keys,
each with an empty value.
An unreachable cluster, an unknown context or a missing namespace is one-line
bad input (tootcheck.kube.client.connect).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from tootcheck.errors import BadInput
from tootcheck.kube.client import Kube, api_path, connect
from tootcheck.policy.bundle import Bundle, K8sObject
from tootcheck.policy.config import PolicyConfig
from tootcheck.redaction import register_secret_settings

TIMEOUT_S = 20.0
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"

# (apiVersion, kind, plural) of the namespaced built-in kinds the rules read.
NAMESPACED = (
    ("v1", "ConfigMap", "configmaps"),
    ("v1", "Secret", "secrets"),
    ("v1", "Service", "services"),
    ("v1", "ServiceAccount", "serviceaccounts"),
    ("v1", "PersistentVolumeClaim", "persistentvolumeclaims"),
    ("v1", "Pod", "pods"),
    ("apps/v1", "Deployment", "deployments"),
    ("apps/v1", "StatefulSet", "statefulsets"),
    ("apps/v1", "DaemonSet", "daemonsets"),
    ("batch/v1", "Job", "jobs"),
    ("batch/v1", "CronJob", "cronjobs"),
    ("networking.k8s.io/v1", "Ingress", "ingresses"),
    ("networking.k8s.io/v1", "NetworkPolicy", "networkpolicies"),
)
# (group, version, plural, kind, namespaced) for the custom resources the rules read.
CUSTOM = (
    ("traefik.io", "v1alpha1", "middlewares", "Middleware", True),
    ("traefik.io", "v1alpha1", "ingressroutes", "IngressRoute", True),
    ("cert-manager.io", "v1", "certificates", "Certificate", True),
    ("cert-manager.io", "v1", "issuers", "Issuer", True),
    ("cert-manager.io", "v1", "clusterissuers", "ClusterIssuer", False),
)


def clean(data: dict[str, Any], kind: str, api_version: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The object without status/managedFields/last-applied; returns (object, kept status)."""
    data = dict(data)
    data["kind"] = kind
    data["apiVersion"] = api_version
    status = data.pop("status", None) or {}
    meta = dict(data.get("metadata") or {})
    meta.pop("managedFields", None)
    ann = dict(meta.get("annotations") or {})
    if ann.pop(LAST_APPLIED, None) is not None:
        meta["annotations"] = ann or None
    data["metadata"] = {k: v for k, v in meta.items() if v is not None}
    kept = {"phase": status.get("phase")} if kind == "PersistentVolumeClaim" else {}
    return data, kept


def secret_keys_only(secret: dict[str, Any]) -> dict[str, Any]:
    """A Secret as metadata plus keys with empty values: its values never leave here."""
    meta = secret.get("metadata") or {}
    keys = sorted(set(secret.get("data") or {}) | set(secret.get("stringData") or {}))
    obj = {"apiVersion": "v1", "kind": "Secret", "metadata": meta, "type": secret.get("type"),
           "data": dict.fromkeys(keys, "")}
    obj, _ = clean(obj, "Secret", "v1")
    return obj


def _get(kube: Kube, what: str, path: str, *, missing_ok: bool = False) -> Any:
    """The JSON at ``path``; None for 404 with ``missing_ok``; other errors are BadInput."""
    import kubernetes

    try:
        return kube.get_json(path, timeout=TIMEOUT_S)
    except kubernetes.client.ApiException as exc:
        if missing_ok and exc.status == 404:
            return None
        raise BadInput(f"cannot list {what}: HTTP {exc.status} {exc.reason}") from None
    except Exception as exc:  # urllib3 errors, a body that is not JSON: one line
        raise BadInput(f"cannot list {what}: {' '.join(str(exc).split())[:200]}") from None


def _items(listed: Any) -> list[dict[str, Any]]:
    items = listed.get("items") if isinstance(listed, dict) else None
    return [i for i in items or [] if isinstance(i, dict)]


def live_objects(kube: Kube, namespace: str) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    out: list[tuple[dict[str, Any], dict[str, Any]]] = []
    ns_obj = _get(kube, f"namespace {namespace}", api_path("v1", "namespaces", name=namespace),
                  missing_ok=True)
    if not isinstance(ns_obj, dict):
        raise BadInput(f"namespace {namespace} not found in context {kube.context}")
    out.append(clean(ns_obj, "Namespace", "v1"))
    for api_version, kind, plural in NAMESPACED:
        for item in _items(_get(kube, f"{kind} in {namespace}",
                                api_path(api_version, plural, namespace))):
            if kind == "Secret":
                out.append((secret_keys_only(item), {}))
                continue
            if kind == "Pod" and (item.get("metadata") or {}).get("ownerReferences"):
                continue  # pods of controllers are checked through their controller
            out.append(clean(item, kind, api_version))
    claims = [d for d, _ in out if d["kind"] == "PersistentVolumeClaim"]
    classes = {(d.get("spec") or {}).get("storageClassName") for d in claims} - {None}
    for pv in _items(_get(kube, "PersistentVolumes", api_path("v1", "persistentvolumes"))):
        if ((pv.get("spec") or {}).get("claimRef") or {}).get("namespace") == namespace:
            out.append(clean(pv, "PersistentVolume", "v1"))
    for sc in _items(_get(kube, "StorageClasses",
                          api_path("storage.k8s.io/v1", "storageclasses"))):
        if (sc.get("metadata") or {}).get("name") in classes:
            out.append(clean(sc, "StorageClass", "storage.k8s.io/v1"))
    for group, version, plural, kind, namespaced in CUSTOM:
        listed = _get(kube, f"{kind} in {namespace}" if namespaced else kind,
                      api_path(f"{group}/{version}", plural, namespace if namespaced else None),
                      missing_ok=True)  # None: the CRD is not installed
        for item in _items(listed):
            out.append(clean(item, kind, f"{group}/{version}"))
    return out


def to_bundle(items: Iterable[tuple[dict[str, Any], dict[str, Any]]], source: str,
              default_namespace: str) -> Bundle:
    objects = [K8sObject(data=data, source=source, doc=i, line=0,
                         default_namespace=default_namespace, live_status=status)
               for i, (data, status) in enumerate(items)]
    return Bundle(objects, mode="live", sources=[source])


def load_live_bundle(kubeconfig: Path | None, context: str | None, namespace: str,
                     config: PolicyConfig) -> Bundle:
    kube = connect(kubeconfig, context, timeout=10.0)
    items = live_objects(kube, namespace)
    register_secret_settings(items)  # secret-valued ConfigMap keys: never echoed by a report
    return to_bundle(items, f"live:{kube.context}/{namespace}", namespace)
