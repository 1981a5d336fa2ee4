"""A recorded nightly run, built through the real RecordBook from pytest-shaped phase reports.

About 2,000 tests like a real run: the policy gate's cases (with findings and waivers),
live checks that pass, fail with fault codes, flake and did not run, and self-tests.
One failure message carries a registered secret, which no report may show.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

from tootcheck.redaction import Secret
from tootcheck.reporting import summary as json_summary
from tootcheck.reporting.records import RecordBook

SECRET = Secret("nightly-token-5f1c9a77d2e0", "token")
CATALOGUE = (
    "https.certificate", "https.http_semantics", "https.tls_versions", "streaming.auth",
    "streaming.delivery", "streaming.health", "streaming.latency", "sidekiq.health",
    "oidc.discovery", "oidc.login", "mail.delivery", "drift.render_vs_live",
)
STARTED = datetime(2026, 12, 4, 2, 23, tzinfo=UTC)


def _phase(nodeid: str, when: str, outcome: str, longrepr: object = None, **extra: Any) -> Any:
    return SimpleNamespace(nodeid=nodeid, when=when, outcome=outcome, duration=0.01,
                           longrepr=longrepr, user_properties=extra.pop("props", []), **extra)


def _test(book: RecordBook, nodeid: str, outcome: str, message: str = "",
          props: list[tuple[str, str]] | None = None, reruns: int = 0) -> None:
    props = props or []
    book.add(_phase(nodeid, "setup", "passed", props=list(props)))
    for _ in range(reruns):
        book.add(_phase(nodeid, "call", "rerun", props=list(props)))
    if outcome == "skipped":
        book.add(_phase(nodeid, "call", "skipped", ("x.py", 1, f"Skipped: {message}"), props=props))
    else:
        book.add(_phase(nodeid, "call", outcome, message or None, props=list(props)))
    book.add(_phase(nodeid, "teardown", "passed", props=list(props)))


def live(check: str, outcome: str, message: str = "", **props: str) -> tuple[str, str, str, list[Any]]:
    capability = check.split(".")[0]
    nodeid = f"suites/{capability}/test_{capability}.py::test_{check.replace('.', '_')}"
    return nodeid, outcome, message, [("check", check), ("modes", "nightly,readonly"),
                                      *props.items()]


def book() -> RecordBook:
    records = RecordBook()
    runs = [
        live("https.certificate", "passed"),
        live("https.http_semantics", "failed",
             f"AssertionError: https.http_semantics[live]: [no-redirect] http:// answered 200 "
             f"with Authorization: Bearer {SECRET.reveal()}\nTraceback line 1\nTraceback line 2",
             faults="no-redirect", evidence="reports/evidence/test_https_http_semantics"),
        live("https.tls_versions", "passed"),
        live("streaming.health", "passed"),
        live("streaming.auth", "passed"),
        live("streaming.latency", "passed",
             metrics=json.dumps({"latency_p50_s": 0.023, "latency_p95_s": 0.032, "statuses": 20})),
        live("streaming.delivery", "skipped",
             "mutating check refused in nightly mode (allow it with --allow-mutating)"),
        live("oidc.login", "passed", metrics=json.dumps({"login_s": 2.4})),
        live("sidekiq.health", "skipped", "needs a kubeconfig (--tootcheck-kubeconfig)"),
    ]
    for nodeid, outcome, message, props in runs:
        _test(records, nodeid, outcome, message, props)
    _test(records, "suites/oidc/test_oidc.py::test_oidc_discovery", "passed",
          props=[("check", "oidc.discovery")], reruns=1)
    for i in range(640):
        rule = f"MSTDN-WL-{i % 40:03d}"
        _test(records, f"suites/policy/test_policy.py::{rule}[Deployment/mastodon/obj{i}]", "passed")
    _test(records, "suites/policy/test_policy.py::MSTDN-SEC-004[Deployment/mastodon/mastodon:web]",
          "failed", "AssertionError: MSTDN-SEC-004: web has a writable root filesystem")
    _test(records, "suites/policy/test_policy.py::MSTDN-PV-002[StatefulSet/authentik/pg]", "skipped",
          "MSTDN-PV-002[StatefulSet/authentik/pg] waived until 2027-05-31: test infrastructure")
    for i in range(1340):
        _test(records, f"tests/checks/test_area{i % 12}.py::test_case_{i}", "passed")
    _test(records, "tests/test_render.py::test_fresh[mastodon]", "skipped",
          "helm v3 is not on PATH: render freshness NOT PROVEN")
    return records


def summary(target: str = "live", mode: str = "nightly") -> dict[str, Any]:
    return json_summary.build(
        book(), started=STARTED, finished=STARTED + timedelta(seconds=412), target=target,
        mode=mode, exit_status=1,
        timings={"phases": {"cluster": 41.0, "storage": 12.5, "ingress": 30.2, "app": 150.0},
                 "starts": {"cluster": 0.0, "storage": 41.0, "ingress": 41.0, "app": 71.2}},
        catalogue=CATALOGUE)


def history(runs: int = 12) -> list[dict[str, Any]]:
    lines = []
    for i in range(runs):
        line = json_summary.trend_line(summary())
        line["run_id"] = f"run{i:02d}"
        line["duration_s"] = 300.0 + 10 * i
        line["ok"] = i % 5 != 0
        lines.append(line)
    return lines
