"""The package's layers, bottom to top: the one place that says who may import whom.

A module may import modules of its own layer and of the layers below it, never
one above. Higher layers hand what a lower one needs down as arguments (the
rehearsal's render and images reach the bring-up as :class:`BringUpHooks`).
``tests/test_layers.py`` parses every module's imports and fails on an upward
import, and on an import cycle. docs/architecture.md describes each layer.

Each entry is a module name or a package prefix (``tootcheck.kube`` covers
``tootcheck.kube.*``); the longest matching entry wins. ``tootcheck`` itself covers
only the package's ``__init__``, so a new module must be placed here explicitly.
"""

from __future__ import annotations

LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    # Plain data, errors, bounded waiting, settings and secret handling: no I/O clients.
    ("base", ("tootcheck", "tootcheck.model", "tootcheck.errors", "tootcheck.waiting",
              "tootcheck.redaction", "tootcheck.settings", "tootcheck.secretgen",
              "tootcheck.versions", "tootcheck.layers", "tootcheck.config_file",
              "tootcheck.resources")),
    # Protocol clients of the services under test, and the target they are pointed at.
    ("clients", ("tootcheck.clients", "tootcheck.target")),
    # The cluster: kubernetes access, kind bring-up, rendering and the pinned tools.
    ("kube", ("tootcheck.kube", "tootcheck.rendering", "tootcheck.tools")),
    # Live checks, their persistence markers, drift, modes, the in-cluster peers'
    # names and the helpers the suite's own tests prove checks with.
    ("checks", ("tootcheck.checks", "tootcheck.drift", "tootcheck.modes", "tootcheck.peers",
                "tootcheck.testing")),
    # The policy gate: rules, engine, sources, outputs, and its live check.
    ("policy", ("tootcheck.policy",)),
    # The upgrade rehearsal: plan, run, downtime, verification.
    ("rehearsal", ("tootcheck.rehearsal",)),
    # The entry points: pytest plugin and hooks, command line, reports.
    ("entry", ("tootcheck.hooks", "tootcheck.plugin", "tootcheck.commands", "tootcheck.cli",
               "tootcheck.reporting")),
)

ROOT = "tootcheck"
LAYER_NAMES: tuple[str, ...] = tuple(name for name, _ in LAYERS)


def layer_of(module: str) -> str:
    """The layer ``module`` belongs to; ValueError when no entry covers it."""
    best: tuple[int, str] | None = None
    for name, prefixes in LAYERS:
        for prefix in prefixes:
            covers = module == prefix or (prefix != ROOT and module.startswith(prefix + "."))
            if covers and (best is None or len(prefix) > best[0]):
                best = (len(prefix), name)
    if best is None:
        raise ValueError(f"{module}: no layer in tootcheck/layers.py covers it")
    return best[1]


def rank(module: str) -> int:
    """0 for the bottom layer, growing upward."""
    return LAYER_NAMES.index(layer_of(module))


def upward(importer: str, imported: str) -> bool:
    """Whether ``importer`` importing ``imported`` points up the layers."""
    return rank(imported) > rank(importer)
