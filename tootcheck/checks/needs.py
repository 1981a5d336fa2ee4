"""What each live check needs from a live target besides its base URL.

A kind target brings its own cluster access and accounts; a ``--target=live`` run
gets them from settings. :func:`unmet` says which of a check's needs the settings
leave open, so a live run can stop before its tests instead of skipping them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from tootcheck.settings import Settings

KUBECONFIG = "a kubeconfig (--tootcheck-kubeconfig or --kube-context)"
TEST_TOKEN = "the test account's token (TOOTCHECK_TEST_TOKEN[_FILE])"
SECOND_TOKEN = "the second account's token (TOOTCHECK_SECOND_TOKEN[_FILE])"
OIDC_USER = ("the OIDC test user (TOOTCHECK_OIDC_USERNAME and "
             "TOOTCHECK_OIDC_PASSWORD[_FILE])")

_PRESENT: Mapping[str, Callable[[Settings], bool]] = {
    KUBECONFIG: lambda s: s.kubeconfig is not None or s.kube_context is not None,
    TEST_TOKEN: lambda s: s.test_token is not None,
    SECOND_TOKEN: lambda s: s.second_token is not None,
    OIDC_USER: lambda s: bool(s.oidc_username) and s.oidc_password is not None,
}

# check name -> what it cannot run without on a live target
NEEDS: Mapping[str, tuple[str, ...]] = {
    "drift.render_vs_live": (KUBECONFIG,),
    "incontainer.postgres_durability": (KUBECONFIG,),
    "incontainer.processes": (KUBECONFIG,),
    "incontainer.redis_durability": (KUBECONFIG,),
    "incontainer.storage": (KUBECONFIG,),
    "persistence.markers_survive": (KUBECONFIG,),
    "policy.live_objects": (KUBECONFIG,),
    "sidekiq.health": (KUBECONFIG,),
    "sidekiq.queues_drain": (KUBECONFIG,),
    "sidekiq.roundtrip": (TEST_TOKEN, SECOND_TOKEN),
    "streaming.auth": (TEST_TOKEN,),
    "streaming.delivery": (TEST_TOKEN,),
    "streaming.latency": (TEST_TOKEN,),
    "webpush.vapid_key": (KUBECONFIG,),
    "webpush.delivery": (KUBECONFIG, TEST_TOKEN, SECOND_TOKEN),
    "federation.delivery": (TEST_TOKEN,),
    "mail.delivery": (TEST_TOKEN,),
    "oidc.login": (OIDC_USER,),
    "oidc.negative_paths": (OIDC_USER,),
}


def unmet(settings: Settings, checks: Iterable[str]) -> dict[str, list[str]]:
    """Each need the settings leave open -> the checks (sorted) that need it."""
    missing: dict[str, list[str]] = {}
    for check in sorted(checks):
        for need in NEEDS.get(check, ()):
            if not _PRESENT[need](settings):
                missing.setdefault(need, []).append(check)
    return missing
