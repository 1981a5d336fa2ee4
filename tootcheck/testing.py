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


def expect_ok(result: CheckResult) -> CheckResult:
    __tracebackhide__ = True
    assert result.ok, result.summary
    assert result.observations > 0, f"{result.check}: passed without observing anything"
    _PROVEN.add((result.check, HEALTHY))
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
    _PROVEN.add((result.check, code))
    return result


def missing_proofs() -> list[str]:
    """Declared (check, fault) pairs and healthy runs that no test proved."""
    from tootcheck.checks.registry import all_checks

    missing: list[str] = []
    for name, spec in sorted(all_checks().items()):
        if (name, HEALTHY) not in _PROVEN:
            missing.append(f"{name}: never shown passing on a healthy peer")
        for code in spec.faults:
            if (name, code) not in _PROVEN:
                missing.append(f"{name}: fault {code!r} never proven against a broken peer")
    return missing


def peer_missing(peer: str, reason: str) -> None:
    """Skip (or, with strict peers, fail) because a local peer is not available."""
    __tracebackhide__ = True
    message = f"local peer {peer} unavailable: {reason}"
    if active().strict_peers:
        pytest.fail(message + " (strict peers: CI must install it)", pytrace=False)
    pytest.skip(message)
