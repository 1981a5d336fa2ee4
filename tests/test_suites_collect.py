"""Every live suite collects without a target and skips with one line saying how to get one."""

from __future__ import annotations

import json

import pytest

from tests import REPO_ROOT, inner

LIVE_SUITES = ["https", "streaming", "sidekiq", "persistence", "oidc", "mail", "federation",
               "webpush", "drift", "rehearsal", "incontainer"]


@pytest.mark.slow(reason="an inner pytest session that collects every live suite")
def test_live_suites_skip_in_one_line_without_a_target(tmp_path):
    paths = [f"suites/{name}" for name in LIVE_SUITES] + ["suites/policy/test_live_policy.py"]
    done = inner.run(
        [*paths, "-p", "no:cacheprovider", "-p", "no:pytest_httpserver", "-rs", "-q",
         "--reports-dir", str(tmp_path)],
        cwd=REPO_ROOT, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    summary = json.loads((tmp_path / "summary.json").read_text())
    tests = summary["tests"]
    suites = {t["nodeid"].split("/")[1] for t in tests}
    assert suites >= set(LIVE_SUITES) | {"policy"}, f"suites that collected nothing: {suites}"
    not_skipped = [t["nodeid"] for t in tests if t["outcome"] != "skipped"]
    assert not_skipped == []
    for test in tests:
        message = test["message"]
        assert "\n" not in message, test["nodeid"]
        if test["nodeid"].startswith("suites/rehearsal/"):
            assert "not part of gate mode" in message, test
        else:
            assert message.startswith("no target: run with --target=kind"), test
