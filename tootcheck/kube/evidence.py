"""Evidence from a cluster for a failed test: files, censored, never fatal.

:func:`collect` runs every collector against a Kube-like object and returns the
files to write (name -> text) plus the collector errors. Each collector is a
plain function, so a fake API object exercises it; a collector that raises is
recorded in ``collector-errors.txt`` and the others still run. :func:`write_bundle`
runs :func:`tootcheck.redaction.redact` over every file and additionally blanks
the values of every Secret it lists. What a bundle holds:

* ``pods/<namespace>/<pod>/<container>.log`` (and ``.previous.log`` after a
  restart), for init containers, native sidecars and containers alike;
* ``events.txt``: events of every collected namespace, oldest first;
* ``not-ready/<Kind>_<namespace>_<name>.yaml``: every workload, pod, PVC, Job and
  cert-manager object that is not ready, with the verdict, status and its events;
* ``cert-manager.yaml``: Certificates, CertificateRequests, Issuers and
  ClusterIssuers with their status;
* ``secrets.yaml``: Secrets by name, type and keys (values blanked);
* ``render/<name>.yaml``: the renders the bring-up applied;
* ``logs/traefik.log``, ``logs/authentik.log``: those components' pods, for a quick look;
* ``index.txt``: what was collected, and ``collector-errors.txt`` when any failed.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tootcheck.kube.readiness import readiness
from tootcheck.kube.waits import format_event, recent_events, sorted_events
from tootcheck.redaction import MASK, mask_secret_settings, redact, secret_setting_values

LOG_TAIL_LINES = 2000
SKIP_NAMESPACES = ("kube-public", "kube-node-lease")
QUICK_LOOK = {"traefik": "traefik", "authentik": "authentik"}  # log name -> namespace/name hint

WORKLOAD_KINDS: tuple[tuple[str, str], ...] = (
    ("apps/v1", "Deployment"), ("apps/v1", "StatefulSet"), ("apps/v1", "DaemonSet"),
    ("batch/v1", "Job"), ("v1", "Pod"), ("v1", "PersistentVolumeClaim"),
)
CERT_MANAGER_KINDS: tuple[tuple[str, str], ...] = (
    ("cert-manager.io/v1", "Certificate"), ("cert-manager.io/v1", "CertificateRequest"),
    ("cert-manager.io/v1", "Issuer"), ("cert-manager.io/v1", "ClusterIssuer"),
)


@dataclass
class Source:
    """What a bundle is collected from: a Kube-like handle, the namespaces to look
    at (None: all but kube-public/kube-node-lease), and the renders applied."""

    kube: Any
    namespaces: Sequence[str] | None = None
    renders: Mapping[str, Path] = field(default_factory=dict)


@dataclass
class Collected:
    files: dict[str, str] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)


# ------------------------------------------------------------------- naming


def safe_name(nodeid: str, limit: int = 150) -> str:
    """A directory name for a test id: ``suites/https/test_https.py::test_x[kind://t]``
    becomes ``suites.https.test_https.py__test_x_kind_t_``."""
    path, _, rest = nodeid.partition("::")
    path = re.sub(r"[^A-Za-z0-9._-]+", "_", path.replace("/", "."))
    rest = re.sub(r"[^A-Za-z0-9.-]+", "_", rest.replace("::", "__")) if rest else ""
    text = (f"{path}__{rest}" if rest else path).strip("._") or "test"
    return text[:limit]


def bundle_dir(reports_dir: Path, nodeid: str) -> Path:
    return reports_dir / "evidence" / safe_name(nodeid)


def _path_part(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text) or "_"


def _dump(obj: Any) -> str:
    return yaml.safe_dump(obj, sort_keys=False, default_flow_style=False, width=120)


# --------------------------------------------------------------- collectors


def namespaces_of(source: Source) -> list[str]:
    if source.namespaces is not None:
        return list(source.namespaces)
    return [n for n in source.kube.namespaces() if n not in SKIP_NAMESPACES]


def container_names(pod: Mapping[str, Any]) -> list[tuple[str, int, str]]:
    """(name, restartCount, why-no-log) of init containers (sidecars included) and
    containers; why-no-log is empty when the container has run and has a log."""
    status = pod.get("status") or {}
    statuses = {cs.get("name"): cs for key in ("initContainerStatuses", "containerStatuses")
                for cs in status.get(key) or []}
    out = []
    for key in ("initContainers", "containers"):
        for c in (pod.get("spec") or {}).get(key) or []:
            cs = statuses.get(c["name"]) or {}
            state = cs.get("state") or {}
            ran = "running" in state or "terminated" in state or bool(
                (cs.get("lastState") or {}).get("terminated"))
            why = "" if ran else ("container never started: " + (
                ((state.get("waiting") or {}).get("reason")) or "no status yet"))
            out.append((c["name"], int(cs.get("restartCount", 0) or 0), why))
    return out


def collect_pod_logs(source: Source, namespaces: Sequence[str], out: Collected) -> None:
    kube = source.kube
    for namespace in namespaces:
        try:
            pods = kube.list("v1", "Pod", namespace)
        except Exception as exc:
            out.errors.append(f"pods in {namespace}: {type(exc).__name__}: {exc}")
            continue
        for pod in pods:
            name = pod["metadata"]["name"]
            for container, restarts, why in container_names(pod):
                base = f"pods/{_path_part(namespace)}/{_path_part(name)}/{_path_part(container)}"
                if why:
                    out.files[f"{base}.log"] = f"({why})\n"
                    continue
                try:
                    out.files[f"{base}.log"] = kube.pod_log(namespace, name, container,
                                                            tail_lines=LOG_TAIL_LINES)
                except Exception as exc:
                    out.errors.append(f"log {namespace}/{name}/{container}: {type(exc).__name__}: {exc}")
                if restarts:
                    try:
                        out.files[f"{base}.previous.log"] = kube.pod_log(
                            namespace, name, container, previous=True, tail_lines=LOG_TAIL_LINES)
                    except Exception as exc:
                        out.errors.append(f"previous log {namespace}/{name}/{container}: "
                                          f"{type(exc).__name__}: {exc}")


def quick_look_logs(out: Collected) -> None:
    """Concatenate the Traefik and Authentik pod logs into logs/<component>.log."""
    for label, namespace in QUICK_LOOK.items():
        parts = [f"==> {path} <==\n{text}" for path, text in sorted(out.files.items())
                 if path.startswith("pods/") and (path.split("/")[1] == namespace or label in path)
                 and path.endswith(".log")]
        if parts:
            out.files[f"logs/{label}.log"] = "\n".join(parts)


def collect_events(source: Source, namespaces: Sequence[str], out: Collected) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    for namespace in namespaces:
        try:
            events.extend(source.kube.list("v1", "Event", namespace))
        except Exception as exc:
            out.errors.append(f"events in {namespace}: {type(exc).__name__}: {exc}")
    out.files["events.txt"] = "\n".join(
        f"{(e.get('metadata') or {}).get('namespace', '')} {format_event(e)}"
        for e in sorted_events(events)) + "\n"
    return events


def collect_not_ready(source: Source, namespaces: Sequence[str], events: Sequence[Mapping[str, Any]],
                      out: Collected) -> None:
    kinds = [*WORKLOAD_KINDS, *CERT_MANAGER_KINDS]
    for api_version, kind in kinds:
        scopes: list[str | None] = [None] if kind == "ClusterIssuer" else list(namespaces)
        for namespace in scopes:
            try:
                objs = source.kube.list(api_version, kind, namespace)
            except Exception as exc:
                out.errors.append(f"{kind} in {namespace or 'cluster'}: {type(exc).__name__}: {exc}")
                break  # a kind the cluster does not serve fails the same way everywhere
            for obj in objs:
                verdict = readiness(obj)
                if verdict.ready:
                    continue
                meta = obj.get("metadata") or {}
                name = f"{kind}_{meta.get('namespace') or 'cluster'}_{meta.get('name')}"
                described = {
                    "object": f"{kind}/{meta.get('namespace', '')}/{meta.get('name')}".replace("//", "/"),
                    "verdict": verdict.reason,
                    "labels": meta.get("labels") or {},
                    "spec": mask_secret_settings(_spec_summary(obj)),
                    "status": obj.get("status") or {},
                    "events": recent_events(events, [meta.get("name", "")], limit=20),
                }
                out.files[f"not-ready/{_path_part(name)}.yaml"] = _dump(described)


def _spec_summary(obj: Mapping[str, Any]) -> Any:
    """The spec, minus pod templates' env values (they can hold configuration)."""
    spec = obj.get("spec") or {}
    if obj.get("kind") in ("Pod", "Deployment", "StatefulSet", "DaemonSet", "Job"):
        return {k: v for k, v in spec.items() if k not in ("template",)} | (
            {"template": "(pod template omitted; see render/)"} if "template" in spec else {})
    return spec


def collect_cert_manager(source: Source, namespaces: Sequence[str], out: Collected) -> None:
    found: dict[str, list[dict[str, Any]]] = {}
    for api_version, kind in CERT_MANAGER_KINDS:
        scopes: list[str | None] = [None] if kind == "ClusterIssuer" else list(namespaces)
        for namespace in scopes:
            try:
                objs = source.kube.list(api_version, kind, namespace)
            except Exception as exc:
                out.errors.append(f"cert-manager {kind}: {type(exc).__name__}: {exc}")
                break
            for obj in objs:
                meta = obj.get("metadata") or {}
                found.setdefault(kind, []).append({
                    "name": meta.get("name"), "namespace": meta.get("namespace"),
                    "spec": obj.get("spec") or {}, "status": obj.get("status") or {}})
    out.files["cert-manager.yaml"] = _dump(found) if found else "# no cert-manager objects found\n"


def censor_secret(secret: Mapping[str, Any]) -> dict[str, Any]:
    meta = secret.get("metadata") or {}
    keys = sorted({*(secret.get("data") or {}), *(secret.get("stringData") or {})})
    return {"name": meta.get("name"), "namespace": meta.get("namespace"),
            "type": secret.get("type"), "keys": {k: MASK for k in keys}}


def collect_secrets(source: Source, namespaces: Sequence[str], out: Collected) -> list[str]:
    """Secrets listed with values blanked; returns every value seen (decoded and
    raw) so the writer can mask them wherever else they appear."""
    import base64

    listed, values = [], []
    for namespace in namespaces:
        try:
            secrets = source.kube.list("v1", "Secret", namespace)
        except Exception as exc:
            out.errors.append(f"secrets in {namespace}: {type(exc).__name__}: {exc}")
            continue
        for secret in secrets:
            listed.append(censor_secret(secret))
            for raw in (secret.get("data") or {}).values():
                values.append(str(raw))
                with contextlib.suppress(ValueError, UnicodeDecodeError):
                    values.append(base64.b64decode(raw).decode())
            values.extend(str(v) for v in (secret.get("stringData") or {}).values())
    out.files["secrets.yaml"] = _dump(listed)
    return values


def collect_renders(source: Source, out: Collected) -> list[str]:
    """The applied renders; returns the values of their secret-valued settings
    (ConfigMap keys, env values) so the writer masks them."""
    values: list[str] = []
    for name, path in source.renders.items():
        try:
            text = Path(path).read_text()
        except OSError as exc:
            out.errors.append(f"render {name}: {exc}")
            continue
        out.files[f"render/{_path_part(name)}.yaml"] = text
        with contextlib.suppress(yaml.YAMLError):
            values += secret_setting_values(list(yaml.safe_load_all(text)))
    return values


def collect_configmap_secrets(source: Source, namespaces: Sequence[str], out: Collected) -> list[str]:
    """Values of secret-valued ConfigMap keys in the cluster (to mask in logs and objects)."""
    values: list[str] = []
    for namespace in namespaces:
        try:
            configmaps = source.kube.list("v1", "ConfigMap", namespace)
        except Exception as exc:
            out.errors.append(f"configmaps in {namespace}: {type(exc).__name__}: {exc}")
            continue
        values += secret_setting_values([{**cm, "kind": "ConfigMap"} for cm in configmaps])
    return values


def collect(source: Source) -> tuple[Collected, list[str]]:
    """Every collector; returns the files/errors and the secret values to blank."""
    out = Collected()
    secret_values: list[str] = []
    try:
        namespaces = namespaces_of(source)
    except Exception as exc:
        out.errors.append(f"namespaces: {type(exc).__name__}: {exc}")
        namespaces = []
    steps: list[tuple[str, Callable[[], Any]]] = [
        ("pod logs", lambda: collect_pod_logs(source, namespaces, out)),
        ("quick-look logs", lambda: quick_look_logs(out)),
    ]
    events: list[dict[str, Any]] = []

    def run_events() -> None:
        events.extend(collect_events(source, namespaces, out))

    steps += [
        ("events", run_events),
        ("not-ready objects", lambda: collect_not_ready(source, namespaces, events, out)),
        ("cert-manager", lambda: collect_cert_manager(source, namespaces, out)),
        ("secrets", lambda: secret_values.extend(collect_secrets(source, namespaces, out))),
        ("renders", lambda: secret_values.extend(collect_renders(source, out))),
        ("configmaps", lambda: secret_values.extend(
            collect_configmap_secrets(source, namespaces, out))),
    ]
    for label, step in steps:
        try:
            step()
        except Exception as exc:  # a broken collector never stops the others
            out.errors.append(f"{label}: {type(exc).__name__}: {exc}")
    return out, secret_values


def censor(text: str, secret_values: Sequence[str]) -> str:
    """Registered secrets (redact) and every value of every listed Secret."""
    text = redact(text)
    for value in sorted({v for v in secret_values if len(v) >= 6}, key=len, reverse=True):
        text = text.replace(value, MASK)
    return text


@dataclass
class Snapshot:
    """A cluster's evidence, collected once and written into one or more bundles."""

    collected: Collected
    secret_values: list[str]


def take_snapshot(source: Source) -> Snapshot:
    try:
        collected, values = collect(source)
    except Exception as exc:  # collect() guards each step; this is the last resort
        collected, values = Collected(errors=[f"collection aborted: {type(exc).__name__}: {exc}"]), []
    return Snapshot(collected, values)


def write_bundle(dest: Path, failure: str, snapshot: Snapshot | None, *, note: str = "") -> list[str]:
    """Write the bundle for one failed test; returns the relative file names.
    Collection problems are written next to the evidence, never raised."""
    files: dict[str, str] = {"failure.txt": failure}
    errors: list[str] = []
    secret_values: list[str] = []
    if snapshot is None:
        files["index.txt"] = f"no cluster access in this run{f': {note}' if note else ''}\n"
    else:
        files.update(snapshot.collected.files)
        errors = list(snapshot.collected.errors)
        secret_values = snapshot.secret_values
        files["index.txt"] = "\n".join(sorted([*files, "index.txt"])) + "\n"
    written = []
    for name, text in files.items():
        path = dest / name
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(censor(text, secret_values))
            written.append(name)
        except OSError as exc:
            errors.append(f"write {name}: {exc}")
    if errors:
        try:
            dest.mkdir(parents=True, exist_ok=True)
            (dest / "collector-errors.txt").write_text(censor("\n".join(errors) + "\n", secret_values))
            written.append("collector-errors.txt")
        except OSError:
            pass  # nowhere left to record it; the test's own failure stands
    return written
