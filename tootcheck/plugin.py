"""The pytest plugin: options, markers and the settings object. No logic here.

Registered through the ``pytest11`` entry point. Concern-specific hooks live in
``tootcheck/hooks/`` and are loaded below.

Option help style: lower-case, no trailing period, name the default.
"""

from __future__ import annotations

from pathlib import Path

import pytest

# The asserts in expect_ok/expect_fault are the suite's proofs: rewrite them so that the
# no-assertion guard counts them (editable installs are not rewritten otherwise).
pytest.register_assert_rewrite("tootcheck.testing")

from tootcheck import settings as settings_mod  # noqa: E402
from tootcheck.errors import BadInput  # noqa: E402
from tootcheck.settings import Settings  # noqa: E402

pytest_plugins = [
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


def pytest_addoption(parser: pytest.Parser) -> None:
    target = parser.getgroup("tootcheck-target", "tootcheck: the system under test")
    target.addoption("--target", choices=("none", "kind", "live"), default=None,
                     help="where the live suites point: none (default), kind, live")
    target.addoption("--base-url", default=None,
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
    target.addoption("--kubeconfig", default=None,
                     help="kubeconfig of the target cluster (default: the kind cluster's own)")
    target.addoption("--kube-context", default=None, help="kube context to use")
    target.addoption("--namespace", default=None, help="Mastodon namespace (default mastodon)")

    kind = parser.getgroup("tootcheck-kind", "tootcheck: the kind cluster")
    kind.addoption("--cluster-name", default=None, help="kind cluster name (default tootcheck)")
    kind.addoption("--reuse-cluster", action="store_true", default=None,
                   help="use an existing kind cluster and skip the steps already done")
    kind.addoption("--keep-cluster", choices=("always", "on-failure", "never"), default=None,
                   help="keep the kind cluster after the run (default on-failure)")
    kind.addoption("--allow-destructive", action="store_true", default=None,
                   help="let destructive suites run on a cluster the suite did not create")

    modes = parser.getgroup("tootcheck-modes", "tootcheck: run modes")
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

    reports = parser.getgroup("tootcheck-reports", "tootcheck: reports")
    reports.addoption("--reports-dir", default=None,
                      help="where summary.html, summary.json and evidence go (default reports/)")

    policy = parser.getgroup("tootcheck-policy", "tootcheck: the policy gate")
    policy.addoption("--policy-strict", action="store_true", default=None,
                     help="WARN findings fail the gate too")

    selftest = parser.getgroup("tootcheck-selftest", "tootcheck: the suite's own tests")
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
        "base_url": config.getoption("base_url"),
        "domain": config.getoption("domain"),
        "auth_host": config.getoption("auth_host"),
        "connect_address": config.getoption("connect_address"),
        "https_port": config.getoption("https_port"),
        "http_port": config.getoption("http_port"),
        "ca_file": path("ca_file"),
        "kubeconfig": path("kubeconfig"),
        "kube_context": config.getoption("kube_context"),
        "namespace": config.getoption("namespace"),
        "cluster_name": config.getoption("cluster_name"),
        "reuse_cluster": config.getoption("reuse_cluster"),
        "keep_cluster": config.getoption("keep_cluster"),
        "allow_destructive": config.getoption("allow_destructive"),
        "mode": config.getoption("mode"),
        "revision": config.getoption("revision"),
        "rehearse_from": config.getoption("rehearse_from"),
        "rehearse_to": config.getoption("rehearse_to"),
        "rehearse_chart_from": config.getoption("rehearse_chart_from"),
        "rehearse_chart_to": config.getoption("rehearse_chart_to"),
        "allow_mutating": (tuple(a.strip() for a in allow.split(",") if a.strip())
                           if allow else None),
        "allow_missing": (tuple(m.strip() for arg in missing for m in arg.split(",") if m.strip())
                          if missing else None),
        "allow_flaky": config.getoption("allow_flaky"),
        "policy_strict": config.getoption("policy_strict"),
        "strict_peers": config.getoption("strict_peers"),
        "reports_dir": path("reports_dir"),
    }


SETTINGS_KEY = pytest.StashKey[Settings]()
PREVIOUS_KEY = pytest.StashKey["Settings | None"]()


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    for marker, text in MARKERS.items():
        config.addinivalue_line("markers", f"{marker}: {text}")
    try:
        settings = settings_mod.load(_options(config))
    except BadInput as exc:
        raise pytest.UsageError(str(exc)) from None
    config.stash[PREVIOUS_KEY] = settings_mod.current()
    settings_mod.activate(settings)
    config.stash[SETTINGS_KEY] = settings


def pytest_unconfigure(config: pytest.Config) -> None:
    # An in-process inner run (pytester) must not leave its settings behind.
    if PREVIOUS_KEY in config.stash:
        settings_mod.activate(config.stash[PREVIOUS_KEY])


@pytest.fixture(scope="session")
def settings(pytestconfig: pytest.Config) -> Settings:
    """The run's configuration: options > environment > defaults."""
    return pytestconfig.stash[SETTINGS_KEY]
