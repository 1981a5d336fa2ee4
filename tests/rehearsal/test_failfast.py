"""Fail fast on a failed migration: the verdict over recorded pod states (tests/rehearsal/
pods.py), the restart policy, the log tail in the message, and the suites' skip."""

from __future__ import annotations

import pytest

from tests.rehearsal.pods import mastodon_pod
from tootcheck.rehearsal import failfast, verify
from tootcheck.rehearsal.checks import check_upgrade
from tootcheck.testing import expect_fault

TAG = "v4.7.2"


def waiting(pod: dict, reason: str, restarts: int, last_exit: int | None) -> dict:
    status = next(s for s in pod["status"]["initContainerStatuses"] if s["name"] == "db-migrate")
    status["state"] = {"waiting": {"reason": reason}}
    status["restartCount"] = restarts
    if last_exit is not None:
        status["lastState"] = {"terminated": {"exitCode": last_exit, "reason": "Error"}}
    return pod


# (recorded pod state, expected verdict, allow_restart)
STATES = [
    ("running", mastodon_pod(TAG, migrate=(10, None), migrate_exit=None), "running", False),
    ("exited 0", mastodon_pod(TAG), "succeeded", False),
    ("exited 1", mastodon_pod(TAG, migrate_exit=1), "failed", False),
    ("exited 1, allowed", mastodon_pod(TAG, migrate_exit=1), "failed", True),
    ("restarted after exit 1", mastodon_pod(TAG, migrate=(10, None), migrate_exit=None,
                                            migrate_restarts=1, previous_exit=1), "failed", False),
    ("restarted after exit 1, allowed", mastodon_pod(
        TAG, migrate=(10, None), migrate_exit=None, migrate_restarts=1, previous_exit=1),
     "running", True),
    ("crash loop, allowed", waiting(mastodon_pod(TAG, migrate=(10, None), migrate_exit=None),
                                    "CrashLoopBackOff", 4, 1), "failed", True),
    ("image pull backoff", waiting(mastodon_pod(TAG, migrate=(10, None), migrate_exit=None),
                                   "ImagePullBackOff", 0, None), "pending", False),
    ("passed after a restart", mastodon_pod(TAG, migrate_restarts=1, previous_exit=1),
     "passed-after-restart", False),
]


@pytest.mark.parametrize(("what", "pod", "state", "allow"), STATES, ids=[s[0] for s in STATES])
def test_verdict_over_recorded_pod_states(what: str, pod: dict, state: str, allow: bool) -> None:
    verdict = failfast.migration_verdict(pod, allow_restart=allow)
    assert verdict.state == state, verdict
    assert verdict.failed == (state == "failed")


def test_no_status_yet_is_pending() -> None:
    pod = mastodon_pod(TAG)
    pod["status"]["initContainerStatuses"] = []
    assert failfast.migration_verdict(pod).state == "pending"


def test_a_migration_that_needed_a_restart_fails_the_upgrade_unless_allowed() -> None:
    pod = mastodon_pod(TAG, migrate_restarts=1, previous_exit=1)
    record = verify.UpgradeRecord("v4.6.3", TAG, "kind://tootcheck", pod=pod,
                                  applied_at=1.0, ready_at=2.0)
    result = expect_fault(check_upgrade(record), "migration-failed",
                          mentions="succeeded only after an earlier run exited 1")
    assert "--rehearse-allow-migration-restart" in result.summary
    allowed = verify.UpgradeRecord("v4.6.3", TAG, "kind://tootcheck", pod=pod, applied_at=1.0,
                                   ready_at=2.0, allow_migration_restart=True)
    assert "migration-failed" not in check_upgrade(allowed).fault_codes
    clean = check_upgrade(verify.UpgradeRecord("v4.6.3", TAG, "kind://tootcheck",
                                               pod=mastodon_pod(TAG), applied_at=1.0, ready_at=2.0))
    assert "migration-failed" not in clean.fault_codes


def test_the_failure_message_ends_with_the_log_lines() -> None:
    verdict = failfast.migration_verdict(mastodon_pod(TAG, migrate_exit=1))
    log = "\n".join(f"2026-12-04T11:00:{n:02d}.0Z line {n}" for n in range(20)) + "\n\n"
    message = failfast.failure_message("v4.6.3 -> v4.7.2", verdict, {"current": log})
    assert message.startswith("v4.6.3 -> v4.7.2: the migration failed: db-migrate exited 1")
    assert message.endswith("line 19") and "line 11" not in message and "2026-12-04T" not in message
    only_previous = failfast.failure_message("s", verdict, {"current": "", "previous": "boom"})
    assert "previous db-migrate log: boom" in only_previous
    assert "no db-migrate log could be read" in failfast.failure_message("s", verdict, {})


def test_suites_are_skipped_after_a_failed_upgrade_but_the_upgrade_check_runs() -> None:
    error = "v4.6.3 -> v4.7.2: the migration failed: db-migrate exited 1"
    reason = failfast.suite_skip_reason(error, is_upgrade_check=False)
    assert reason is not None and reason.startswith("not run: upgrade failed: v4.6.3")
    assert failfast.suite_skip_reason(error, is_upgrade_check=True) is None
    assert failfast.suite_skip_reason("", is_upgrade_check=False) is None
