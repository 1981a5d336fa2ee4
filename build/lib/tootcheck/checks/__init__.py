"""Live checks: plain functions that take a target (or a peer) and return a CheckResult.

The suites in ``suites/`` call them against a cluster or the live instance; the
suite's own tests call them against real local peers. See ``registry.py``.
"""

from tootcheck.checks.registry import REGISTRY, CheckSpec, all_checks, live_check

__all__ = ["REGISTRY", "CheckSpec", "all_checks", "live_check"]
