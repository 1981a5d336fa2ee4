"""Reading the kind manifests, their kustomizations and their committed renders (no cluster).

Shared by the tests in this directory. Everything here is plain data access: which files
exist, what each kustomization references, the rendered objects of each snapshot, and a
YAML loader that keeps Authentik's blueprint tags (``!Env``, ``!Find``...) as values.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from tests import REPO_ROOT, load_all
from tootcheck.kube.apply import SAFE_LOADER
from tootcheck.rendering import INFRA_SNAPSHOTS, Snapshot

MANIFESTS = REPO_ROOT / "manifests"
KIND_CONFIG = MANIFESTS / "kind" / "cluster.yaml"
# The trees these tests cover (every YAML file in them, chart caches excluded).
ROOTS = (MANIFESTS / "kind", MANIFESTS / "infra", MANIFESTS / "overlays")
RENDERED = MANIFESTS / "rendered"
REFERENCE_RENDER = RENDERED / "mastodon.yaml"
OWN_SCHEMAS = Path(__file__).parent / "schemas"


# The renders these manifests own (the reference's own snapshot, mastodon.yaml, is
# checked by tests/test_render.py); one list, kept by tootcheck.rendering for `make render`.
SNAPSHOTS: tuple[Snapshot, ...] = INFRA_SNAPSHOTS
SNAPSHOT_BY_NAME = {s.name: s for s in SNAPSHOTS}

# Directories owned by the mail/federation helper; their files are covered by the same
# parse/schema/pin tests when present, but are not required to exist.
PEER_DIRS = (MANIFESTS / "infra" / "mailpit", MANIFESTS / "infra" / "fediverse-peer")
MAIL_FEDERATION_PATCH = MANIFESTS / "overlays" / "kind" / "patches" / "mail-federation-env.yaml"


def rel(path: Path) -> str:
    return path.relative_to(REPO_ROOT).as_posix()


def yaml_files() -> list[Path]:
    """Every YAML file under the covered trees, chart caches (charts/) excluded."""
    out: list[Path] = []
    for root in ROOTS:
        for path in sorted(root.rglob("*")):
            if path.suffix in (".yaml", ".yml") and "charts" not in path.relative_to(root).parts:
                out.append(path)
    return out


def load_docs(path: Path) -> list[Any]:
    """The documents of a YAML file (Authentik tags kept), empty documents dropped."""
    return [d for d in yaml.load_all(path.read_text(), Loader=TagLoader) if d is not None]


def kustomization_dirs() -> list[Path]:
    return sorted(p.parent for root in ROOTS for p in root.rglob("kustomization.yaml")
                  if "charts" not in p.relative_to(root).parts)


@cache
def kustomization(directory: Path) -> dict[str, Any]:
    return yaml.safe_load((directory / "kustomization.yaml").read_text()) or {}


@dataclass(frozen=True)
class References:
    """What one kustomization points at, split by how kustomize uses it."""

    resources: tuple[Path, ...]  # files holding complete objects
    bases: tuple[Path, ...]  # directories (other kustomizations)
    patches: tuple[Path, ...]
    values: tuple[Path, ...]  # Helm values files
    generated: tuple[Path, ...]  # configMapGenerator inputs


def references(directory: Path) -> References:
    data = kustomization(directory)
    resources, bases = [], []
    for entry in data.get("resources") or []:
        target = (directory / entry).resolve()
        (bases if target.is_dir() else resources).append(target)
    patches = [(directory / p["path"]).resolve() for p in data.get("patches") or [] if "path" in p]
    values = [(directory / c["valuesFile"]).resolve() for c in data.get("helmCharts") or []
              if c.get("valuesFile")]
    generated = []
    for gen in data.get("configMapGenerator") or []:
        for item in gen.get("files") or []:
            generated.append((directory / str(item).split("=", 1)[-1]).resolve())
    return References(tuple(resources), tuple(bases), tuple(patches), tuple(values),
                      tuple(generated))


# ------------------------------------------------------------------------------ renders


@cache
def _parsed(path: Path) -> tuple[dict[str, Any], ...]:
    return tuple(d for d in load_all(path.read_text()) if d)


def rendered(name: str) -> list[dict[str, Any]]:
    """The objects of manifests/rendered/<name>.yaml (parsed once per session: do not mutate)."""
    return list(_parsed(RENDERED / f"{name}.yaml"))


def reference() -> list[dict[str, Any]]:
    return list(_parsed(REFERENCE_RENDER))


def find(objects: list[dict[str, Any]], kind: str, name: str,
         namespace: str | None = None) -> dict[str, Any]:
    for obj in objects:
        meta = obj.get("metadata") or {}
        if obj.get("kind") == kind and meta.get("name") == name and (
                namespace is None or meta.get("namespace") == namespace):
            return obj
    raise AssertionError(f"no {kind} {namespace + '/' if namespace else ''}{name} in the render")


def of_kind(objects: list[dict[str, Any]], *kinds: str) -> list[dict[str, Any]]:
    return [o for o in objects if o.get("kind") in kinds]


def pod_spec(obj: dict[str, Any]) -> dict[str, Any] | None:
    kind = obj.get("kind")
    spec = obj.get("spec") or {}
    if kind == "Pod":
        return spec
    if kind == "CronJob":
        return spec.get("jobTemplate", {}).get("spec", {}).get("template", {}).get("spec")
    if kind in ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"):
        return spec.get("template", {}).get("spec")
    return None


def containers(obj: dict[str, Any]) -> Iterator[dict[str, Any]]:
    spec = pod_spec(obj) or {}
    for key in ("initContainers", "containers", "ephemeralContainers"):
        yield from spec.get(key) or []


def configmap_value(objects: list[dict[str, Any]], name: str, key: str) -> str:
    return str(find(objects, "ConfigMap", name)["data"][key])


# ------------------------------------------------------------------------- rendering


def object_key(obj: dict[str, Any]) -> tuple[str, str, str, str]:
    meta = obj.get("metadata") or {}
    return (str(obj.get("apiVersion")), str(obj.get("kind")), str(meta.get("namespace", "")),
            str(meta.get("name")))


# --------------------------------------------------------------- Authentik blueprint tags


@dataclass(frozen=True)
class Tag:
    """A YAML tag Authentik resolves when it applies a blueprint (``!Env X`` -> Tag('!Env', 'X'))."""

    tag: str
    value: Any


class TagLoader(SAFE_LOADER):  # type: ignore[misc]
    """SafeLoader that keeps any ``!Tag`` node as a :class:`Tag` instead of failing."""


def _construct_tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> Tag:
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    return Tag("!" + suffix, value)


TagLoader.add_multi_constructor("!", _construct_tag)
