"""Live objects of one namespace, thin over the ``kubernetes`` client.

Lists the kinds the rules read, converts them with ``sanitize_for_serialization``
into the same dicts a render gives, strips ``status`` and ``managedFields`` (and
the last-applied annotation, which repeats the object), and never keeps a Secret
value: a Secret becomes its metadata and its keys, each with an empty value.
An unreachable cluster, an unknown context or a missing namespace is one-line
bad input (tootcheck.kube.client.connect).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from tootcheck.errors import BadInput
from tootcheck.kube.client import Kube, connect
from tootcheck.policy.bundle import Bundle, K8sObject
from tootcheck.policy.config import PolicyConfig
from tootcheck.redaction import register_secret_settings

TIMEOUT_S = 20.0
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"

# (apiVersion, kind, typed API class, list method) for namespaced built-in kinds.
NAMESPACED = (
    ("v1", "ConfigMap", "CoreV1Api", "list_namespaced_config_map"),
    ("v1", "Secret", "CoreV1Api", "list_namespaced_secret"),
    ("v1", "Service", "CoreV1Api", "list_namespaced_service"),
    ("v1", "ServiceAccount", "CoreV1Api", "list_namespaced_service_account"),
    ("v1", "PersistentVolumeClaim", "CoreV1Api", "list_namespaced_persistent_volume_claim"),
    ("v1", "Pod", "CoreV1Api", "list_namespaced_pod"),
    ("apps/v1", "Deployment", "AppsV1Api", "list_namespaced_deployment"),
    ("apps/v1", "StatefulSet", "AppsV1Api", "list_namespaced_stateful_set"),
    ("apps/v1", "DaemonSet", "AppsV1Api", "list_namespaced_daemon_set"),
    ("batch/v1", "Job", "BatchV1Api", "list_namespaced_job"),
    ("batch/v1", "CronJob", "BatchV1Api", "list_namespaced_cron_job"),
    ("networking.k8s.io/v1", "Ingress", "NetworkingV1Api", "list_namespaced_ingress"),
    ("networking.k8s.io/v1", "NetworkPolicy", "NetworkingV1Api",
     "list_namespaced_network_policy"),
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


def secret_keys_only(secret: Any, sanitize: Callable[[Any], Any]) -> dict[str, Any]:
    """A Secret as metadata plus keys with empty values: its values never leave here."""
    meta = sanitize(secret.metadata) or {}
    keys = sorted(set(secret.data or {}) | set(getattr(secret, "string_data", None) or {}))
    obj = {"apiVersion": "v1", "kind": "Secret", "metadata": meta, "type": secret.type,
           "data": dict.fromkeys(keys, "")}
    obj, _ = clean(obj, "Secret", "v1")
    return obj


def _call(what: str, fn: Callable[[], Any], *, missing_ok: bool = False) -> Any:
    import kubernetes

    try:
        return fn()
    except kubernetes.client.ApiException as exc:
        if missing_ok and exc.status == 404:
            return None
        raise BadInput(f"cannot list {what}: HTTP {exc.status} {exc.reason}") from None
    except Exception as exc:  # urllib3 errors and the like: one line, no traceback
        raise BadInput(f"cannot list {what}: {' '.join(str(exc).split())[:200]}") from None


def live_objects(kube: Kube, namespace: str) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    import kubernetes

    api = kube.api
    sanitize = api.sanitize_for_serialization
    out: list[tuple[dict[str, Any], dict[str, Any]]] = []
    ns_obj = _call(f"namespace {namespace}", lambda: kubernetes.client.CoreV1Api(
        api).read_namespace(namespace, _request_timeout=TIMEOUT_S), missing_ok=True)
    if ns_obj is None:
        raise BadInput(f"namespace {namespace} not found in context {kube.context}")
    out.append(clean(sanitize(ns_obj), "Namespace", "v1"))
    for api_version, kind, cls, method in NAMESPACED:
        client = getattr(kubernetes.client, cls)(api)
        listed = _call(f"{kind} in {namespace}", functools.partial(
            getattr(client, method), namespace, _request_timeout=TIMEOUT_S))
        for item in listed.items or []:
            if kind == "Secret":
                out.append((secret_keys_only(item, sanitize), {}))
                continue
            data = sanitize(item)
            if kind == "Pod" and (data.get("metadata") or {}).get("ownerReferences"):
                continue  # pods of controllers are checked through their controller
            out.append(clean(data, kind, api_version))
    claims = [d for d, _ in out if d["kind"] == "PersistentVolumeClaim"]
    classes = {(d.get("spec") or {}).get("storageClassName") for d in claims} - {None}
    core = kubernetes.client.CoreV1Api(api)
    for pv in _call("PersistentVolumes", lambda: core.list_persistent_volume(
            _request_timeout=TIMEOUT_S)).items or []:
        data = sanitize(pv)
        if ((data.get("spec") or {}).get("claimRef") or {}).get("namespace") == namespace:
            out.append(clean(data, "PersistentVolume", "v1"))
    storage = kubernetes.client.StorageV1Api(api)
    for sc in _call("StorageClasses", lambda: storage.list_storage_class(
            _request_timeout=TIMEOUT_S)).items or []:
        data = sanitize(sc)
        if (data.get("metadata") or {}).get("name") in classes:
            out.append(clean(data, "StorageClass", "storage.k8s.io/v1"))
    custom = kubernetes.client.CustomObjectsApi(api)
    for group, version, plural, kind, namespaced in CUSTOM:
        if namespaced:
            listed = _call(f"{kind} in {namespace}", functools.partial(
                               custom.list_namespaced_custom_object, group, version, namespace,
                               plural, _request_timeout=TIMEOUT_S), missing_ok=True)
        else:
            listed = _call(kind, functools.partial(
                               custom.list_cluster_custom_object, group, version, plural,
                               _request_timeout=TIMEOUT_S), missing_ok=True)
        for item in (listed or {}).get("items") or []:  # None: the CRD is not installed
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
