"""The pytest plugin: options, markers and the settings object. No logic here.

Registered through the ``pytest11`` entry point. Concern-specific hooks live in
``tootcheck/hooks/`` and are loaded below.

Option help style: lower-case, no trailing period, name the default.

Options another plugin also defines are namespaced ``--tootcheck-*`` (pytest-kind has
``--kubeconfig``, ``--cluster-name``, ``--keep-cluster``; pytest-base-url has
``--base-url``), so both load in one run.

**When the plugin is active.** Installed, it loads into every pytest run of the
environment; it only registers its options, markers and the ``settings`` fixture there.
Its run-changing hooks (the no-assertion and destructive guards, reports/ and
evidence, mode filtering, the policy gate's SARIF, ``--check-coverage``) load only when

1. a tootcheck config is found from pytest's rootdir upward (``tootcheck.toml``, or
   ``pyproject.toml`` with ``[tool.tootcheck]``; :mod:`tootcheck.config_file`), or
2. a tootcheck option is given on the command line (e.g. ``--target=kind``).

Otherwise the run is left exactly as it would be without tootcheck (tests/test_plugin_coexistence.py).
"""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

# The asserts in expect_ok/expect_fault are the suite's proofs: rewrite them so that the
# no-assertion guard counts them (editable installs are not rewritten otherwise).
pytest.register_assert_rewrite("tootcheck.testing")

from tootcheck import config_file  # noqa: E402
from tootcheck import settings as settings_mod  # noqa: E402
from tootcheck.errors import BadInput  # noqa: E402
from tootcheck.settings import Settings  # noqa: E402

# Loaded in pytest_configure, only when the plugin is active (see the module docstring).
HOOK_PLUGINS = [
    "tootcheck.hooks.modes",
    "tootcheck.hooks.evidence",
    "tootcheck.hooks.guards",
    "tootcheck.hooks.completeness",
    "tootcheck.hooks.reports",
    "tootcheck.hooks.policy",
    "tootcheck.hooks.cluster",
]

MARKERS = {
    "check(name)": "the live check (tootcheck.checks registry name) this test runs",
    "destructive": "deletes pods or upgrades; refused on clusters the suite did not create",
    "needs_target": "needs a target (kind or live); skipped with a reason when there is none",
    "policy": "a policy rule evaluated over manifests or live objects",
}


OPTION_DESTS: list[str] = []  # every option this plugin adds (activation rule 2)


class _Group:
    """An option group that remembers the dests it adds."""

    def __init__(self, group: pytest.OptionGroup) -> None:
        self.group = group

    def addoption(self, *names: str, **attrs: object) -> None:
        self.group.addoption(*names, **attrs)
        OPTION_DESTS.append(str(attrs.get("dest") or names[0].lstrip("-").replace("-", "_")))


def _group(parser: pytest.Parser, name: str, description: str) -> _Group:
    return _Group(parser.getgroup(name, description))


def pytest_addoption(parser: pytest.Parser) -> None:
    OPTION_DESTS.clear()
    target = _group(parser, "tootcheck-target", "tootcheck: the system under test")
    target.addoption("--target", choices=("none", "kind", "live"), default=None,
                     help="where the live suites point: none (default), kind, live")
    target.addoption("--tootcheck-base-url", dest="tootcheck_base_url", default=None,
                     help="https:// URL of an existing deployment (live target); sets --domain")
    target.addoption("--domain", default=None,
                     help="Mastodon LOCAL_DOMAIN (default kirchner.social)")
    target.addoption("--auth-host", default=None,
                     help="Authentik host name (default auth.kirchner.social)")
    target.addoption("--connect-address", default=None,
                     help="pin the host names to this address, e.g. 127.0.0.1 for kind")
    target.addoption("--https-port", type=int, default=None,
                     help="port behind https:// (default 443)")
    target.addoption("--http-port", type=int, default=None, help="port behind http:// (default 80)")
    target.addoption("--ca-file", default=None, help="PEM bundle to trust, for the suite only")
    target.addoption("--tootcheck-kubeconfig", dest="tootcheck_kubeconfig", default=None,
                     help="kubeconfig of the target cluster (default: the kind cluster's own)")
    target.addoption("--kube-context", default=None, help="kube context to use")
    target.addoption("--namespace", default=None, help="Mastodon namespace (default mastodon)")

    kind = _group(parser, "tootcheck-kind", "tootcheck: the kind cluster")
    kind.addoption("--tootcheck-cluster-name", dest="tootcheck_cluster_name", default=None,
                   help="kind cluster name (default tootcheck)")
    kind.addoption("--app-dir", default=None,
                   help="bring up this apps/mastodon kustomization (the operator's own) instead "
                        "of the reference; the kind overlay is composed around it (make e2e APP=)")
    kind.addoption("--reuse-cluster", action="store_true", default=None,
                   help="use an existing kind cluster and skip the steps already done")
    kind.addoption("--tootcheck-keep-cluster", dest="tootcheck_keep_cluster",
                   choices=("always", "on-failure", "never"), default=None,
                   help="keep the kind cluster after the run (default on-failure)")
    kind.addoption("--allow-destructive", action="store_true", default=None,
                   help="let destructive suites run on a cluster the suite did not create")

    modes = _group(parser, "tootcheck-modes", "tootcheck: run modes")
    modes.addoption("--mode", choices=("gate", "nightly", "rehearsal"), default=None,
                    help="which checks run: gate (default; nightly for --target=live), nightly "
                         "(read-only), rehearsal")
    modes.addoption("--allow-missing", action="append", default=None, metavar="NAME",
                    help="a check (or fnmatch pattern, e.g. 'sidekiq.*') the mode selects that may "
                         "be absent from this run; repeatable; listed in the reports")
    modes.addoption("--allow-flaky", action="store_true", default=None,
                    help="a test that passed only on rerun does not fail gate or nightly runs")
    modes.addoption("--revision", default=None,
                    help="git revision the live deployment was rendered from (drift; default HEAD)")
    modes.addoption("--allow-mutating", default=None,
                    help="comma-separated mutating checks to allow in nightly mode")
    modes.addoption("--rehearse-from", default=None,
                    help="rehearsal: Mastodon release deployed first, e.g. v4.6.3")
    modes.addoption("--rehearse-to", default=None,
                    help="rehearsal: Mastodon release upgraded to, e.g. v4.7.2")
    modes.addoption("--rehearse-chart-from", default=None,
                    help="rehearsal: app-template chart version deployed first (default pinned)")
    modes.addoption("--rehearse-chart-to", default=None,
                    help="rehearsal: app-template chart version upgraded to (default: chart from)")
    modes.addoption("--rehearse-allow-migration-restart", action="store_true", default=None,
                    help="rehearsal: accept a migration that passed only after a restart")
    modes.addoption("--rehearse-rollback", action="store_true", default=None,
                    help="rehearsal: back up FROM before the upgrade, restore it after TO is "
                         "verified, verify the seeded data again")
    modes.addoption("--rehearse-dump", default=None,
                    help="rehearsal: restore this pg_dump (plain or custom, .gz ok) into FROM")
    modes.addoption("--rehearse-secrets", default=None,
                    help="rehearsal: the dump's secrets (env file or Secret manifest)")
    modes.addoption("--seed-scale", default=None, type=int,
                    help="rehearsal: also seed N times a small instance (rails runner) so "
                         "migration time is measured at a realistic size")

    reports = _group(parser, "tootcheck-reports", "tootcheck: reports")
    reports.addoption("--reports-dir", default=None,
                      help="where summary.html, summary.json and evidence go (default reports/)")

    policy = _group(parser, "tootcheck-policy", "tootcheck: the policy gate")
    policy.addoption("--policy-strict", action="store_true", default=None,
                     help="WARN findings fail the gate too")
    policy.addoption("--policy-profile", choices=("baseline", "hardened"), default=None,
                     help="rules the gate runs: baseline or hardened (default: the policy "
                          "config's profile, else baseline)")

    selftest = _group(parser, "tootcheck-selftest", "tootcheck: the suite's own tests")
    selftest.addoption("--strict-peers", action="store_true", default=None,
                       help="fail, not skip, when a local peer is missing (CI)")
    selftest.addoption("--check-coverage", action="store_true", default=False,
                       help="fail the run if a live check's healthy case or a declared fault "
                            "was never proven")


def _options(config: pytest.Config) -> dict[str, object]:
    def path(name: str) -> Path | None:
        value = config.getoption(name)
        return Path(value).expanduser() if value else None

    allow = config.getoption("allow_mutating")
    missing = config.getoption("allow_missing")
    return {
        "target": config.getoption("target"),
        "base_url": config.getoption("tootcheck_base_url"),
        "domain": config.getoption("domain"),
        "auth_host": config.getoption("auth_host"),
        "connect_address": config.getoption("connect_address"),
        "https_port": config.getoption("https_port"),
        "http_port": config.getoption("http_port"),
        "ca_file": path("ca_file"),
        "app_dir": path("app_dir"),
        "kubeconfig": path("tootcheck_kubeconfig"),
        "kube_context": config.getoption("kube_context"),
        "namespace": config.getoption("namespace"),
        "cluster_name": config.getoption("tootcheck_cluster_name"),
        "reuse_cluster": config.getoption("reuse_cluster"),
        "keep_cluster": config.getoption("tootcheck_keep_cluster"),
        "allow_destructive": config.getoption("allow_destructive"),
        "mode": config.getoption("mode"),
        "revision": config.getoption("revision"),
        "rehearse_from": config.getoption("rehearse_from"),
        "rehearse_to": config.getoption("rehearse_to"),
        "rehearse_chart_from": config.getoption("rehearse_chart_from"),
        "rehearse_chart_to": config.getoption("rehearse_chart_to"),
        "rehearse_allow_migration_restart": config.getoption("rehearse_allow_migration_restart"),
        "rehearse_rollback": config.getoption("rehearse_rollback"),
        "rehearse_dump": path("rehearse_dump"),
        "rehearse_secrets": path("rehearse_secrets"),
        "seed_scale": config.getoption("seed_scale"),
        "allow_mutating": (tuple(a.strip() for a in allow.split(",") if a.strip())
                           if allow else None),
        "allow_missing": (tuple(m.strip() for arg in missing for m in arg.split(",") if m.strip())
                          if missing else None),
        "allow_flaky": config.getoption("allow_flaky"),
        "policy_strict": config.getoption("policy_strict"),
        "policy_profile": config.getoption("policy_profile"),
        "strict_peers": config.getoption("strict_peers"),
        "reports_dir": path("reports_dir"),
    }


SETTINGS_KEY = pytest.StashKey[Settings]()
PREVIOUS_KEY = pytest.StashKey["Settings | None"]()


ACTIVE_KEY = pytest.StashKey[str]()


def activation(config: pytest.Config) -> str:
    """Why the plugin is active in this run ("" when it is not): the rule of the docstring."""
    found = config_file.find(config.rootpath)
    if found is not None:
        return f"config {found}"
    given = [d for d in OPTION_DESTS if config.getoption(d, None) not in (None, False)]
    if given:
        return "option --" + given[0].replace("_", "-")
    return ""


def is_active(config: pytest.Config) -> bool:
    return ACTIVE_KEY in config.stash and bool(config.stash[ACTIVE_KEY])


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    for marker, text in MARKERS.items():
        config.addinivalue_line("markers", f"{marker}: {text}")
    config.stash[ACTIVE_KEY] = activation(config)
    if not is_active(config):
        return
    try:
        settings = settings_mod.load(_options(config))
    except BadInput as exc:
        raise pytest.UsageError(str(exc)) from None
    config.stash[PREVIOUS_KEY] = settings_mod.current()
    settings_mod.activate(settings)
    config.stash[SETTINGS_KEY] = settings
    for name in HOOK_PLUGINS:
        if not config.pluginmanager.has_plugin(name):  # hooks hold no asserts to rewrite
            config.pluginmanager.register(importlib.import_module(name), name)


def pytest_unconfigure(config: pytest.Config) -> None:
    # An in-process inner run (pytester) must not leave its settings behind.
    if PREVIOUS_KEY in config.stash:
        settings_mod.activate(config.stash[PREVIOUS_KEY])


@pytest.fixture(scope="session")
def settings(pytestconfig: pytest.Config) -> Settings:
    """The run's configuration: options > environment > defaults."""
    if SETTINGS_KEY not in pytestconfig.stash:  # inactive run: a test asked for it anyway
        try:
            pytestconfig.stash[SETTINGS_KEY] = settings_mod.load(_options(pytestconfig))
        except BadInput as exc:
            raise pytest.UsageError(str(exc)) from None
    return pytestconfig.stash[SETTINGS_KEY]
