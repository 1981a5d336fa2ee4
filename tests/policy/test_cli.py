"""The `tootcheck policy` and `tootcheck rules` commands: exit codes 0/1/2, one-line bad
input, and a deliberately broken copy of the reference naming its rule IDs."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests import REPO_ROOT, load_all
from tests.policy.test_live import kubeconfig
from tootcheck.cli import main

REFERENCE = REPO_ROOT / "manifests" / "rendered" / "mastodon.yaml"


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def broken_copy(tmp_path: Path) -> Path:
    """The reference with a secret in the ConfigMap, a probe dropped and sidekiq on latest."""
    docs = list(load_all(REFERENCE.read_text()))
    for d in docs:
        if d["kind"] == "ConfigMap":
            d["data"]["SECRET_KEY_BASE"] = "0" * 128
        if d["kind"] == "Deployment":
            for c in d["spec"]["template"]["spec"]["containers"]:
                if c["name"] == "web":
                    del c["readinessProbe"]
                if c["name"] == "sidekiq":
                    c["image"] = "ghcr.io/mastodon/mastodon:latest"
    path = tmp_path / "broken.yaml"
    path.write_text(yaml.safe_dump_all(docs, sort_keys=False))
    return path


def test_reference_passes(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli(capsys, "policy", str(REFERENCE))
    assert code == 0, out
    assert out.rstrip().endswith("verdict PASS")


def test_broken_copy_fails_and_names_rules(tmp_path: Path) -> None:
    """End to end through the console script: exit 1 and the rule IDs on stdout."""
    path = broken_copy(tmp_path)
    sarif = tmp_path / "out.sarif"
    proc = subprocess.run([sys.executable, "-m", "tootcheck.cli", "policy", str(path),
                           "--sarif", str(sarif), "--junit", str(tmp_path / "j.xml")],
                          capture_output=True, text=True, timeout=60, cwd=REPO_ROOT)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    for rule_id in ("MSTDN-SECRET-001", "MSTDN-WL-002", "MSTDN-WL-005", "MSTDN-UPG-001"):
        assert rule_id in proc.stdout
    assert "0" * 128 not in proc.stdout + sarif.read_text()  # the value is never echoed
    assert {r["ruleId"] for r in json.loads(sarif.read_text())["runs"][0]["results"]} >= {
        "MSTDN-SECRET-001", "MSTDN-WL-002", "MSTDN-WL-005"}


def test_strict_and_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    docs = list(load_all(REFERENCE.read_text()))
    for d in docs:
        if d["kind"] == "Service" and d["metadata"]["name"] == "mastodon-web":
            d["spec"]["type"] = "NodePort"  # MSTDN-WL-007 is a WARN
    path = tmp_path / "warn.yaml"
    path.write_text(yaml.safe_dump_all(docs))
    code, out, _ = cli(capsys, "policy", str(path), "--format", "json")
    assert code == 0 and json.loads(out)["verdict"] == "PASS"
    code, out, _ = cli(capsys, "policy", str(path), "--strict")
    assert code == 1 and "WARN  MSTDN-WL-007 Service/mastodon/mastodon-web" in out


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def bad_inputs(tmp_path: Path) -> list[tuple[list[str], str]]:
    (tmp_path / "notyaml.yaml").write_text("a: [1, 2\nb: }\n")
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    (tmp_path / "nokind.yaml").write_text("name: x\nvalue: 1\n")
    (tmp_path / "waivers.yaml").write_text(
        "waivers: [{rule: MSTDN-X-001, object: Pod/a/b, reason: r, expires: 2027-01-01}]\n")
    kc = kubeconfig(tmp_path, f"http://127.0.0.1:{_closed_port()}")
    return [
        (["policy", str(tmp_path / "missing.yaml")], "missing.yaml: no such file or directory"),
        (["policy", str(tmp_path / "notyaml.yaml")], "not valid YAML at line 2"),
        (["policy", str(tmp_path / "list.yaml")], "is not a Kubernetes object"),
        (["policy", str(tmp_path / "nokind.yaml")], "no apiVersion/kind"),
        (["policy"], "nothing to check"),
        (["policy", str(REFERENCE), "--waivers", str(tmp_path / "waivers.yaml")],
         "waiver names unknown rule MSTDN-X-001"),
        (["policy", str(REFERENCE), "--kube-version", "9.99"], "no strict schemas for Kubernetes"),
        (["policy", "--live", "--kubeconfig", str(kc)], "unreachable"),
        (["policy", "--live", "--kubeconfig", str(kc), "--context", "nope"],
         "kube context 'nope' not found"),
        (["policy", "--live", str(REFERENCE)], "not both"),
    ]


def test_bad_inputs_are_one_line_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for argv, expected in bad_inputs(tmp_path):
        code, out, err = cli(capsys, *argv)
        assert code == 2, (argv, out, err)
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("tootcheck: error: "), (argv, err)
        assert expected in lines[0], (argv, lines[0])
        assert "Traceback" not in err


def test_kustomize_needing_helm_without_helm(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from tootcheck.kube import tools

    kubectl = next((f.path for f in tools.find("kubectl") if f.ok), None)
    if kubectl is None:
        pytest.skip("no compatible kubectl here (make tools)")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "kubectl").symlink_to(kubectl)
    monkeypatch.setenv("PATH", str(bin_dir))
    monkeypatch.setattr(tools, "TOOLS_BIN", tmp_path / "no-tools")
    code, _, err = cli(capsys, "policy", str(REPO_ROOT / "manifests" / "apps" / "mastodon"))
    assert code == 2 and "has helmCharts and needs helm v3" in err and len(err.splitlines()) == 1


def test_stdin(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    import io

    monkeypatch.setattr(sys, "stdin", io.StringIO(REFERENCE.read_text()))
    code, out, _ = cli(capsys, "policy", "-")
    assert code == 0 and "verdict PASS" in out
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    code, _, err = cli(capsys, "policy", "-")
    assert code == 2 and "-: no Kubernetes objects in it" in err


def test_rules_command(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli(capsys, "rules")
    assert code == 0 and "MSTDN-CFG-003" in out and out.rstrip().endswith("rules")
    code, out, _ = cli(capsys, "rules", "--markdown")
    assert code == 0 and out.startswith("# Policy rules")
