"""pytest hooks: an evidence bundle for every failed test of a run with a target.

When a test fails (in setup, call or teardown; xfail excluded) and the run has a
target (``--target`` kind or live) or a registered cluster source, a bundle is
written to ``<reports>/evidence/<test-id>/``: the failure text, and when a
cluster is reachable the collectors of :mod:`tootcheck.kube.evidence`. The
bundle's path becomes the test's ``evidence`` user property, which pytest writes
into the JUnit ``<properties>`` of the testcase and the reports plugin prints as
one line. A passing test writes nothing. A collector problem is written next to
the evidence and never replaces the test's own failure.

Failures close together (a failed bring-up errors every test) share one cluster
snapshot, taken once and copied into each bundle.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Generator
from pathlib import Path
from typing import Any

import pytest

from tootcheck.kube import evidence
from tootcheck.redaction import redact
from tootcheck.settings import active

PLUGIN_NAME = "tootcheck-evidence"
SNAPSHOT_TTL_S = 60.0

SourceFactory = Callable[[], "evidence.Source | None"]


class EvidencePlugin:
    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.factory: SourceFactory | None = None
        self.snapshot: evidence.Snapshot | None = None
        self.snapshot_at = -SNAPSHOT_TTL_S
        self.bundles: dict[str, Path] = {}

    # -- configuration

    def is_enabled(self) -> bool:
        return self.factory is not None or active().target != "none"

    def source(self) -> tuple[evidence.Source | None, str]:
        factory = self.factory or live_source_factory()
        if factory is None:
            return None, "no cluster access configured (--tootcheck-kubeconfig/--kube-context)"
        try:
            return factory(), ""
        except Exception as exc:  # an unreachable cluster still gets a bundle
            return None, f"cluster source unavailable: {type(exc).__name__}: {exc}"

    def current_snapshot(self) -> tuple[evidence.Snapshot | None, str]:
        now = time.monotonic()
        if self.snapshot is not None and now - self.snapshot_at < SNAPSHOT_TTL_S:
            return self.snapshot, ""
        source, note = self.source()
        if source is None:
            return None, note
        self.snapshot = evidence.take_snapshot(source)
        self.snapshot_at = time.monotonic()
        return self.snapshot, ""

    # -- the hook

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo[Any],
                                  ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
        report: pytest.TestReport = yield
        if not report.failed or hasattr(report, "wasxfail") or not self.is_enabled():
            return report
        try:
            path = self.write(item, report)
        except Exception as exc:  # evidence must never hide the failure it documents
            report.sections.append(("tootcheck evidence", f"evidence not written: {exc}"))
            return report
        prop = ("evidence", display_path(path))
        if prop not in item.user_properties:
            item.user_properties.append(prop)
        if prop not in report.user_properties:
            report.user_properties.append(prop)
        return report

    def write(self, item: pytest.Item, report: pytest.TestReport) -> Path:
        dest = evidence.bundle_dir(active().reports_dir, item.nodeid)
        failure = failure_text(report)
        if item.nodeid in self.bundles:  # a later phase failed too: add its text
            with (dest / "failure.txt").open("a") as fh:
                fh.write("\n\n" + redact(failure))
            return dest
        snapshot, note = self.current_snapshot()
        evidence.write_bundle(dest, failure, snapshot, note=note)
        self.bundles[item.nodeid] = dest
        return dest


def failure_text(report: pytest.TestReport) -> str:
    parts = [f"{report.nodeid} failed in {report.when}", "", report.longreprtext]
    for title, content in report.sections:
        parts += ["", f"---- {title} ----", content]
    return "\n".join(parts) + "\n"


def display_path(path: Path) -> str:
    """Relative to the working directory when below it (as CI artifacts are)."""
    try:
        return os.path.relpath(path) if Path(path).resolve().is_relative_to(Path.cwd()) else str(path)
    except ValueError:
        return str(path)


def live_source_factory() -> SourceFactory | None:
    """For --target=live with kube access: the Mastodon namespace only, read-only."""
    settings = active()
    if settings.target != "live" or not (settings.kubeconfig or settings.kube_context):
        return None

    def factory() -> evidence.Source:
        from tootcheck.kube.client import connect

        kube = connect(settings.kubeconfig, settings.kube_context)
        kube.discovery_timeout = 0
        return evidence.Source(kube, namespaces=[settings.namespace])

    return factory


def register_source(config: pytest.Config, factory: SourceFactory) -> None:
    """Tell the evidence hook how to reach the cluster (the kind fixtures call this)."""
    plugin = config.pluginmanager.get_plugin(PLUGIN_NAME)
    if plugin is not None:
        plugin.factory = factory
        plugin.snapshot = None


def pytest_configure(config: pytest.Config) -> None:
    config.pluginmanager.register(EvidencePlugin(config), PLUGIN_NAME)
