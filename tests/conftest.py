"""Fixtures for the suite's own tests: real local peers on 127.0.0.1.

Also a budget: a test body over ``SLOW_S`` that is not marked ``slow(reason=...)`` is
listed at the end of the run (a timing depends on the machine's load, so it is listed,
not failed). Under pytest-xdist the controller sees every report, so the list is whole.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.peers.fixtures import make_postgres, make_redis, postgres, redis_peer, sidekiq_peers
from tests.peers.sinks import fediverse_peer, mastodon_sim, simulated_mastodon, sinks_ca, smtp_sink

__all__ = ["make_postgres", "make_redis", "postgres", "redis_peer", "sidekiq_peers"]
__all__ += ["fediverse_peer", "mastodon_sim", "simulated_mastodon", "sinks_ca", "smtp_sink"]

SLOW_S = 3.0
_OVER_BUDGET: dict[str, float] = {}


# Modules whose tests run whole inner pytest sessions or real server restarts, longest
# first: run before the rest, so that a parallel run (--dist loadscope hands out modules
# in collection order) does not end on one long module while the other worker idles.
LONG_MODULES = (
    "tests/nightly/test_nightly.py",
    "tests/kube/test_cluster_fixtures.py",
    "tests/checks/test_persistence.py",
    "tests/test_modes.py",
    "tests/reporting/test_guards.py",
    "tests/checks/test_sidekiq.py",
    "tests/checks/test_oidc.py",
    "tests/checks/test_incontainer.py",
    "tests/rehearsal/test_seeds.py",
    "tests/reporting/test_reports.py",
    "tests/test_suites_collect.py",
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


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when == "call" and report.duration > SLOW_S and "slow" not in report.keywords:
        _OVER_BUDGET[report.nodeid] = report.duration


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _OVER_BUDGET:
        terminalreporter.write_sep("-", f"over {SLOW_S:.0f} s and not marked slow")
        for nodeid, duration in sorted(_OVER_BUDGET.items(), key=lambda kv: -kv[1]):
            terminalreporter.write_line(f"{duration:5.1f}s {nodeid}")
