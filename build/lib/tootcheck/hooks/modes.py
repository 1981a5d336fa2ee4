"""pytest hooks: tag each live test with its check's modes and refuse what the mode forbids."""

from __future__ import annotations

import pytest

from tootcheck.checks.registry import all_checks
from tootcheck.modes import decide, tags
from tootcheck.settings import active

MODE_MARKERS = {
    "gate": "runs in the CI gate (kind end-to-end)",
    "nightly": "runs in nightly verification of the live instance",
    "rehearsal": "runs in the upgrade rehearsal",
    "readonly": "changes no state on the target",
    "mutating": "changes state on the target; refused in nightly mode unless allowed",
}


def pytest_configure(config: pytest.Config) -> None:
    for name, text in MODE_MARKERS.items():
        config.addinivalue_line("markers", f"{name}: {text}")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    checks = None
    settings = active()
    for item in items:
        marker = item.get_closest_marker("check")
        if marker is None:
            continue
        if checks is None:
            checks = all_checks()
        name = marker.args[0] if marker.args else marker.kwargs.get("name", "")
        spec = checks.get(name)
        if spec is None:
            raise pytest.UsageError(f"{item.nodeid}: unknown live check {name!r}")
        for tag in tags(spec):
            item.add_marker(tag)
        item.user_properties.append(("check", name))
        item.user_properties.append(("modes", ",".join(tags(spec))))
        decision = decide(spec, settings.mode, settings.allow_mutating)
        if not decision.run:
            item.add_marker(pytest.mark.skip(reason=decision.reason))
