"""pytest hooks: the destructive-suite guard and the kind cluster's end-of-run lines.

Tests marked ``@pytest.mark.destructive`` run only against a cluster the suite
created (:func:`tootcheck.kube.safety.destructive_decision`), or with
``--allow-destructive``. The kind fixtures leave their closing lines (cluster
kept and how to reconnect, or deleted) in the config stash; they are printed in
the terminal summary, after the test results.
"""

from __future__ import annotations

from typing import Any

import pytest

from tootcheck.kube.safety import destructive_decision
from tootcheck.settings import Settings

CLUSTER_LINES = pytest.StashKey[list[str]]()


def add_summary_lines(config: pytest.Config, lines: list[str]) -> None:
    config.stash.setdefault(CLUSTER_LINES, []).extend(lines)


@pytest.fixture(autouse=True)
def _destructive_guard(request: pytest.FixtureRequest, settings: Settings) -> None:
    """Refuse a destructive test on a cluster the suite did not create."""
    if request.node.get_closest_marker("destructive") is None:
        return
    target = request.getfixturevalue("target")  # skips (one line) when there is no target
    action, message = destructive_decision(
        target_name=target.name, created_by_suite=target.created_by_suite,
        reason="marker and context verified" if target.created_by_suite else
        f"context {target.kube_context or 'none'}", allow_destructive=settings.allow_destructive)
    if action == "skip":
        pytest.skip(message)
    if action == "fail":
        pytest.fail(message, pytrace=False)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    lines = terminalreporter.config.stash.get(CLUSTER_LINES, [])
    if lines:
        terminalreporter.write_sep("-", "tootcheck kind cluster")
        for line in lines:
            terminalreporter.write_line(line)
