"""Secret-valued settings held in a ConfigMap (the seed-style defective example puts
SECRET_KEY_BASE, DB_PASS, ... there) are masked wherever the suite prints or stores
something: a nightly drift, an evidence bundle (render, objects, logs), policy findings,
SARIF, JUnit and the JSON output. Each artifact is grepped for the planted values."""

from __future__ import annotations

import copy
import json
import re
import secrets

import pytest

from tests import REPO_ROOT, load_all
from tests.kube.fakes import FakeKube
from tootcheck import redaction
from tootcheck.checks.drift import check_render_vs_live
from tootcheck.cli import main
from tootcheck.kube import evidence
from tootcheck.redaction import MASK, is_secret_key, mask_secret_settings, secret_setting_values

EXAMPLE = REPO_ROOT / "examples" / "seed-style-defective" / "rendered" / "mastodon.yaml"
# The example commits placeholders for its secret settings; this run plants a value made now
# in their place (same lines), and every artifact is grepped for those values.
PLANTED = {key: f"planted-{secrets.token_urlsafe(18)}" for key in re.findall(
    r"(?m)^  ([A-Z0-9_]+): <path:kv/data/mastodon#\1>$", EXAMPLE.read_text())}
TEXT = re.sub(r"(?m)^  ([A-Z0-9_]+): <path:kv/data/mastodon#\1>$",
              lambda m: f"  {m[1]}: {PLANTED[m[1]]}", EXAMPLE.read_text())
DOCS = [d for d in load_all(TEXT) if d]
CONFIGMAP = next(d for d in DOCS if d["kind"] == "ConfigMap")


@pytest.fixture(autouse=True)
def fresh_redactor(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts with nothing registered: what it masks, its own source masked."""
    monkeypatch.setattr(redaction, "REDACTOR", redaction.Redactor())


def assert_clean(text: str, where: str) -> None:
    for key, value in PLANTED.items():
        assert value not in text, f"{where} shows the value of {key}"


def test_the_example_plants_the_secret_settings() -> None:
    assert set(PLANTED) == {"SECRET_KEY_BASE", "OTP_SECRET", "VAPID_PRIVATE_KEY", "DB_PASS",
                            "REDIS_PASSWORD", "OIDC_CLIENT_SECRET"}
    assert "VAPID_PUBLIC_KEY" in CONFIGMAP["data"] and not is_secret_key("VAPID_PUBLIC_KEY")
    masked = mask_secret_settings(CONFIGMAP)
    assert masked["data"]["DB_PASS"] == MASK and masked["data"]["LOCAL_DOMAIN"] == "kirchner.social"
    assert sorted(secret_setting_values(DOCS)) == sorted(PLANTED.values())


def test_collecting_finds_what_masking_hides_in_the_same_order() -> None:
    """secret_setting_values walks without copying; it must find exactly what the
    masking walk replaces, in its order, on every committed manifest and example."""
    files = sorted({*REPO_ROOT.glob("manifests/rendered/*.yaml"),
                    *REPO_ROOT.glob("examples/**/*.yaml"),
                    *REPO_ROOT.glob("tests/policy/cases/*/*.yaml")})
    docs = [d for f in files for d in load_all(f.read_text()) if d]
    # env entries nested in odd places, a ConfigMap with a {name, value} inside its data
    docs.append({"kind": "ConfigMap", "data": {"name": "DB_PASS", "value": "hunter22",
                                               "SMTP_PASSWORD": "s3cr3t-value"}})
    docs.append({"items": [{"name": "OTP_SECRET", "value": "otp-value-1"}, [[{
        "name": "X_TOKEN", "value": 123456789}]]]})
    masked: list[str] = []
    redaction._walk(docs, masked)
    assert len(masked) > len(PLANTED)
    assert secret_setting_values(docs) == masked


@pytest.mark.parametrize(("name", "secret"), [
    ("SMTP_PASSWORD", True), ("ACTIVE_RECORD_ENCRYPTION_KEY_DERIVATION_SALT", True),
    ("SOME_API_KEY", True), ("MY_SERVICE_SECRET", True), ("VAPID_PUBLIC_KEY", False),
    ("OIDC_TOKEN_ENDPOINT", False), ("LOCAL_DOMAIN", False), ("SMTP_LOGIN", False)])
def test_secret_key_names(name: str, secret: bool) -> None:
    assert is_secret_key(name) is secret


def test_nightly_drift_masks_configmap_secrets() -> None:
    """Live differs in every secret key, and a second ConfigMap lost its data entirely:
    the drift names the keys and never shows a value, rendered or live."""
    live_cm = copy.deepcopy(CONFIGMAP)
    live_cm["data"] = {k: (v + "-rotated" if k in PLANTED else v) for k, v in live_cm["data"].items()}
    gone = copy.deepcopy(CONFIGMAP)
    gone["metadata"]["name"] = "mastodon-env-copy"
    live_gone = {k: v for k, v in copy.deepcopy(gone).items() if k != "data"}
    live = {("ConfigMap", "mastodon-env"): live_cm, ("ConfigMap", "mastodon-env-copy"): live_gone}
    result = check_render_vs_live([CONFIGMAP, gone], lambda o: live.get(
        (o["kind"], o["metadata"]["name"])), target="stub://nightly", revision="HEAD")
    assert not result.ok
    text = json.dumps(result.evidence) + " ".join(str(f) for f in result.faults)
    assert_clean(text, "drift")
    assert "data.SECRET_KEY_BASE" in text and MASK in text


def test_evidence_bundle_masks_render_objects_and_logs(tmp_path) -> None:
    render = tmp_path / "mastodon.yaml"
    render.write_text(TEXT)
    pod = {"kind": "Pod", "apiVersion": "v1", "metadata": {"name": "m-1", "namespace": "mastodon"},
           "spec": {"containers": [{"name": "web", "env": [
               {"name": "DB_PASS", "value": PLANTED["DB_PASS"]}]}]},
           "status": {"phase": "Running", "containerStatuses": [
               {"name": "web", "ready": False, "restartCount": 0, "state": {"running": {}}}]}}
    kube = FakeKube([{"kind": "Namespace", "metadata": {"name": "mastodon"}},
                     {**CONFIGMAP, "apiVersion": "v1"}, pod])
    kube.logs[("mastodon", "m-1", "web", False)] = (
        f"booting with SECRET_KEY_BASE={PLANTED['SECRET_KEY_BASE']}\n")
    snapshot = evidence.take_snapshot(evidence.Source(kube, namespaces=["mastodon"],
                                                      renders={"mastodon": render}))
    dest = tmp_path / "bundle"
    written = evidence.write_bundle(dest, "failure\n", snapshot)
    assert "render/mastodon.yaml" in written
    files = [p for p in dest.rglob("*") if p.is_file()]
    for path in files:
        assert_clean(path.read_text(), str(path.relative_to(dest)))
    assert "DB_PASS: " + MASK in (dest / "render/mastodon.yaml").read_text()
    assert MASK in (dest / "pods/mastodon/m-1/web.log").read_text()


def test_policy_outputs_mask_configmap_secrets(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "neutral.yaml"
    config.write_text("")
    sarif, junit = tmp_path / "p.sarif", tmp_path / "j.xml"
    render = tmp_path / "mastodon.yaml"
    render.write_text(TEXT)
    for fmt in ("table", "json"):
        code = main(["policy", "--no-waivers", "--config", str(config), "--format", fmt,
                     "--sarif", str(sarif), "--junit", str(junit), str(render)])
        assert code == 1
        out = capsys.readouterr().out
        assert "MSTDN-SECRET-001" in out and "DB_PASS" in out
        assert_clean(out, f"policy {fmt} output")
    assert_clean(sarif.read_text(), "SARIF")
    assert_clean(junit.read_text(), "JUnit")
