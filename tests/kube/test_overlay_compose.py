"""make e2e APP=DIR: the kind overlay composed around the operator's own directory, for
the reference and the seed-style example. Rendered with kubectl kustomize over a plain
base holding DIR's committed render (the chart is not available offline), else judged
on the patches themselves."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests import REPO_ROOT, load_all
from tootcheck.errors import BadInput
from tootcheck.kube import overlay
from tootcheck.secretgen import MASTODON_SECRET_KEYS

ISSUER = "https://auth.kirchner.social/application/o/mastodon/"
CASES = {
    "reference": (REPO_ROOT / "manifests/apps/mastodon", REPO_ROOT / "manifests/rendered/mastodon.yaml"),
    "seed-style": (REPO_ROOT / "examples/seed-style/apps/mastodon",
                   REPO_ROOT / "examples/seed-style/rendered/mastodon.yaml"),
    "seed-style-defective": (REPO_ROOT / "examples/seed-style-defective/apps/mastodon",
                             REPO_ROOT / "examples/seed-style-defective/rendered/mastodon.yaml"),
}
KUBECTL = shutil.which("kubectl")


def docs_of(text: str) -> list[dict]:
    return [d for d in load_all(text) if isinstance(d, dict)]


def compose(tmp_path: Path, name: str) -> tuple[overlay.AppFacts, list[dict], list[dict]]:
    """(facts, base docs, rendered overlay docs). The base is DIR's committed render in a
    plain kustomization, so kustomize applies the composed patches for real."""
    app_dir, render = CASES[name]
    base = docs_of(render.read_text())
    plain = tmp_path / "app"
    plain.mkdir()
    shutil.copy(render, plain / "render.yaml")
    shutil.copy(app_dir / "kustomization.yaml", plain / "kustomization.yaml.orig")
    (plain / "kustomization.yaml").write_text("resources: [render.yaml]\n")
    dest = tmp_path / "overlay"
    facts = overlay.write_overlay(plain, base, dest, oidc_issuer=ISSUER, domain="kirchner.social")
    kustomization = yaml.safe_load((dest / "kustomization.yaml").read_text())
    assert kustomization["resources"][0] == "../app"
    if KUBECTL is None:
        return facts, base, []
    done = subprocess.run([KUBECTL, "kustomize", str(dest)], capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    return facts, base, docs_of(done.stdout)


def find(docs: list[dict], kind: str, name: str) -> dict:
    return next(d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name)


def containers(dep: dict) -> list[dict]:
    spec = dep["spec"]["template"]["spec"]
    return [*spec.get("initContainers", []), *spec["containers"]]


def images(docs: list[dict]) -> list[str]:
    return [c["image"] for d in docs if d["kind"] == "Deployment" for c in containers(d)]


@pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed: the render half needs it")
def test_reference_overlay_matches_the_committed_kind_overlay(tmp_path: Path) -> None:
    """Composed around manifests/apps/mastodon, the overlay renders what the hand-written
    manifests/overlays/kind renders: same Deployment, same ConfigMap."""
    facts, base, docs = compose(tmp_path, "reference")
    assert {k: set(v) for k, v in facts.secret_keys.items()} == {
        "mastodon-secrets": set(MASTODON_SECRET_KEYS)}
    assert not facts.inline_nfs and not facts.configmap_secret_keys
    committed = docs_of((REPO_ROOT / "manifests/rendered/overlay-kind.yaml").read_text())
    for kind, name in (("Deployment", "mastodon"), ("ConfigMap", "mastodon-env")):
        ours, theirs = find(docs, kind, name), find(committed, kind, name)
        ours["metadata"].pop("annotations", None)
        theirs["metadata"].pop("annotations", None)
        if kind == "Deployment":
            ours["spec"]["template"]["spec"]["volumes"].sort(key=lambda v: v["name"])
            theirs["spec"]["template"]["spec"]["volumes"].sort(key=lambda v: v["name"])
        assert ours == theirs, kind
    assert images(docs) == images(base)


@pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed: the render half needs it")
def test_seed_style_overlay(tmp_path: Path) -> None:
    facts, base, docs = compose(tmp_path, "seed-style")
    assert images(docs) == images(base)  # exactly as DIR pins them
    dep = find(docs, "Deployment", "mastodon")
    assert [c["name"] for c in containers(dep)] == [c["name"] for c in containers(find(
        base, "Deployment", "mastodon"))]
    volumes = {v["name"]: v for v in dep["spec"]["template"]["spec"]["volumes"]}
    for n in facts.inline_nfs:  # inline NFS -> claims on the in-cluster NFS server
        assert "nfs" not in volumes[n.volume]
        claim = find(docs, "PersistentVolumeClaim", volumes[n.volume]["persistentVolumeClaim"]["claimName"])
        assert claim["spec"]["storageClassName"] == overlay.NFS_CLASS
    assert {n.volume for n in facts.inline_nfs} == {"system", "postgres", "redis"}
    env = find(docs, "ConfigMap", "mastodon-env")["data"]
    assert env["OIDC_ISSUER"] == ISSUER and env["OIDC_CLIENT_ID"] == "mastodon"
    assert env["SMTP_SERVER"] == "mailpit.mailpit.svc.cluster.local"
    assert env["LOCAL_DOMAIN"] == "kirchner.social"
    assert find(docs, "Namespace", "mastodon")  # DIR leaves it to ArgoCD; the overlay adds it
    ann = find(docs, "Ingress", "mastodon")["metadata"]["annotations"]
    assert ann["cert-manager.io/cluster-issuer"] == overlay.KIND_ISSUER  # not letsencrypt-prod
    for c in containers(dep):
        has_ca = any(e.get("name") == "SSL_CERT_FILE" for e in c.get("env") or [])
        assert has_ca is (c["name"] in ("web", "sidekiq")), c["name"]
    # per-run secrets for every key DIR reads from its unrendered Secret
    values = overlay.run_values({"DB_PASS": "run-db-pass-0000"}, lambda: "generated-value-1")
    applied = overlay.inject_run_secrets(docs, facts, values)
    secret = find(applied, "Secret", "mastodon-secrets")
    assert set(secret["stringData"]) == set(MASTODON_SECRET_KEYS)
    assert secret["stringData"]["DB_PASS"] == "run-db-pass-0000"


@pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed: the render half needs it")
def test_defective_overlay_replaces_the_configmap_secrets(tmp_path: Path) -> None:
    facts, base, docs = compose(tmp_path, "seed-style-defective")
    planted = find(base, "ConfigMap", "mastodon-env")["data"]
    assert facts.configmap_secret_keys == {"mastodon-env": sorted(
        ["SECRET_KEY_BASE", "OTP_SECRET", "VAPID_PRIVATE_KEY", "DB_PASS", "REDIS_PASSWORD",
         "OIDC_CLIENT_SECRET"])}
    assert facts.secret_keys == {}
    seen: dict[str, str] = {}
    applied = overlay.inject_run_secrets(docs, facts, overlay.run_values(
        {}, lambda: f"run-{len(seen)}-value"))
    data = find(applied, "ConfigMap", "mastodon-env")["data"]
    for key in facts.configmap_secret_keys["mastodon-env"]:
        assert data[key] != planted[key] and data[key].startswith("run-")
    assert images(applied) == images(base)


def test_patches_structure_without_kustomize(tmp_path: Path) -> None:
    """The composed files alone: the env patch targets the app's ConfigMap, the workload
    patch names every container in order and swaps each inline nfs for a claim."""
    app_dir, render = CASES["seed-style"]
    base = docs_of(render.read_text())
    dest = tmp_path / "o"
    facts = overlay.write_overlay(app_dir, base, dest, oidc_issuer=ISSUER, domain="kirchner.social")
    env = docs_of((dest / "patches/env.yaml").read_text())
    assert [(d["kind"], d["metadata"]["name"]) for d in env] == [("ConfigMap", "mastodon-env")]
    patch = yaml.safe_load((dest / "patches/workload-0.yaml").read_text())
    pod = patch["spec"]["template"]["spec"]
    assert [c["name"] for c in pod["containers"]] == [c["name"] for c in containers(base[-2])]
    nfs = [v for v in pod["volumes"] if "persistentVolumeClaim" in v]
    assert all(v["nfs"] is None for v in nfs) and len(nfs) == len(facts.inline_nfs)
    claims = docs_of((dest / "nfs-claims.yaml").read_text())
    assert {c["metadata"]["name"] for c in claims} == {n.claim for n in facts.inline_nfs}
    base_ref = yaml.safe_load((dest / "kustomization.yaml").read_text())["resources"][0]
    assert (dest / base_ref).resolve() == app_dir.resolve()  # DIR itself, not a copy


@pytest.mark.parametrize(("docs", "message"), [
    ([{"kind": "ConfigMap", "metadata": {"name": "x"}, "data": {}}],
     "no container running ghcr.io/mastodon/mastodon"),
    ([{"kind": "Deployment", "apiVersion": "apps/v1", "metadata": {"name": "m"}, "spec": {
        "template": {"spec": {"containers": [
            {"name": "web", "image": "ghcr.io/mastodon/mastodon:v4.7.2",
             "envFrom": [{"configMapRef": {"name": "absent"}}]}]}}}}],
     "not rendered: absent"),
])
def test_an_app_that_cannot_be_adapted_gets_one_line(docs: list[dict], message: str) -> None:
    with pytest.raises(BadInput, match=message) as exc:
        overlay.inspect_app(docs)
    assert "\n" not in str(exc.value)


def test_app_dir_without_kustomization(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match=r"no kustomization\.yaml"):
        overlay.check_app_dir(tmp_path)
    with pytest.raises(BadInput, match="no such directory"):
        overlay.check_app_dir(tmp_path / "missing")


def test_app_dir_option_and_preflight_refuse_a_bad_dir(tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    """make e2e APP=DIR: preflight checks DIR before Docker (one line, exit 2), and the
    pytest option refuses it the same way."""
    from tootcheck import settings
    from tootcheck.cli import main

    with pytest.raises(BadInput, match=r"no kustomization\.yaml"):
        settings.load({"app_dir": tmp_path}, env={})
    assert settings.load({"app_dir": CASES["seed-style"][0]}, env={}).app_dir == CASES["seed-style"][0]
    assert main(["preflight", "e2e", "--app", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert "no kustomization.yaml" in err and "\n" not in err
