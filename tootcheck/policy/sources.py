"""Offline inputs: a rendered YAML file, a directory of YAML files, a kustomize
directory rendered on the fly (``kubectl kustomize --enable-helm``), or stdin.

Every problem with the input is a one-line :class:`BadInput`.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TextIO

import yaml

from tootcheck.errors import BadInput
from tootcheck.kube import tools
from tootcheck.policy.bundle import Bundle, K8sObject, parse_stream
from tootcheck.settings import REPO_ROOT

KUSTOMIZATION_FILES = ("kustomization.yaml", "kustomization.yml", "Kustomization")
YAML_SUFFIXES = (".yaml", ".yml", ".json")
RENDER_TIMEOUT_S = 180.0


def display_path(path: Path) -> str:
    """Repo-relative posix path when inside the repository (stable in reports)."""
    try:
        return path.resolve().relative_to(REPO_ROOT).as_posix()
    except ValueError:
        return str(path)


def kustomization_file(directory: Path) -> Path | None:
    for name in KUSTOMIZATION_FILES:
        if (directory / name).is_file():
            return directory / name
    return None


def uses_helm_charts(directory: Path, _seen: set[Path] | None = None) -> bool:
    """Whether the kustomization (or a local base/component it pulls in) has helmCharts."""
    seen = _seen if _seen is not None else set()
    directory = directory.resolve()
    if directory in seen:
        return False
    seen.add(directory)
    kfile = kustomization_file(directory)
    if kfile is None:
        return False
    try:
        data = yaml.safe_load(kfile.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise BadInput(f"{display_path(kfile)}: not valid YAML: "
                       f"{' '.join(str(exc).split())[:160]}") from None
    if not isinstance(data, dict):
        raise BadInput(f"{display_path(kfile)}: not a kustomization (expected a mapping)")
    if data.get("helmCharts"):
        return True
    for entry in [*(data.get("resources") or []), *(data.get("components") or []),
                  *(data.get("bases") or [])]:
        sub = directory / str(entry)
        if "://" not in str(entry) and sub.is_dir() and uses_helm_charts(sub, seen):
            return True
    return False


def render_kustomize(directory: Path, *, tools_bin: Path | None = None,
                     search_path: str | None = None) -> str:
    """``kubectl kustomize [--enable-helm --helm-command <helm v3>] <dir>``'s output.

    Tools are looked up in .tools/bin, then on PATH (``search_path`` overrides PATH)."""
    tools_bin = tools_bin or tools.TOOLS_BIN
    kubectl = tools.resolve("kubectl", tools_bin, search_path)
    cmd = [str(kubectl), "kustomize"]
    if uses_helm_charts(directory):
        found = [f for f in tools.find("helm", tools_bin, search_path) if f.ok]
        if not found:
            others = "; ".join(f.describe() for f in tools.find("helm", tools_bin, search_path))
            raise BadInput(f"{display_path(directory)} has helmCharts and needs helm v3, but "
                           f"{others or 'no helm is on PATH nor in .tools/bin'} "
                           f"(run `make tools`)")
        cmd += ["--enable-helm", "--helm-command", str(found[0].path)]
    cmd.append(str(directory))
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=RENDER_TIMEOUT_S,
                              check=False)
    except subprocess.TimeoutExpired:
        raise BadInput(f"kubectl kustomize {display_path(directory)} did not finish in "
                       f"{RENDER_TIMEOUT_S:.0f}s") from None
    if proc.returncode != 0:
        lines = [line for line in proc.stderr.splitlines() if line.strip()]
        raise BadInput(f"kubectl kustomize {display_path(directory)} failed: "
                       f"{lines[-1] if lines else f'exit {proc.returncode}'}")
    return proc.stdout


def load_path(arg: str, *, default_namespace: str = "mastodon", stdin: TextIO | None = None,
              tools_bin: Path | None = None, search_path: str | None = None
              ) -> list[K8sObject]:
    if arg == "-":
        text = (stdin or sys.stdin).read()
        return parse_stream(text, "<stdin>", default_namespace=default_namespace)
    path = Path(arg)
    if not path.exists():
        raise BadInput(f"{arg}: no such file or directory")
    shown = display_path(path)
    if path.is_file():
        try:
            text = path.read_text()
        except (OSError, UnicodeDecodeError) as exc:
            raise BadInput(f"{shown}: cannot read: {getattr(exc, 'strerror', None) or exc}") \
                from None
        return parse_stream(text, shown, default_namespace=default_namespace)
    kfile = kustomization_file(path)
    if kfile is not None:
        text = render_kustomize(path, tools_bin=tools_bin, search_path=search_path)
        return parse_stream(text, shown, default_namespace=default_namespace,
                            artifact=display_path(kfile))
    files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix in YAML_SUFFIXES)
    if not files:
        raise BadInput(f"{shown}: no kustomization and no YAML files in this directory")
    out: list[K8sObject] = []
    for f in files:
        out.extend(load_path(str(f), default_namespace=default_namespace))
    return out


def split_overlays(objects: Sequence[K8sObject], is_overlay: Callable[[str], bool]
                   ) -> list[Bundle]:
    """Inputs deployed together form one bundle; each overlay source (an alternative to
    the reference) is a bundle of its own, labelled with its name, when both are given."""
    overlays = [o for o in objects if is_overlay(o.source)]
    shared = [o for o in objects if not is_overlay(o.source)]
    if not overlays or not shared:
        return [Bundle(objects)]
    by_source: dict[str, list[K8sObject]] = {}
    for o in overlays:
        by_source.setdefault(o.source, []).append(o)
    return [Bundle(shared)] + [Bundle(objs, label=Path(src).stem, sources=[src])
                               for src, objs in by_source.items()]


def load_bundle(args: Sequence[str], *, default_namespace: str = "mastodon",
                stdin: TextIO | None = None, tools_bin: Path | None = None,
                search_path: str | None = None, label: str = "") -> Bundle:
    """One bundle of everything the arguments name (references resolve across them)."""
    if not args:
        raise BadInput("no input: give a file, a directory, a kustomize directory or - for stdin")
    objects: list[K8sObject] = []
    for arg in args:
        found = load_path(arg, default_namespace=default_namespace, stdin=stdin,
                          tools_bin=tools_bin, search_path=search_path)
        if not found:
            raise BadInput(f"{arg}: no Kubernetes objects in it")
        objects.extend(found)
    return Bundle(objects, mode="offline", label=label)
