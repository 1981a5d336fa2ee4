"""The bring-up engine and its phases against a fake cluster and a fake kind binary."""

from __future__ import annotations

import base64
import json
import re
from functools import partial
from pathlib import Path
from unittest import mock

import pytest
import yaml

from tests import load_all
from tests.kube.fakes import FakeKube
from tootcheck import secretgen
from tootcheck.kube import bringup, objects, plan, safety, testca
from tootcheck.kube.bringup import app as bringup_app
from tootcheck.kube.bringup import cluster as bringup_cluster
from tootcheck.kube.bringup import context as bringup_context
from tootcheck.kube.bringup import identity as bringup_identity
from tootcheck.kube.client import ExecResult
from tootcheck.kube.timings import compare
from tootcheck.kube.timings import document as timings_doc
from tootcheck.redaction import Secret
from tootcheck.settings import Settings
from tootcheck.target import Account
from tootcheck.waiting import wait_until

REPO = Path(__file__).resolve().parents[2]
RENDERED = {
    "manifests/kind/coredns": "infra-coredns.yaml",
    "manifests/infra/cert-manager": "infra-cert-manager.yaml",
    "manifests/infra/issuers": "infra-issuers.yaml",
    "manifests/infra/nfs": "infra-nfs.yaml",
    "manifests/infra/traefik": "infra-traefik.yaml",
    "manifests/infra/authentik": "infra-authentik.yaml",
    "manifests/overlays/kind": "overlay-kind.yaml",
    "manifests/infra/mailpit": "infra-mailpit.yaml",
    "manifests/infra/fediverse-peer": "infra-fediverse-peer.yaml",
}
PHASES = {p.name: p for p in plan.KIND_PLAN}


def make_ctx(tmp_path, kind_bin, kube: FakeKube | None = None, **settings) -> bringup.Context:
    kube = kube or FakeKube()
    base = {"reports_dir": tmp_path / "reports", "cluster_name": "tootcheck"}
    base.update(settings)
    cluster = bringup.SuiteKindCluster("tootcheck", tmp_path / "kube" / "config", kind_bin, kind_bin)
    return bringup.Context(
        settings=Settings(**base), cluster=cluster, progress=bringup.LineProgress(),
        out_dir=tmp_path / "reports" / "bringup", cache_dir=tmp_path / "cache", run_id="run1",
        connect=lambda path, context: kube,
        render_fn=fake_render)


def fake_render(directory: Path) -> str:
    """The committed render of a phase's directory: the infrastructure comes from the
    package data (tootcheck/data/...), the overlay from the working directory."""
    (name,) = [v for k, v in RENDERED.items()
               if directory.as_posix().endswith(k.removeprefix("manifests/"))]
    return (REPO / "manifests" / "rendered" / name).read_text()


# ------------------------------------------------------------------ cluster


def test_fresh_cluster_is_created_with_substituted_ports_and_marked(tmp_path, kind_bin):
    kube = FakeKube()
    ctx = make_ctx(tmp_path, kind_bin, kube, https_port=8443, http_port=8080)
    bringup.execute(ctx, [PHASES["cluster"]], total=len(plan.KIND_PLAN))
    calls = (tmp_path / "clusters.calls").read_text()
    assert "create cluster --name=tootcheck" in calls and "--config" in calls
    config = yaml.safe_load((tmp_path / "cache" / "kind-config.yaml").read_text())
    ports = {m["containerPort"]: m["hostPort"] for m in config["nodes"][0]["extraPortMappings"]}
    assert ports == {443: 8443, 80: 8080}
    marker = kube.objects[("ConfigMap", "kube-system", safety.MARKER_NAME)]
    assert marker["data"]["cluster"] == "tootcheck" and ctx.created and not ctx.reused
    assert re.fullmatch(r"bring-up \[ 1/17\] cluster +\d+\.\ds ran: created \(kindest/node:v1\.34\.0.*",
                        ctx.progress.lines[0])


def test_existing_cluster_without_reuse_is_refused_in_one_line(tmp_path, kind_bin):
    (tmp_path / "clusters").write_text("tootcheck\n")
    ctx = make_ctx(tmp_path, kind_bin)
    with pytest.raises(bringup.BringUpFailed) as info:
        bringup.execute(ctx, [PHASES["cluster"]])
    assert str(info.value) == (
        "bring-up phase cluster failed: kind cluster 'tootcheck' already exists: pass "
        "--reuse-cluster to use it, or delete it with `kind delete cluster --name tootcheck`")
    assert "FAILED" in ctx.progress.lines[0]


def test_reuse_exports_the_kubeconfig_and_writes_no_marker(tmp_path, kind_bin):
    (tmp_path / "clusters").write_text("tootcheck\n")
    kube = FakeKube([objects.state_configmap({"phase.traefik": "abc"})])
    ctx = make_ctx(tmp_path, kind_bin, kube, reuse_cluster=True)
    bringup.execute(ctx, [PHASES["cluster"]])
    assert ctx.reused and not ctx.created
    assert "export kubeconfig" in (tmp_path / "clusters.calls").read_text()
    assert ("ConfigMap", "kube-system", safety.MARKER_NAME) not in kube.objects
    assert ctx.state == {"phase.traefik": "abc"}


def test_reuse_keeps_the_ports_the_cluster_was_created_with(tmp_path, kind_bin):
    kube = FakeKube()
    bringup.execute(make_ctx(tmp_path, kind_bin, kube, https_port=8443), [PHASES["cluster"]])
    again = make_ctx(tmp_path, kind_bin, kube, reuse_cluster=True)  # default ports in settings
    bringup.execute(again, [PHASES["cluster"]])
    assert again.target().pins.resolve("kirchner.social", 443) == ("127.0.0.1", 8443)


def test_kind_failure_is_one_line(tmp_path):
    broken = tmp_path / "kind"
    broken.write_text("#!/bin/sh\necho 'ERROR: failed to create cluster: docker: no space left' >&2\n"
                      "[ \"$1\" = get ] && exit 0\nexit 1\n")
    broken.chmod(0o755)
    ctx = make_ctx(tmp_path, broken)
    with pytest.raises(bringup.BringUpFailed) as info:
        bringup.execute(ctx, [PHASES["cluster"]])
    assert str(info.value).endswith("`kind create cluster` failed: ERROR: failed to create cluster: "
                                    "docker: no space left")


# ------------------------------------------------------------ secrets, render


SMALL = ("manifests/overlays/kind", "manifests/infra/nfs")


def up_to_render(tmp_path, kind_bin, kube=None, paths=SMALL, **settings) -> bringup.Context:
    """Cluster, a render of ``paths`` only (the CRD-laden renders are big), and secrets."""
    ctx = make_ctx(tmp_path, kind_bin, kube, **settings)
    render = plan.Phase("render", always=True, cascade=False, paths=paths)
    bringup.execute(ctx, [PHASES["cluster"], render, PHASES["secrets"]])
    return ctx


def test_secrets_are_generated_once_and_read_back_on_reuse(tmp_path, kind_bin):
    kube = FakeKube()
    ctx = up_to_render(tmp_path, kind_bin, kube)
    stored = kube.objects[("Secret", "kube-system", objects.RUN_SECRETS)]
    assert set(stored["data"]) == set(secretgen.SPECS) | {testca.CERT_KEY, testca.KEY_KEY}
    line = next(ln for ln in ctx.progress.lines if "] secrets " in ln)
    assert f"ran: {len(secretgen.SPECS)} generated; test CA generated, in " in line
    (tmp_path / "clusters").write_text("tootcheck\n")
    again = make_ctx(tmp_path, kind_bin, kube, reuse_cluster=True)
    render = plan.Phase("render", always=True, cascade=False, paths=SMALL)
    bringup.execute(again, [PHASES["cluster"], render, PHASES["secrets"]])
    assert again.secrets["SECRET_KEY_BASE"] == ctx.secrets["SECRET_KEY_BASE"]
    assert again.ca == ctx.ca  # a reused cluster keeps its test CA
    line = next(ln for ln in again.progress.lines if "] secrets " in ln)
    assert f"0 generated, {len(secretgen.SPECS)} read back; test CA read back" in line


def test_render_puts_the_run_vapid_key_into_the_configmap(tmp_path, kind_bin):
    ctx = up_to_render(tmp_path, kind_bin)
    env = next(d for d in ctx.render("manifests/overlays/kind").docs
               if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "mastodon-env")
    assert env["data"]["VAPID_PUBLIC_KEY"] == ctx.secrets.vapid_public_key
    written = (ctx.out_dir / "render" / "overlays-kind.yaml").read_text()
    assert ctx.secrets.vapid_public_key in written
    assert ctx.secrets["VAPID_PRIVATE_KEY"].reveal() not in written
    assert "ghcr.io/mastodon/mastodon:v4.7.2" in bringup_cluster.wanted_images(
        ctx, plan.Phase("app-images", paths=("manifests/overlays/kind",)))


def test_render_needs_no_cluster_and_waits_for_the_run_values_to_write_the_overlay(tmp_path, kind_bin):
    ctx = make_ctx(tmp_path, kind_bin)
    render = plan.Phase("render", always=True, cascade=False, paths=SMALL)
    bringup.execute(ctx, [render])  # no cluster phase: nothing connected
    assert ctx.kube is None and ctx.secrets is None
    overlay = ctx.render("manifests/overlays/kind")
    assert overlay.finish is not None and not overlay.file.exists()  # not final: not written
    assert ctx.render("manifests/infra/nfs").file.is_file()
    production_key = next(d for d in overlay.docs if d["metadata"]["name"] == "mastodon-env")[
        "data"]["VAPID_PUBLIC_KEY"]
    bringup.execute(ctx, [PHASES["cluster"], PHASES["secrets"]])  # the render is the one above
    final = ctx.render("manifests/overlays/kind")
    assert final.finish is None and final.digest != overlay.digest and final.file.is_file()
    env = next(d for d in final.docs if d["metadata"]["name"] == "mastodon-env")["data"]
    assert env["VAPID_PUBLIC_KEY"] == ctx.secrets.vapid_public_key != production_key


def test_target_pins_the_served_hosts_to_the_mapped_ports(tmp_path, kind_bin):
    ctx = up_to_render(tmp_path, kind_bin, https_port=8443, http_port=8080)
    target = ctx.target()
    assert target.name == "kind://tootcheck" and target.kube_context == "kind-tootcheck"
    assert target.pins.resolve("kirchner.social", 443) == ("127.0.0.1", 8443)
    assert target.pins.resolve("auth.kirchner.social", 80) == ("127.0.0.1", 8080)
    assert target.kubeconfig == tmp_path / "kube" / "config"


# --------------------------------------------------------- apply phases, reuse


def ready_deployment(namespace: str, name: str) -> dict:
    return {"kind": "Deployment", "apiVersion": "apps/v1",
            "metadata": {"name": name, "namespace": namespace, "generation": 1},
            "spec": {"replicas": 1}, "status": {"observedGeneration": 1, "replicas": 1,
                                               "updatedReplicas": 1, "availableReplicas": 1}}


def test_apply_phase_records_its_digest_and_is_skipped_on_reuse(tmp_path, kind_bin):
    kube = FakeKube([ready_deployment("traefik", "traefik")])
    ctx = up_to_render(tmp_path, kind_bin, kube, paths=("manifests/infra/traefik",))
    bringup.execute(ctx, [PHASES["traefik"]])
    digest = bringup_context.phase_digest(ctx, PHASES["traefik"])
    assert kube.objects[("ConfigMap", "kube-system", objects.STATE)]["data"]["phase.traefik"] == digest
    applied = {(d["kind"], d["metadata"]["name"]) for d in kube.applied}
    assert ("Deployment", "traefik") in applied and ("Namespace", "traefik") in applied
    assert applied and [d["kind"] for d in kube.applied if d["kind"] == "CustomResourceDefinition"]
    # reuse: state says done with the same digest and the Deployment is ready: skipped
    (tmp_path / "clusters").write_text("tootcheck\n")
    before = len(kube.applied)
    again = up_to_render(tmp_path, kind_bin, kube, paths=("manifests/infra/traefik",),
                         reuse_cluster=True)
    bringup.execute(again, [PHASES["traefik"]])
    assert again.timings.actions["traefik"] == "skipped"
    assert not any(d["kind"] == "Deployment" for d in kube.applied[before:])


class FlakyListKube(FakeKube):
    """An API server that drops the first ``failures`` list calls (busy runner)."""

    def __init__(self, *args, failures: int = 2, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.failures = failures

    def list(self, *args, **kwargs):
        if self.failures:
            from kubernetes.client import ApiException

            self.failures -= 1
            raise ApiException(status=503, reason="Service Unavailable")
        return super().list(*args, **kwargs)


def test_a_transient_api_error_during_a_wait_is_polled_through(tmp_path, kind_bin):
    kube = FlakyListKube([ready_deployment("traefik", "traefik")], failures=0)
    ctx = up_to_render(tmp_path, kind_bin, kube, paths=("manifests/infra/traefik",))
    kube.failures = 2
    traefik = plan.Phase("traefik", paths=("manifests/infra/traefik",), timeout=30, ready="r")
    with mock.patch("tootcheck.kube.waits.wait_until", partial(wait_until, sleep=lambda s: None)):
        bringup.execute(ctx, [traefik])
    assert ctx.timings.actions["traefik"] == "ran" and kube.failures == 0


def test_changed_manifests_make_a_phase_run_again(tmp_path, kind_bin):
    kube = FakeKube([ready_deployment("traefik", "traefik"),
                     objects.state_configmap({"phase.traefik": "an-older-render"})])
    (tmp_path / "clusters").write_text("tootcheck\n")
    ctx = up_to_render(tmp_path, kind_bin, kube, paths=("manifests/infra/traefik",), reuse_cluster=True)
    bringup.execute(ctx, [PHASES["traefik"]])
    assert ctx.timings.actions["traefik"] == "ran"


def test_a_phase_that_does_not_get_ready_fails_with_the_last_state(tmp_path, kind_bin):
    kube = FakeKube()
    ctx = up_to_render(tmp_path, kind_bin, kube)
    storage = plan.Phase("storage", paths=("manifests/infra/nfs",), timeout=0.2, ready="r")
    with pytest.raises(bringup.BringUpFailed) as info:
        bringup.execute(ctx, [storage])
    message = str(info.value)
    assert message.startswith("bring-up phase storage failed: timed out after 0s waiting for storage")
    assert "Deployment/nfs/nfs-server: 0 of 1 replicas updated" in message
    assert ctx.timings.actions["storage"] == "failed"
    path = bringup.write_timings(ctx, "failed")
    data = json.loads(path.read_text())
    assert data["outcome"] == "failed" and set(data["phases"]) == {"cluster", "secrets", "render",
                                                                  "storage"}


# ---------------------------------------------------------------- accounts


def mastodon_pod() -> dict:
    return {"kind": "Pod", "apiVersion": "v1",
            "metadata": {"name": "mastodon-abc", "namespace": "mastodon",
                         "labels": {"app.kubernetes.io/name": "mastodon",
                                    "app.kubernetes.io/controller": "mastodon"}},
            "spec": {"containers": [{"name": "web"}]},
            "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}],
                       "containerStatuses": [{"name": "web", "ready": True, "restartCount": 0,
                                              "state": {"running": {}}}]}}


def test_accounts_are_created_tokens_minted_verified_and_stored(tmp_path, kind_bin, monkeypatch):
    kube = FakeKube([mastodon_pod()])
    tokens = {u: f"tok_{u}_" + "x" * 30 for u in ("tootcheck_test", "tootcheck_second", "tootcheck_admin")}

    def handler(namespace, pod, container, argv):
        assert (namespace, pod, container) == ("mastodon", "mastodon-abc", "web")
        if argv[0] == "tootctl":
            if argv[3] == "tootcheck_second":
                return ExecResult(1, "Failure/Error: username\n  Username has already been taken\n", "")
            return ExecResult(0, f"OK\nNew password: pw-{argv[3]}-123456\n", "")
        assert argv[3] == "contact=tootcheck_admin@kirchner.social"
        lines = [f"{'TOOTCHECK_TOKEN'} {a.split(':')[0]} {tokens[a.split(':')[0]]}" for a in argv[4:]]
        return ExecResult(0, "Rails boot noise\n" + "\n".join(lines) + "\n", "")

    kube.exec_handler = handler
    verified = []
    monkeypatch.setattr(bringup_app, "verify_token",
                        lambda ctx, token, username: verified.append(username) or None)
    ctx = up_to_render(tmp_path, kind_bin, kube)
    bringup.execute(ctx, [PHASES["accounts"]])
    assert sorted(verified) == sorted(tokens)
    assert ctx.accounts["admin"].token.reveal() == tokens["tootcheck_admin"]
    assert ctx.accounts["test"].password.reveal() == "pw-tootcheck_test-123456"
    assert ctx.accounts["second"].password is None  # existed before: password unknown
    assert ctx.accounts["oidc"].username == "tootcheck-oidc"
    assert ctx.accounts["oidc"].password == ctx.secrets["OIDC_TEST_USER_PASSWORD"]
    stored = objects.decode_data(kube.objects[("Secret", "mastodon", objects.ACCOUNTS_SECRET)])
    assert stored["admin.token"] == tokens["tootcheck_admin"]
    line = ctx.progress.lines[-1]
    assert "2 created, 1 existed; 3 tokens minted and verified" in line
    for token in tokens.values():
        assert token not in "\n".join(ctx.progress.lines)
    assert ["tootctl", "accounts", "create", "tootcheck_admin", "--email", "tootcheck_admin@kirchner.social",
            "--confirmed", "--approve", "--role", "Owner"] in [list(c[3]) for c in kube.exec_calls]


def test_token_minting_failure_names_the_accounts_not_the_output(tmp_path, kind_bin):
    kube = FakeKube([mastodon_pod()])
    kube.exec_handler = lambda ns, pod, c, argv: (
        ExecResult(0, "OK\nNew password: abcdef123456\n", "") if argv[0] == "tootctl"
        else ExecResult(1, "", "ActiveRecord::RecordInvalid: Validation failed\n"))
    ctx = up_to_render(tmp_path, kind_bin, kube)
    with pytest.raises(bringup.BringUpFailed) as info:
        bringup.execute(ctx, [PHASES["accounts"]])
    assert "no token for tootcheck_test, tootcheck_second, tootcheck_admin" in str(info.value)
    assert "RecordInvalid" in str(info.value) and "abcdef123456" not in str(info.value)


# ------------------------------------------------------------ objects, safety


def test_authentik_secret_carries_every_env_the_blueprint_and_chart_read(tmp_path):
    values = secretgen.generate()
    secret = objects.authentik_bootstrap(values, "kirchner.social")
    blueprint = (REPO / "manifests/infra/authentik/blueprints/mastodon.yaml").read_text()
    env_names = set(re.findall(r"!Env\s+([A-Z_]+)", blueprint))
    assert env_names and env_names <= set(secret["data"])
    statefulset = (REPO / "manifests/infra/authentik/postgresql.yaml").read_text()
    assert "key: AUTHENTIK_POSTGRESQL__PASSWORD" in statefulset
    assert {"AUTHENTIK_SECRET_KEY", "AUTHENTIK_POSTGRESQL__PASSWORD", "AUTHENTIK_BOOTSTRAP_TOKEN"} <= set(
        secret["data"])
    assert secret["metadata"] == {"name": "authentik-bootstrap", "namespace": "authentik",
                                  "labels": {"app.kubernetes.io/managed-by": "tootcheck-tests"}}
    decoded = base64.b64decode(secret["data"]["MASTODON_OIDC_CLIENT_SECRET"]).decode()
    assert decoded == values["OIDC_CLIENT_SECRET"].reveal()


def test_mastodon_secret_has_every_key_the_deployment_references():
    rendered = load_all((REPO / "manifests/rendered/overlay-kind.yaml").read_text())
    referenced = set()
    for doc in rendered:
        text = json.dumps(doc)
        referenced.update(re.findall(r'"key": "([A-Z_]+)", "name": "mastodon-secrets"', text))
    secret = objects.mastodon_secrets(secretgen.generate())
    assert referenced and referenced <= set(secret["data"])
    assert set(secret["data"]) == set(secretgen.MASTODON_SECRET_KEYS)


def test_ca_configmap_matches_the_overlay_patch():
    patch = (REPO / "manifests/overlays/kind/patches/tootcheck-ca.yaml").read_text()
    cm = objects.ca_configmap("-----BEGIN CERTIFICATE-----\n")
    assert f"name: {cm['metadata']['name']}" in patch and "key: ca.crt" in patch
    assert list(cm["data"]) == ["ca.crt"]


def test_blueprint_name_and_oidc_user_match_the_blueprint():
    text = (REPO / "manifests/infra/authentik/blueprints/mastodon.yaml").read_text()
    assert bringup_identity.blueprint_name(text) == "tootcheck - Mastodon OIDC"
    assert f"username: {objects.OIDC_USERNAME}" in text


def test_created_verdict_reads_marker_and_kind(tmp_path, kind_bin):
    kube = FakeKube()
    ctx = make_ctx(tmp_path, kind_bin, kube)
    bringup.execute(ctx, [PHASES["cluster"]])
    assert bringup.created_verdict(ctx).created_by_suite
    del kube.objects[("ConfigMap", "kube-system", safety.MARKER_NAME)]
    assert not bringup.created_verdict(ctx).created_by_suite


# ------------------------------------------------------------- keep-cluster


@pytest.mark.parametrize(("policy", "failed", "reused", "keep"), [
    ("always", False, False, True),
    ("never", True, False, False),
    ("never", True, True, False),
    ("on-failure", True, False, True),
    ("on-failure", False, False, False),
    ("on-failure", False, True, True),
])
def test_keep_decision(policy, failed, reused, keep):
    decision = bringup.keep_decision(policy, failed=failed, reused=reused)
    assert decision.keep is keep and decision.reason


@pytest.mark.parametrize("policy", ["always", "never", "on-failure"])
def test_a_cluster_the_suite_did_not_create_is_never_deleted(policy):
    decision = bringup.keep_decision(policy, failed=False, reused=True, foreign=True)
    assert decision.keep and "did not create" in decision.reason


def test_reconnect_lines_name_kubeconfig_and_kubectl_command():
    lines = bringup.reconnect_lines("tootcheck", Path("/repo/.cache/kind/tootcheck/kubeconfig"),
                                    "mastodon", "a test failed")
    assert lines[1] == "  export KUBECONFIG=/repo/.cache/kind/tootcheck/kubeconfig"
    assert lines[2] == "  kubectl --context kind-tootcheck -n mastodon get pods"
    assert "--reuse-cluster" in lines[3]


def test_run_kind_config_only_touches_the_two_host_ports():
    base = yaml.safe_load((REPO / "manifests/kind/cluster.yaml").read_text())
    out = bringup.run_kind_config(base, 9443, 9080)
    assert out["nodes"][0]["image"] == base["nodes"][0]["image"]
    assert [m["hostPort"] for m in out["nodes"][0]["extraPortMappings"]] == [9080, 9443]
    assert base["nodes"][0]["extraPortMappings"][0]["hostPort"] == 80  # input untouched


def test_timings_compare_lines():
    cold = {"phases": {"images": 300.0, "mastodon": 120.0}, "total_s": 420.0,
            "images": {"pulled": ["a", "b"], "host_hits": 0}}
    warm = {"phases": {"images": 40.0, "mastodon": 110.0}, "total_s": 150.0,
            "images": {"pulled": [], "host_hits": 2}}
    lines = compare(cold, warm)
    assert lines[1].split() == ["images", "300.0s", "40.0s", "-260.0s"]
    assert lines[-2].split() == ["total", "420.0s", "150.0s", "-270.0s"]
    assert lines[-1] == "images: before pulled 2, host cache 0; after pulled 0, host cache 2"


def test_timings_cli(tmp_path, capsys):
    from tootcheck.kube import timings

    run = {"phases": {"images": 40.0}, "total_s": 40.0,
           "images": {"images": ["ghcr.io/mastodon/mastodon:v4.7.2", "docker.io/traefik:v3.7.11"]}}
    path = tmp_path / "t.json"
    path.write_text(json.dumps(run))
    assert timings.main(["images", str(path)]) == 0
    assert capsys.readouterr().out.split() == run["images"]["images"]
    assert timings.main(["compare", str(path), str(path)]) == 0
    assert "+0.0s" in capsys.readouterr().out
    assert timings.main(["compare", str(path)]) == 2
    assert timings.main(["images", str(tmp_path / "missing.json")]) == 2


def test_secret_wrapping_survives_account_objects():
    token = Secret("a-token-value-that-is-long", "token")
    assert "a-token-value" not in repr(Account("u", token))


def test_render_with_app_dir_composes_the_overlay_around_it(tmp_path, kind_bin):
    """make e2e APP=DIR: the render phase renders DIR, composes the overlay around it and
    puts the run's secrets in: the defective seed-style ConfigMap's planted secrets are
    replaced, and the applied copy on disk holds none of the run's values."""
    app = REPO / "examples" / "seed-style-defective" / "apps" / "mastodon"
    committed = (REPO / "examples" / "seed-style-defective" / "rendered" / "mastodon.yaml").read_text()
    seen: list[Path] = []

    def render_fn(directory: Path) -> str:
        seen.append(directory)
        if directory == app:
            return committed
        assert (directory / "kustomization.yaml").is_file()  # the composed overlay
        return committed  # kustomize itself is covered by tests/kube/test_overlay_compose.py

    ctx = make_ctx(tmp_path, kind_bin, app_dir=app)
    ctx.render_fn = render_fn
    render = plan.Phase("render", always=True, cascade=False, paths=("manifests/overlays/kind",))
    bringup.execute(ctx, [PHASES["cluster"], render, PHASES["secrets"]])
    assert seen[0] == app and seen[1] == ctx.out_dir / "app-overlay"
    env = next(d for d in ctx.render("manifests/overlays/kind").docs if d["kind"] == "ConfigMap")
    planted = load_all(committed)
    planted_env = next(d for d in planted if d and d["kind"] == "ConfigMap")["data"]
    assert env["data"]["DB_PASS"] == ctx.secrets["DB_PASS"].reveal() != planted_env["DB_PASS"]
    assert env["data"]["VAPID_PUBLIC_KEY"] == ctx.secrets.vapid_public_key
    written = (ctx.out_dir / "render" / "overlays-kind.yaml").read_text()
    assert ctx.secrets["DB_PASS"].reveal() not in written
    assert ctx.secrets["SECRET_KEY_BASE"].reveal() not in written


def test_timings_keep_when_each_phase_started_so_concurrent_phases_share_the_axis():
    timings = plan.Timings(origin=100.0)
    timings.record("cluster", 40.0, "ran", started=100.0)
    timings.record("traefik", 25.0, "ran", started=140.0)
    timings.record("storage", 30.0, "ran", started=140.5)
    assert timings.starts == {"cluster": 0.0, "traefik": 40.0, "storage": 40.5}
    assert timings.total == 70.5  # the wall clock, not the 95 s sum
    doc = timings_doc(
        timings, cluster="c", reused=False, outcome="ok")
    assert doc["starts"] == timings.starts and doc["total_s"] == 70.5
    legacy = plan.Timings()
    legacy.record("a", 1.0, "ran")
    assert legacy.starts == {} and legacy.total == 1.0


def test_only_mastodons_certificate_watch_waits_for_its_kind_to_be_served(tmp_path, kind_bin):
    """Mastodon does not need the cert-manager phase: the Certificate's kind may not be served
    when its wait starts, so that watch (alone) is marked to poll through it; what such a
    watch does is tested in tests/kube/test_waits.py."""
    watches = bringup_app.mastodon_watches(make_ctx(tmp_path, kind_bin))
    assert [w.until_served for w in watches if w.kind == "Certificate"] == [True]
    assert not any(w.until_served for w in watches if w.kind != "Certificate")
