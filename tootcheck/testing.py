"""Helpers for the suite's own tests: prove a check passes healthy and fails on faults.

``expect_ok`` and ``expect_fault`` assert on a :class:`CheckResult` and record
which (check, fault) pairs were proven. With ``--check-coverage`` the plugin
fails the run when a declared fault of a registered check was never proven, or
a check was never seen passing on a healthy peer.

``peer_missing`` skips a test whose local peer is absent, or fails it when
``strict_peers`` is on (CI), so a missing peer never turns into a silent skip.
"""

from __future__ import annotations

import pytest

from tootcheck.model import CheckResult
from tootcheck.settings import active

HEALTHY = "healthy"
_PROVEN: set[tuple[str, str]] = set()
# Proofs of the running test, drained into its report (tootcheck.hooks.guards) so that
# the controller of a parallel run (pytest-xdist) sees what each worker proved.
_RECENT: list[tuple[str, str]] = []


def _prove(check: str, code: str) -> None:
    _PROVEN.add((check, code))
    _RECENT.append((check, code))


def drain_recent() -> list[tuple[str, str]]:
    """The proofs recorded since the last call (the running test's)."""
    recent = list(_RECENT)
    _RECENT.clear()
    return recent


def expect_ok(result: CheckResult) -> CheckResult:
    __tracebackhide__ = True
    assert result.ok, result.summary
    assert result.observations > 0, f"{result.check}: passed without observing anything"
    _prove(result.check, HEALTHY)
    return result


def expect_fault(result: CheckResult, code: str, *, mentions: str | None = None) -> CheckResult:
    """Assert the check failed with fault ``code`` (and the message names ``mentions``)."""
    __tracebackhide__ = True
    assert not result.ok, f"{result.check}: expected fault {code!r} but the check passed"
    assert code in result.fault_codes, (
        f"{result.check}: expected fault {code!r}, got {list(result.fault_codes)}: {result.summary}"
    )
    fault = next(f for f in result.faults if f.code == code)
    assert fault.message.strip(), f"{result.check}: fault {code!r} has an empty message"
    assert "\n" not in fault.message, f"{result.check}: fault {code!r} message is not one line"
    if mentions is not None:
        assert mentions.lower() in fault.message.lower(), (
            f"{result.check}: fault {code!r} message does not mention {mentions!r}: {fault.message}"
        )
    _prove(result.check, code)
    return result


def missing_proofs(proofs: set[tuple[str, str]] | None = None) -> list[str]:
    """Declared (check, fault) pairs and healthy runs that no test proved (``proofs``:
    the pairs the run's reports carried; default: those proven in this process)."""
    from tootcheck.checks.registry import all_checks

    seen = _PROVEN if proofs is None else proofs
    missing: list[str] = []
    for name, spec in sorted(all_checks().items()):
        if (name, HEALTHY) not in seen:
            missing.append(f"{name}: never shown passing on a healthy peer")
        for code in spec.faults:
            if (name, code) not in seen:
                missing.append(f"{name}: fault {code!r} never proven against a broken peer")
    return missing


def peer_missing(peer: str, reason: str) -> None:
    """Skip (or, with strict peers, fail) because a local peer is not available."""
    __tracebackhide__ = True
    message = f"local peer {peer} unavailable: {reason}"
    if active().strict_peers:
        pytest.fail(message + " (strict peers: CI must install it)", pytrace=False)
    pytest.skip(message)


NOT_PROVEN = "not_proven"  # user property: "<name>: <reason>", listed by the reports


def not_proven(node: pytest.Item, name: str, reason: str, *, skip: bool = True) -> None:
    """Record that ``name`` (a check part, a freshness test) was not proven in this run,
    and skip the test unless ``skip`` is False. The reports list it as NOT PROVEN; with a
    target the run fails unless ``--allow-missing`` names it."""
    __tracebackhide__ = True
    node.user_properties.append((NOT_PROVEN, f"{name}: {reason}"))
    if skip:
        pytest.skip(f"NOT PROVEN: {name}: {reason}")


def record_unproven_parts(node: pytest.Item, result: CheckResult) -> None:
    """Carry a check result's ``not_proven`` evidence (part -> reason) into the reports."""
    parts = result.evidence.get(NOT_PROVEN) or {}
    for part, reason in sorted(parts.items()):
        not_proven(node, f"{result.check}.{part}", str(reason), skip=False)
