"""Render-vs-live drift: what the manifests say against what the cluster runs.

The desired state is the committed render at a git revision (the freshness test
keeps the snapshot equal to a fresh render). Only fields the render sets are
compared, so everything the API server adds (defaults) is ignored by
construction; fields the render sets but the cluster rewrites are ignored by
:data:`IGNORED`, the documented list below. Lists of named things (containers,
env, ports, volumes, mounts) are matched by their key, not by position.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

import yaml

from tootcheck.config_file import project_root
from tootcheck.errors import BadInput
from tootcheck.kube.apply import SAFE_LOADER
from tootcheck.model import ObjectRef
from tootcheck.redaction import mask_secret_settings, mask_setting, register_secret_settings

# Paths the cluster owns even when a manifest sets them. "*" matches one path element.
IGNORED: dict[str, str] = {
    "metadata.uid": "assigned by the API server",
    "metadata.resourceVersion": "assigned by the API server",
    "metadata.generation": "assigned by the API server",
    "metadata.creationTimestamp": "assigned by the API server",
    "metadata.managedFields": "server-side apply bookkeeping",
    "metadata.finalizers": "added by controllers (e.g. kubernetes.io/pvc-protection)",
    "metadata.annotations.kubectl.kubernetes.io/last-applied-configuration": "client-side apply",
    "metadata.annotations.deployment.kubernetes.io/revision": "Deployment controller",
    "metadata.annotations.pv.kubernetes.io/bind-completed": "PV controller",
    "metadata.annotations.pv.kubernetes.io/bound-by-controller": "PV controller",
    "metadata.annotations.volume.beta.kubernetes.io/storage-provisioner": "PV controller",
    "metadata.annotations.volume.kubernetes.io/storage-provisioner": "PV controller",
    "metadata.labels.kubernetes.io/metadata.name": "added to Namespaces by the API server",
    "status": "written by controllers",
    "spec.clusterIP": "allocated by the API server",
    "spec.clusterIPs": "allocated by the API server",
    "spec.volumeName": "set when the PVC binds",
    "spec.template.metadata.annotations.kubectl.kubernetes.io/restartedAt": "kubectl rollout restart",
}

# Keys that identify items of a list, by the list's field name.
LIST_KEYS: dict[str, str] = {
    "containers": "name",
    "initContainers": "name",
    "env": "name",
    "ports": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "envFrom": "",  # matched by position
}


@dataclass(frozen=True)
class Drift:
    ref: ObjectRef
    path: str
    desired: Any
    live: Any
    kind: str = "changed"  # changed | missing-object | missing-field

    def __str__(self) -> str:
        if self.kind == "missing-object":
            return f"{self.ref}: in the render but not in the cluster"
        if self.kind == "missing-field":
            return f"{self.ref}: {self.path} is {self.desired!r} in the render but unset live"
        return f"{self.ref}: {self.path} is {self.live!r} live, {self.desired!r} in the render"


def is_ignored(path: str) -> bool:
    return any(path == pattern or path.startswith(pattern + ".") for pattern in IGNORED)


def _scalar(value: Any) -> Any:
    # Ports and quantities may come back as int where the manifest had a string.
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int | float):
        return str(value)
    return value


def compare(desired: Any, live: Any, ref: ObjectRef, path: str = "") -> list[Drift]:
    """Differences in the fields ``desired`` sets; extra live fields are ignored."""
    if path and is_ignored(path):
        return []
    if isinstance(desired, Mapping):
        if not isinstance(live, Mapping):
            return [Drift(ref, path or ".", desired, live, "missing-field" if live is None else "changed")]
        drifts: list[Drift] = []
        for key, value in desired.items():
            child = f"{path}.{key}" if path else str(key)
            if key not in live:
                if not is_ignored(child) and value not in (None, {}, []):
                    drifts.append(Drift(ref, child, value, None, "missing-field"))
                continue
            drifts += compare(value, live[key], ref, child)
        return drifts
    if isinstance(desired, list):
        if not isinstance(live, list):
            return [Drift(ref, path, desired, live, "missing-field" if live is None else "changed")]
        field = path.rsplit(".", 1)[-1]
        key = LIST_KEYS.get(field, "")
        if key and all(isinstance(i, Mapping) and key in i for i in desired):
            live_by_key = {i.get(key): i for i in live if isinstance(i, Mapping)}
            drifts = []
            for item in desired:
                name = item[key]
                child = f"{path}[{name}]"
                if name not in live_by_key:
                    drifts.append(Drift(ref, child, item, None, "missing-field"))
                else:
                    drifts += compare(item, live_by_key[name], ref, child)
            return drifts
        if len(desired) != len(live):
            return [Drift(ref, path, desired, live)]
        drifts = []
        for index, (want, have) in enumerate(zip(desired, live, strict=True)):
            drifts += compare(want, have, ref, f"{path}[{index}]")
        return drifts
    if _scalar(desired) != _scalar(live):
        return [Drift(ref, path, desired, live)]
    return []


def diff_objects(desired: Iterable[Mapping[str, Any]],
                 fetch: Callable[[Mapping[str, Any]], Mapping[str, Any] | None]) -> list[Drift]:
    """Compare each rendered object with what ``fetch`` returns for it (None: absent)."""
    drifts: list[Drift] = []
    for obj in desired:
        ref = ObjectRef.of(obj)
        live = fetch(obj)
        if live is None:
            drifts.append(Drift(ref, "", None, None, "missing-object"))
            continue
        body = {k: v for k, v in obj.items() if k not in ("apiVersion", "kind")}
        register_secret_settings([obj, {**live, "kind": obj.get("kind")}])
        drifts += [masked(d) for d in compare(body, live, ref)]
    return drifts


_ENV_VALUE = re.compile(r"env\[(?P<name>[^\]]+)\]\.value$")


def masked(drift: Drift) -> Drift:
    """The drift with secret-valued settings (ConfigMap keys, env values) masked: the
    path names the key, the values print as the mask."""
    def mask(value: Any) -> Any:
        path = drift.path
        env = _ENV_VALUE.search(path)
        if env:
            return mask_setting(env["name"], value)
        if drift.ref.kind == "ConfigMap" and path.startswith(("data.", "binaryData.")):
            return mask_setting(path.split(".", 1)[1], value)
        if drift.ref.kind == "ConfigMap" and path in ("data", "binaryData", ".") and \
                isinstance(value, Mapping):
            section = value if path != "." else value.get("data")
            if isinstance(section, Mapping):
                hidden = {k: mask_setting(str(k), v) for k, v in section.items()}
                return hidden if path != "." else {**value, "data": hidden}
        return mask_secret_settings(value)
    return replace(drift, desired=mask(drift.desired), live=mask(drift.live))


def render_at(revision: str, snapshot: str = "manifests/rendered/mastodon.yaml") -> list[dict[str, Any]]:
    """The committed render at a git revision (e.g. the revision ArgoCD deployed)."""
    try:
        done = subprocess.run(["git", "-C", str(project_root()), "show", f"{revision}:{snapshot}"],
                              capture_output=True, text=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise BadInput(f"cannot run git to read {snapshot} at {revision}: {exc}") from None
    if done.returncode != 0:
        reason = (done.stderr.strip().splitlines() or ["unknown error"])[-1]
        raise BadInput(f"no render {snapshot} at revision {revision!r}: {reason}")
    try:
        return [doc for doc in yaml.load_all(done.stdout, Loader=SAFE_LOADER) if isinstance(doc, dict)]
    except yaml.YAMLError as exc:
        raise BadInput(f"{snapshot} at {revision} is not valid YAML: {exc}") from None
