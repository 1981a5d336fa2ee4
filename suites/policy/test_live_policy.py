"""The catalogue on the live objects of the target (kind, or the live instance at night)."""

from __future__ import annotations

import pytest

from tootcheck.policy.live_check import check_live_objects
from tootcheck.settings import Settings
from tootcheck.target import Target


@pytest.mark.check("policy.live_objects")
def test_live_objects_pass_the_catalogue(target: Target, settings: Settings) -> None:
    if target.kubeconfig is None:
        pytest.skip(f"target {target.name} has no kubeconfig: pass --tootcheck-kubeconfig to gate "
                    f"live objects")
    result = check_live_objects(target, strict=settings.policy_strict)
    assert result.ok, result.summary
