"""Nightly mode, proven on this machine: the real suites (``suites/<x>``) run in inner
pytest sessions with ``--target=live --mode=nightly`` against local peers on 127.0.0.1,
exactly as ``make nightly`` runs them against kirchner.social (name pinning through
``--connect-address``/``--https-port``, trust through ``--ca-file``).

Credentials reach the inner runs ONLY through environment variables and files
(``TOOTCHECK_TEST_TOKEN``, ``TOOTCHECK_TEST_TOKEN_FILE``, ``TOOTCHECK_OIDC_PASSWORD_FILE``,
``TOOTCHECK_ADMIN_TOKEN``, a cluster Secret); after each run, every secret value is
searched for in stdout, stderr, junit.xml and every file of the reports directory
(summary.json, summary.html, history.jsonl, evidence). Each run also proves the secret
was really used (a check that needs it passed, or the peer recorded it), so "no leak"
is never vacuous. One inner run per suite (or pair), since each suite has its own peer:

- HTTPS (+ drift without a kubeconfig): read-only, passes;
- streaming with ``--allow-mutating=streaming.delivery``: the allowed mutating check
  runs and passes, the other (``streaming.latency``) is refused;
- streaming with a peer that rejects valid tokens and nothing allowed: the failure
  output and both refusals carry no token;
- OIDC behind one SNI-routed port with ``--allow-mutating=oidc.login``: discovery and
  the login pass, ``oidc.negative_paths`` is refused;
- Sidekiq and drift against a fake cluster API (objects, the Redis Secret, the
  port-forward) in front of a real Redis with a real Sidekiq.

The module fixture starts every peer, launches the five inner runs at once (each its
own process, forked by tests/inner.py) and collects them; the tests then judge one run
each.
"""

from __future__ import annotations

import base64
import contextlib
import copy
import json
import os
import re
import secrets
import ssl
import subprocess
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import trustme

from tests import REPO_ROOT, inner
from tests.nightly.sni_router import SniRouter
from tests.peers.databases import RedisPeer, scratch_dir
from tests.peers.oidc_idp import AUTH_HOST, AuthentikPeer, PeerCA
from tests.peers.oidc_rp import DOMAIN, MastodonPeer
from tests.peers.sidekiq import POD_NAME, SidekiqPeer, sidekiq_binary
from tests.peers.streaming import running_peer
from tests.peers.tls import LocalCA, MastodonSite, RedirectSite, SitePeer, server_context
from tests.rehearsal.pods import mastodon_pod
from tootcheck import versions
from tootcheck.checks.registry import all_checks
from tootcheck.clients.pinning import PinMap
from tootcheck.drift import render_at
from tootcheck.testing import peer_missing

pytestmark = pytest.mark.timeout(180)

INNER_TIMEOUT_S = 150


# ------------------------------------------------------------ the inner run


@dataclass
class InnerRun:
    rc: int
    stdout: str
    stderr: str
    reports: Path
    junit: Path

    @property
    def tests(self) -> dict[str, dict]:
        summary = json.loads((self.reports / "summary.json").read_text())
        return {t["nodeid"].split("::")[-1]: t for t in summary["tests"]}

    def outcome(self, name: str) -> tuple[str, str]:
        test = self.tests[name]
        return test["outcome"], test["message"].removeprefix("Skipped: ")

    def texts(self) -> dict[str, str]:
        found = {"stdout": self.stdout, "stderr": self.stderr,
                 "junit.xml": self.junit.read_text(errors="replace")}
        for path in sorted(self.reports.rglob("*")):
            if path.is_file():
                found[str(path.relative_to(self.reports))] = path.read_text(errors="replace")
        return found

    def assert_no_leak(self, values: Mapping[str, str]) -> None:
        texts = self.texts()
        assert {"summary.json", "summary.html", "history.jsonl", "junit.xml"} <= set(texts)
        leaks = [f"{label} in {where}" for label, value in values.items()
                 for where, text in texts.items() if value in text]
        assert not leaks, f"secrets leaked: {leaks}"

    def describe(self) -> str:
        return f"rc={self.rc}\n{self.stdout[-3000:]}\n{self.stderr[-2000:]}"


@dataclass
class Launched:
    """An inner run in progress; ``collect`` waits for it (bounded) and reads its output."""

    process: inner.Session
    tmp: Path

    def collect(self) -> InnerRun:
        try:
            self.process.wait(timeout=INNER_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.process.kill()  # our own child, by its handle
            self.process.wait(timeout=10)
        return InnerRun(self.process.returncode, (self.tmp / "stdout").read_text(),
                        (self.tmp / "stderr").read_text(), self.tmp / "reports",
                        self.tmp / "junit.xml")


def others(paths: list[str], *also: str) -> str:
    """``--allow-missing`` for the checks of the suites not run (and ``also``)."""
    suites = {Path(p).parts[1] for p in paths}
    names = [n for n in sorted(all_checks()) if n.split(".")[0] not in suites]
    return "--allow-missing=" + ",".join([*names, *also])


def launch(tmp: Path, paths: list[str], *args: str, env: Mapping[str, str],
           allow: tuple[str, ...] = ()) -> Launched:
    """``python -m pytest <paths> --target=live --mode=nightly ...`` in the repository,
    credentials in ``env`` only (never on the command line); the checks of other suites
    (and ``allow``) may be absent."""
    tmp.mkdir(parents=True, exist_ok=True)
    command = [*paths, "--target=live", "--mode=nightly",
               others(paths, *allow),
               "-p", "no:pytest-kind", "-p", "no:cacheprovider", "-p", "no:hypothesispytest",
               "-p", "no:pytest_httpserver",
               "--reports-dir", str(tmp / "reports"), "--junitxml", str(tmp / "junit.xml"),
               "-o", "junit_family=xunit2", "-rA", *args]
    for key, value in env.items():
        if "TOKEN" in key or "PASSWORD" in key:
            assert value not in " ".join(command)
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("TOOTCHECK_")}
    process = inner.start(command, cwd=REPO_ROOT, env={**inherited, **env},
                          stdout=tmp / "stdout", stderr=tmp / "stderr")
    return Launched(process, tmp)


def secret_file(tmp: Path, name: str, value: str) -> Path:
    tmp.mkdir(parents=True, exist_ok=True)
    path = tmp / name
    path.touch(mode=0o600)
    path.write_text(value + "\n")
    return path


def pinned(port: int, ca_file: Path, http_port: int | None = None) -> list[str]:
    args = ["--connect-address=127.0.0.1", f"--https-port={port}", f"--ca-file={ca_file}"]
    return args + ([f"--http-port={http_port}"] if http_port else [])


REFUSED = ("refused: {check} is mutating and nightly mode runs read-only checks "
           "(allow it with --allow-mutating={check})")


@dataclass
class Scenario:
    run: InnerRun | None = None
    secrets: dict[str, str] = field(default_factory=dict)
    facts: dict[str, Any] = field(default_factory=dict)
    missing: str = ""


def as_live(obj: dict) -> dict:
    live = copy.deepcopy(obj)
    live["metadata"].update(uid=secrets.token_hex(8), resourceVersion="7", generation=1,
                            creationTimestamp="2026-11-27T00:00:00Z")
    live["status"] = {}
    return live


def streaming_tls(directory: Path) -> tuple[ssl.SSLContext, Path]:
    ca = trustme.CA()
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(DOMAIN).configure_cert(server)
    ca_file = directory / "streaming-ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    return server, ca_file


@pytest.fixture(scope="module")
def nightly(tmp_path_factory: pytest.TempPathFactory,
            make_redis: Callable[..., RedisPeer]) -> Iterator[dict[str, Scenario]]:
    """Every peer up, the five inner runs launched together, then collected."""
    root = tmp_path_factory.mktemp("nightly")
    found = {name: Scenario() for name in ("https", "allowed", "failing", "oidc", "cluster")}
    launched: dict[str, Launched] = {}
    with contextlib.ExitStack() as stack:
        # HTTPS (+ drift, no kubeconfig): token from a file
        ca = LocalCA(root, "kirchner-social test CA")
        https = SitePeer(MastodonSite(username="test"), server_context(ca.issue()))
        stack.callback(https.stop)
        http = SitePeer(RedirectSite())
        stack.callback(http.stop)
        token = "tok-" + secrets.token_urlsafe(24)
        found["https"].secrets = {"test token": token}
        launched["https"] = launch(
            root / "https", ["suites/https", "suites/drift"], *pinned(https.port, ca.ca_file,
                                                                      http.port),
            env={"TOOTCHECK_TEST_TOKEN_FILE": str(secret_file(root / "https", "t", token)),
                 "TOOTCHECK_TEST_USERNAME": "test"},
            allow=("drift.render_vs_live",))  # no kubeconfig: drift is not compared

        # streaming: one healthy peer with a mutating check allowed, one that rejects tokens
        tls = streaming_tls(root)
        for name, allow in (("allowed", ("--allow-mutating=streaming.delivery",)),
                            ("failing", ())):
            peer = stack.enter_context(running_peer(*tls))
            if name == "failing":
                peer.streaming.faults.reject_valid_tokens = True
            assert peer.ingress is not None
            found[name].secrets = {"test token": peer.token}
            launched[name] = launch(root / name, ["suites/streaming"],
                                    *pinned(peer.ingress.port, peer.ca_file), *allow,
                                    env={"TOOTCHECK_TEST_TOKEN": peer.token})

        # OIDC: Authentik and Mastodon peers behind one SNI-routed port
        oidc_ca = PeerCA(scratch_dir("nightly-oidc"))
        password = "pw-" + secrets.token_urlsafe(18)
        admin_token = "adm-" + secrets.token_urlsafe(24)
        idp = AuthentikPeer(oidc_ca, password=password)
        stack.callback(idp.stop)
        rp = MastodonPeer(oidc_ca, PinMap({(AUTH_HOST, 443): ("127.0.0.1", idp.port)}),
                          client_secret=idp.client_secret, admin_token=admin_token)
        stack.callback(rp.stop)
        router = SniRouter({DOMAIN: ("127.0.0.1", rp.port), AUTH_HOST: ("127.0.0.1", idp.port)})
        stack.callback(router.stop)
        found["oidc"].secrets = {"OIDC password": password, "admin token": admin_token}
        launched["oidc"] = launch(
            root / "oidc", ["suites/oidc"], *pinned(router.port, oidc_ca.ca_file),
            "--allow-mutating=oidc.login",
            env={"TOOTCHECK_OIDC_USERNAME": "testuser",
                 "TOOTCHECK_OIDC_EMAIL": idp.users["testuser"].email,  # proven, not skipped
                 "TOOTCHECK_OIDC_PASSWORD_FILE": str(secret_file(root / "oidc", "pw", password)),
                 "TOOTCHECK_ADMIN_TOKEN": admin_token})

        # Sidekiq + drift: a fake cluster API before a real Redis and a real Sidekiq
        if sidekiq_binary() is None:
            found["cluster"].missing = "no sidekiq binary (Debian ruby-sidekiq)"
        else:
            redis_password = "redis-" + secrets.token_urlsafe(18)
            redis_peer = make_redis(password=redis_password)
            sidekiq = SidekiqPeer(redis_peer.url(0), scratch_dir("nightly-sidekiq"),
                                  hostname=POD_NAME)
            sidekiq.start()
            stack.callback(sidekiq.stop)
            objects = [as_live(o) for o in render_at("HEAD", "manifests/rendered/mastodon.yaml")]
            objects.append(mastodon_pod(versions.MASTODON, name=POD_NAME))
            objects.append({"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                            "metadata": {"name": "mastodon-secrets", "namespace": "mastodon"},
                            "data": {"REDIS_PASSWORD": base64.b64encode(
                                redis_password.encode()).decode()}})
            where = root / "cluster"
            where.mkdir()
            (where / "cluster.json").write_text(
                json.dumps({"objects": objects, "forward": {"6379": redis_peer.port}}))
            (where / "kubeconfig").write_text("apiVersion: v1\nkind: Config\n")
            found["cluster"].secrets = {"Redis password": redis_password}
            launched["cluster"] = launch(
                where, ["suites/sidekiq", "suites/drift"], "--tootcheck-base-url=https://kirchner.social",
                f"--tootcheck-kubeconfig={where / 'kubeconfig'}", "-p", "tests.nightly.fake_cluster",
                f"--fake-cluster={where / 'cluster.json'}", "--allow-missing=sidekiq.queues_drain",
                # queues_drain observes for 15 s by design; proven in tests/checks/test_sidekiq.py
                "--deselect", "suites/sidekiq/test_sidekiq.py::test_sidekiq_queues_drain",
                env={})

        for name, process in launched.items():
            found[name].run = process.collect()
        found["https"].facts["paths"] = [path for _, path in https.site.requests_seen]
        found["oidc"].facts.update(
            routed=set(router.routed), password_seen=any(r.contains(password) for r in idp.requests),
            users=[u.username for u in rp.users.values()])
    yield found


def judged(nightly: dict[str, Scenario], name: str, rc: int = 0) -> InnerRun:
    scenario = nightly[name]
    if scenario.missing:
        peer_missing(name, scenario.missing)
    assert scenario.run is not None
    assert scenario.run.rc == rc, scenario.run.describe()
    scenario.run.assert_no_leak(scenario.secrets)
    return scenario.run


# ------------------------------------------------------------------- the runs


def test_readonly_https_run_passes(nightly: dict[str, Scenario]) -> None:
    run = judged(nightly, "https")
    for name in ("test_served_certificate", "test_tls_versions", "test_http_semantics",
                 "test_mastodon_endpoints", "test_foreign_host_refused"):
        assert run.outcome(name)[0] == "passed", run.outcome(name)
    assert run.outcome("test_served_certificate_is_the_secrets") == (
        "skipped", "target live://kirchner.social has no kubeconfig: Secret kirchner-social-tls "
                   "not compared")
    assert run.outcome("test_render_vs_live") == (
        "skipped", "target live://kirchner.social has no kubeconfig: drift not compared "
                   "(pass --tootcheck-kubeconfig)")
    assert all("readonly" in t["modes"] for t in run.tests.values())
    assert "/.well-known/webfinger" in nightly["https"].facts["paths"]
    assert json.loads((run.reports / "summary.json").read_text())["mode"] == "nightly"


def test_allowed_mutating_check_runs_and_the_others_are_refused(
        nightly: dict[str, Scenario]) -> None:
    run = judged(nightly, "allowed")
    assert run.outcome("test_streaming_health")[0] == "passed"
    assert run.outcome("test_streaming_auth")[0] == "passed"  # the token from the environment
    assert run.outcome("test_streaming_delivery")[0] == "passed"  # mutating, but allowed
    assert "mutating" in run.tests["test_streaming_delivery"]["modes"]
    assert run.outcome("test_streaming_latency") == (
        "skipped", REFUSED.format(check="streaming.latency"))


def test_a_failing_run_and_its_refusals_do_not_leak(nightly: dict[str, Scenario]) -> None:
    run = judged(nightly, "failing", rc=1)
    outcome, message = run.outcome("test_streaming_auth")
    assert outcome == "failed" and "valid-token-rejected" in message
    for check in ("streaming.delivery", "streaming.latency"):
        name = "test_" + check.replace(".", "_")
        assert run.outcome(name) == ("skipped", REFUSED.format(check=check))
    assert "valid-token-rejected" in run.junit.read_text()  # the failure is in the report
    page = (run.reports / "summary.html").read_text()  # matrix first, the failure before passes
    assert len(page.encode()) < 200 * 1024
    assert page.index("id='capabilities'") < page.index("valid-token-rejected") < page.index("id='passes'")
    assert re.search(r"fault: <code>[a-z,-]*valid-token-rejected", page)
    assert "[valid-token-rejected]" in (run.reports / "summary.md").read_text()


def test_oidc_discovery_and_the_allowed_login(nightly: dict[str, Scenario]) -> None:
    run = judged(nightly, "oidc")
    facts = nightly["oidc"].facts
    assert run.outcome("test_discovery")[0] == "passed"
    assert run.outcome("test_login")[0] == "passed"
    assert run.outcome("test_negative_paths") == (
        "skipped", REFUSED.format(check="oidc.negative_paths"))
    assert {AUTH_HOST, DOMAIN} <= facts["routed"]  # both hosts through the one port
    assert facts["password_seen"], "the password from the file reached Authentik"
    assert facts["users"] == ["testuser"]


def test_sidekiq_and_drift_against_the_cluster(nightly: dict[str, Scenario]) -> None:
    run = judged(nightly, "cluster")
    assert run.outcome("test_sidekiq_health")[0] == "passed"  # needed the Secret's password
    assert run.outcome("test_sidekiq_roundtrip") == (
        "skipped", REFUSED.format(check="sidekiq.roundtrip"))
    assert run.outcome("test_render_vs_live")[0] == "passed"
