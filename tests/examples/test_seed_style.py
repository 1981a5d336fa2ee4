"""The operators' own style (examples/seed-style): its render passes baseline with no
ERROR and fails hardened on the hardening rules; the copy with its real defects left in
fails baseline with exactly those defects. Judged with the neutral defaults (no config)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from tests import REPO_ROOT, load_all
from tootcheck.cli import main
from tootcheck.model import Severity
from tootcheck.policy.bundle import Bundle, parse_stream
from tootcheck.policy.config import PolicyConfig
from tootcheck.policy.engine import PolicyRun, evaluate

EXAMPLES = REPO_ROOT / "examples"
GOOD = EXAMPLES / "seed-style" / "rendered" / "mastodon.yaml"
DEFECTIVE = EXAMPLES / "seed-style-defective" / "rendered" / "mastodon.yaml"
DEP = "Deployment/mastodon/mastodon"


def run(path, profile: str) -> PolicyRun:
    objects = parse_stream(path.read_text(), str(path.relative_to(REPO_ROOT)))
    return evaluate([Bundle(objects)], replace(PolicyConfig(), profile=profile))


def findings(r: PolicyRun, *severities: Severity) -> set[tuple[str, str]]:
    return {(f.rule.id, f.subject_id) for f in r.findings if f.severity in severities}


def test_seed_style_passes_baseline_with_the_assumptions_named() -> None:
    r = run(GOOD, "baseline")
    assert r.exit_code(strict=False) == 0
    assert findings(r, Severity.ERROR, Severity.WARN) == set()
    assert findings(r, Severity.INFO) == {
        ("MSTDN-SECRET-006", f"{DEP}"), ("MSTDN-TLS-006", "Ingress/mastodon/mastodon")}
    info = " ".join(f.message for f in r.findings)
    assert "mastodon-secrets is not rendered; assumed to provide" in info
    assert "ACTIVE_RECORD_ENCRYPTION_PRIMARY_KEY" in info and "https.http_semantics" in info
    outside = {o.rule.id for o in r.outcomes if o.not_run}
    assert {"MSTDN-SEC-002", "MSTDN-WL-001", "MSTDN-TLS-004", "MSTDN-PV-005"} <= outside


def test_seed_style_fails_hardened_on_the_hardening_rules() -> None:
    r = run(GOOD, "hardened")
    assert r.exit_code(strict=False) == 1
    containers = ("postgres", "redis", "sidekiq", "streaming", "web")
    assert findings(r, Severity.ERROR) == {
        *{("MSTDN-SEC-002", f"{DEP}:{c}") for c in containers},
        *{("MSTDN-WL-001", f"{DEP}:{c}") for c in containers},
        ("MSTDN-SEC-003", DEP), ("MSTDN-WL-002", f"{DEP}:sidekiq"),
        ("MSTDN-TLS-004", "Ingress/mastodon/mastodon")}
    assert {rule for rule, _ in findings(r, Severity.WARN)} == {
        "MSTDN-PV-005", "MSTDN-SEC-004", "MSTDN-WL-009"}


def test_defective_copy_fails_baseline_with_exactly_the_true_defects() -> None:
    r = run(DEFECTIVE, "baseline")
    assert findings(r, Severity.ERROR, Severity.WARN) == {
        ("MSTDN-SECRET-001", "ConfigMap/mastodon/mastodon-env"),  # secrets in the ConfigMap
        ("MSTDN-DB-002", f"{DEP}:postgres"),  # PostgreSQL's password read from it
        ("MSTDN-CFG-003", f"{DEP}:web"),  # OIDC_CLIENT_SECRET in the ConfigMap
        ("MSTDN-CFG-001", f"{DEP}:web"), ("MSTDN-CFG-001", f"{DEP}:sidekiq"),  # no AR keys
        ("MSTDN-CFG-008", f"{DEP}:web"), ("MSTDN-CFG-008", f"{DEP}:sidekiq"),  # no SMTP
        ("MSTDN-UPG-002", f"{DEP}:web"),  # no migration step
    }
    keys = {f.message.split()[2] for f in r.findings if f.rule.id == "MSTDN-SECRET-001"}
    assert keys == {"SECRET_KEY_BASE", "OTP_SECRET", "VAPID_PRIVATE_KEY", "DB_PASS",
                    "REDIS_PASSWORD", "OIDC_CLIENT_SECRET"}
    ar = next(f.message for f in r.findings if f.rule.id == "MSTDN-CFG-001")
    assert "ACTIVE_RECORD_ENCRYPTION_PRIMARY_KEY" in ar


@pytest.mark.parametrize(("path", "profile", "code"), [
    (GOOD, "baseline", 0), (GOOD, "hardened", 1), (DEFECTIVE, "baseline", 1)])
def test_cli_exit_codes(path, profile: str, code: int, tmp_path,
                        capsys: pytest.CaptureFixture[str]) -> None:
    empty = tmp_path / "neutral.yaml"
    empty.write_text("")
    assert main(["policy", "--no-waivers", "--config", str(empty), "--profile", profile,
                 str(path)]) == code
    assert "verdict" in capsys.readouterr().out


@pytest.mark.parametrize("name", ["seed-style", "seed-style-defective"])
def test_render_matches_its_values(name: str) -> None:
    """The committed render is the render of the committed values (settings, images,
    commands, inline NFS), so the finding sets above are about what the operators wrote."""
    import yaml

    values = yaml.safe_load((EXAMPLES / name / "apps/mastodon/values.yaml").read_text())
    docs = [d for d in load_all((EXAMPLES / name / "rendered/mastodon.yaml").read_text())
            if d]
    cm = next(d for d in docs if d["kind"] == "ConfigMap")
    assert cm["data"] == {k: str(v) for k, v in values["configMaps"]["env"]["data"].items()}
    dep = next(d for d in docs if d["kind"] == "Deployment")
    rendered = {c["name"]: c for c in dep["spec"]["template"]["spec"]["containers"]}
    for cname, c in values["controllers"]["mastodon"]["containers"].items():
        assert rendered[cname]["image"] == f"{c['image']['repository']}:{c['image']['tag']}"
        assert rendered[cname].get("command") == c.get("command")
    nfs = {v["name"]: v["nfs"] for v in dep["spec"]["template"]["spec"]["volumes"]}
    assert nfs == {k: {"path": p["path"], "server": p["server"]}
                   for k, p in values["persistence"].items()}
