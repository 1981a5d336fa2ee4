"""Offline inputs: a rendered YAML file, a directory of YAML files, a kustomize
directory rendered on the fly (``kubectl kustomize --enable-helm``), or stdin.

Every problem with the input is a one-line :class:`BadInput`.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TextIO

from tootcheck.errors import BadInput
from tootcheck.policy.bundle import Bundle, K8sObject, parse_stream, secret_values_of
from tootcheck.policy.splitparse import parse_file
from tootcheck.redaction import register_values
from tootcheck.rendering import display_path, helm_charts, kustomization_file, render

YAML_SUFFIXES = (".yaml", ".yml", ".json")
RENDER_TIMEOUT_S = 180.0


def uses_helm_charts(directory: Path) -> bool:
    """Whether the kustomization (or a local base/component it pulls in) has helmCharts."""
    return bool(helm_charts(directory))


def render_kustomize(directory: Path, *, tools_bin: Path | None = None,
                     search_path: str | None = None) -> str:
    """``kubectl kustomize --enable-helm <dir>``'s output (see tootcheck.rendering.render)."""
    return render(directory, timeout=RENDER_TIMEOUT_S, tools_bin=tools_bin, search_path=search_path)


def load_path(arg: str, *, default_namespace: str = "mastodon", stdin: TextIO | None = None,
              tools_bin: Path | None = None, search_path: str | None = None
              ) -> list[K8sObject]:
    if arg == "-":
        try:
            text = (stdin or sys.stdin).read()
        except UnicodeDecodeError as exc:
            raise BadInput(f"<stdin>: cannot read: {exc}") from None
        return parse_stream(text, "<stdin>", default_namespace=default_namespace)
    path = Path(arg)
    if not path.exists():
        raise BadInput(f"{arg}: no such file or directory")
    shown = display_path(path)
    if path.is_file():  # read as a stream, one document at a time
        return parse_file(path, shown, default_namespace=default_namespace)
    if not path.is_dir():  # a pipe such as <(kubectl kustomize ...) or /dev/stdin
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
    try:
        files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix in YAML_SUFFIXES)
    except OSError as exc:
        raise BadInput(f"{shown}: cannot list: {exc.strerror}") from None
    if not files:
        raise BadInput(f"{shown}: no kustomization and no YAML files in this directory")
    out: list[K8sObject] = []
    for f in files:
        out.extend(load_path(str(f), default_namespace=default_namespace))
    return out


def split_overlays(given: Bundle | Sequence[K8sObject],
                   is_overlay: Callable[[str], bool]) -> list[Bundle]:
    """Inputs deployed together form one bundle; each overlay source (an alternative to
    the reference) is a bundle of its own, labelled with its name, when both are given.
    A bundle given with nothing to split is used as it is (its index is not built twice)."""
    objects = given.objects if isinstance(given, Bundle) else given
    overlay = {src: is_overlay(src) for src in {o.source for o in objects}}  # per source
    overlays = [o for o in objects if overlay[o.source]]
    shared = [o for o in objects if not overlay[o.source]]
    if not overlays or not shared:
        return [given if isinstance(given, Bundle) else Bundle(objects)]
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
        register_values(secret_values_of(found))  # never echoed by any report
    return Bundle(objects, mode="offline", label=label)
