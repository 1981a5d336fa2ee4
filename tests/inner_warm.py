"""The inner sessions' fork server imports this: it loads the installed pytest plugins
(tootcheck among them) and what they load in a session through pytest's own
assertion-rewriting import hook, configured as this project's pytest configures it.

A fresh ``python -m pytest`` marks every plugin's distribution for assertion rewriting
as it starts, imports the plugins rewritten, and warns about a marked module that was
imported before, unless pytest's rewriting hook loaded it. So a session forked from the
server finds these modules loaded and rewritten, exactly as it would have made them
itself, and skips importing them (about a quarter of a second of CPU per session, of
which hypothesis, imported by its plugin as every session ends, is most).
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import pkgutil
import sys

from _pytest.assertion import AssertionState
from _pytest.assertion.rewrite import AssertionRewritingHook, assertstate_key
from _pytest.config import _iter_rewritable_modules, get_config

# Loaded by hypothesis's plugin as a session ends, and by an active tootcheck session: its
# hooks (which pull in the rest) and, as it collects, the live checks' modules. The
# plugins' entry points are found below.
ALSO = ("_hypothesis_pytestplugin", "hypothesis", "hypothesis.internal.observability")
HOOKS = "tootcheck.hooks"
CHECKS = "tootcheck.checks.registry"


def _plugins() -> tuple[set[str], list[str]]:
    """The names pytest marks for rewriting, and the plugin modules it loads."""
    names: set[str] = set()
    modules: list[str] = []
    for dist in importlib.metadata.distributions():
        points = [ep for ep in dist.entry_points if ep.group == "pytest11"]
        if points:
            names.update(_iter_rewritable_modules(str(f) for f in dist.files or []))
            names.update(ep.module.partition(".")[0] for ep in points)  # editable installs
            modules.extend(ep.module for ep in points)
    return names, modules


def _hook() -> AssertionRewritingHook:
    config = get_config()
    # As pyproject.toml's [tool.pytest.ini_options] has it: the rewritten code depends on
    # enable_assertion_pass_hook (the guard counting passing asserts relies on it).
    config._inicache.update(python_files=["test_*.py", "*_test.py"],
                            enable_assertion_pass_hook=True)
    config.stash[assertstate_key] = AssertionState(config, "rewrite")
    return AssertionRewritingHook(config)


def warm() -> None:
    names, modules = _plugins()
    hook = _hook()
    hook.mark_rewrite(*names)
    sys.meta_path.insert(0, hook)
    try:
        for name in (*modules, *ALSO, HOOKS):
            importlib.import_module(name)
        package = sys.modules[HOOKS]
        for info in pkgutil.iter_modules(package.__path__, f"{HOOKS}."):
            importlib.import_module(info.name)
        for name in importlib.import_module(CHECKS).CHECK_MODULES:
            if importlib.util.find_spec(name) is not None:
                importlib.import_module(name)
    finally:
        sys.meta_path.remove(hook)


warm()
