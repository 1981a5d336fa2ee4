"""Fixtures for the suite's own tests: real local peers on 127.0.0.1.

Also a budget: a test body over ``SLOW_S`` that is not marked ``slow(reason=...)`` is
listed at the end of the run (a timing depends on the machine's load, so it is listed,
not failed). Under pytest-xdist the controller sees every report, so the list is whole.
"""

from __future__ import annotations

import gc
from typing import Any

import pytest

from tests.peers.fixtures import make_postgres, make_redis, postgres, redis_peer, sidekiq_peers
from tests.peers.sinks import fediverse_peer, mastodon_sim, simulated_mastodon, sinks_ca, smtp_sink

__all__ = ["make_postgres", "make_redis", "postgres", "redis_peer", "sidekiq_peers"]
__all__ += ["fediverse_peer", "mastodon_sim", "simulated_mastodon", "sinks_ca", "smtp_sink"]

# The collector: see pytest_collection_finish. Set as early as a conftest can (before the
# test modules are imported and collected: about 0.3 s of each worker's start-up).
gc.freeze()
gc.set_threshold(10_000, 10, 10)

SLOW_S = 3.0
_OVER_BUDGET: dict[str, float] = {}


# The longest modules first (seconds in a parallel `make test` in the comments), those
# that mostly wait on a peer alternating with those that mostly compute, so that the cores
# stay busy: a parallel run (--dist loadscope, --no-loadscope-reorder: modules in
# collection order) then ends on short modules, not on a long one while other workers idle.
LONG_MODULES = (
    "tests/test_install.py",  # 11.1, computes: a wheel build and a fresh venv
    "tests/checks/test_sidekiq.py",  # 10.2, waits: Sidekiq starts and beats
    "tests/checks/test_persistence.py",  # 9.1, waits: peer restarts and crashes
    "tests/reporting/test_guards.py",  # 5.9, computes: inner sessions, one of them parallel
    "tests/checks/test_streaming.py",  # 8.7, waits
    "tests/kube/test_cluster_fixtures.py",  # 4.6, computes: inner sessions
    "tests/checks/test_oidc.py",  # 7.2
    "tests/nightly/test_nightly.py",  # 3.4, computes: five inner sessions against peers
    "tests/checks/test_https.py",  # 4.0
    "tests/checks/test_federation.py",  # 3.5
    "tests/policy/test_splitrun.py",  # 3.2
    "tests/policy/test_fastparse.py",  # 2.9
    "tests/checks/test_sidekiq_layouts.py",  # 2.9, waits
    "tests/policy/test_live_check.py",  # 2.8
    "tests/test_plugin_coexistence.py",  # 2.8
    "tests/reporting/test_report_pages.py",  # 2.3
    "tests/policy/test_schema_fastpath.py",  # 2.2
    "tests/rehearsal/test_rollback.py",  # 2.1
    "tests/kube/test_bringup.py",  # 2.1
    "tests/test_inner.py",  # 2.1
    "tests/kube/test_portforward.py",  # 2.0
    "tests/rehearsal/test_seeds.py",  # 1.9
    "tests/checks/test_webpush.py",  # 1.7
    "tests/rehearsal/test_run.py",  # 1.7
    "tests/test_preflight.py",  # 1.5
    "tests/checks/test_markers.py",  # 1.5
    "tests/test_suites_collect.py",  # 1.5
    "tests/policy/test_gate.py",  # 1.4
    "suites/policy/test_policy.py",  # 1.3
)


def _rank(item: pytest.Item) -> int:
    path = item.nodeid.split("::", 1)[0]
    return LONG_MODULES.index(path) if path in LONG_MODULES else len(LONG_MODULES)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items.sort(key=_rank)  # stable: the order within a module is kept
    for item in items:
        marker = item.get_closest_marker("slow")
        if marker is not None and not (marker.kwargs.get("reason") or marker.args):
            raise pytest.UsageError(f"{item.nodeid}: @pytest.mark.slow needs reason=...")


def pytest_collection_finish(session: pytest.Session) -> None:
    # What the imports and the collection built lives for the whole session: frozen out of
    # the collector's way, and young collections made rarer (above), so that the collector
    # stops walking every module, class and test item again and again (up to a tenth of a
    # worker's CPU time). Only cyclic garbage waits longer; reference counting is unchanged.
    gc.freeze()


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when == "call" and report.duration > SLOW_S and "slow" not in report.keywords:
        _OVER_BUDGET[report.nodeid] = report.duration


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _OVER_BUDGET:
        terminalreporter.write_sep("-", f"over {SLOW_S:.0f} s and not marked slow")
        for nodeid, duration in sorted(_OVER_BUDGET.items(), key=lambda kv: -kv[1]):
            terminalreporter.write_line(f"{duration:5.1f}s {nodeid}")
