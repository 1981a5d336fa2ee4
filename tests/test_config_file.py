"""The config file: found the usual way, validated key by key, one line per mistake."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from tests import REPO_ROOT
from tootcheck import config_file
from tootcheck.cli import main
from tootcheck.errors import BadInput
from tootcheck.policy.config import PolicyConfig
from tootcheck.policy.config_loader import load_project
from tootcheck.policy.registry import all_rules

IDS = [r.id for r in all_rules()]
RENDER = REPO_ROOT / "manifests" / "rendered" / "mastodon.yaml"
WAIVERS = """
[[waivers]]
rule = "MSTDN-WL-005"
object = "Deployment/mastodon/mastodon:sidekiq"
reason = "pinned by digest upstream soon"
expires = 2099-01-01
"""


def test_tootcheck_toml_is_found_upward_from_the_working_directory(tmp_path: Path) -> None:
    (tmp_path / "tootcheck.toml").write_text('domain = "example.org"\nprofile = "hardened"\n')
    deep = tmp_path / "a" / "b"
    deep.mkdir(parents=True)
    project = load_project(start=deep, known_rules=IDS)
    assert project.file.path == (tmp_path / "tootcheck.toml").resolve()
    assert project.root == tmp_path.resolve()
    assert (project.config.domain, project.config.profile) == ("example.org", "hardened")


def test_pyproject_tool_table_is_found_and_tootcheck_toml_wins_beside_it(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "x"\n\n[tool.tootcheck]\ndomain = "from-pyproject.org"\n' + WAIVERS.replace(
            "[[waivers]]", "[[tool.tootcheck.waivers]]"))
    project = load_project(start=tmp_path, known_rules=IDS)
    assert project.config.domain == "from-pyproject.org"
    (waiver,) = project.waivers.entries
    assert waiver.rule == "MSTDN-WL-005" and waiver.line == 7  # the [[tool.tootcheck.waivers]] line
    (tmp_path / "tootcheck.toml").write_text('domain = "from-toml.org"\n')
    assert load_project(start=tmp_path).config.domain == "from-toml.org"


def test_a_foreign_pyproject_is_passed_over(tmp_path: Path) -> None:
    (tmp_path / "tootcheck.toml").write_text('domain = "outer.org"\n')
    inner = tmp_path / "inner"
    inner.mkdir()
    (inner / "pyproject.toml").write_text('[tool.ruff]\nline-length = 100\n')
    assert load_project(start=inner).config.domain == "outer.org"


def test_explicit_config_overrides_the_search(tmp_path: Path) -> None:
    (tmp_path / "tootcheck.toml").write_text('domain = "found.org"\n')
    other = tmp_path / "elsewhere.toml"
    other.write_text('domain = "explicit.org"\n')
    assert load_project(other, start=tmp_path).config.domain == "explicit.org"


def test_without_a_config_the_defaults_apply_and_no_waivers(tmp_path: Path) -> None:
    project = load_project(start=tmp_path, known_rules=IDS)
    assert project.file.path is None and project.root == tmp_path.resolve()
    assert project.config == PolicyConfig()
    assert len(project.waivers) == 0


def test_inline_waivers_and_a_waivers_file(tmp_path: Path) -> None:
    (tmp_path / "tootcheck.toml").write_text('domain = "x.org"\n' + WAIVERS)
    (waiver,) = load_project(start=tmp_path, known_rules=IDS).waivers.entries
    assert (waiver.expires, waiver.container, waiver.line) == (dt.date(2099, 1, 1), "sidekiq", 3)
    (tmp_path / "w.yaml").write_text(
        "waivers:\n- rule: MSTDN-WL-005\n  object: Deployment/mastodon/mastodon\n"
        "  reason: r\n  expires: 2099-01-01\n")
    (tmp_path / "tootcheck.toml").write_text('waivers = "w.yaml"\n')
    (waiver,) = load_project(start=tmp_path, known_rules=IDS).waivers.entries
    assert waiver.object_id == "Deployment/mastodon/mastodon"


@pytest.mark.parametrize(("text", "message"), [
    ('domian = "x"\n', "tootcheck.toml: domian: unknown key (known: "),
    ("web_port = \"3000\"\n", "tootcheck.toml: web_port: must be an integer, not '3000'"),
    ("allowed_issuers = \"letsencrypt-prod\"\n",
     "tootcheck.toml: allowed_issuers: must be a list of strings, not 'letsencrypt-prod'"),
    ("entrypoint_redirect = 1\n", "tootcheck.toml: entrypoint_redirect: must be true or false"),
    ("[external_secrets]\n\"a/b\" = \"KEY\"\n",
     "tootcheck.toml: external_secrets: must be a table of lists of strings"),
    ('profile = "strict"\n', "tootcheck.toml: profile: must be one of baseline, hardened, not 'strict'"),
    ("waivers = 3\n", "tootcheck.toml: waivers: must be a list of tables ([[waivers]]) or the path"),
    ('waivers = "nope.yaml"\n', "waivers file nope.yaml does not exist"),
    ('[[waivers]]\nrule = "MSTDN-WL-005"\n', "tootcheck.toml:1: waiver lacks object, reason, expires"),
    ('[[waivers]]\nrule = "NOPE-1"\nobject = "Pod/a/b"\nreason = "r"\nexpires = 2099-01-01\n',
     "tootcheck.toml:1: waiver names unknown rule NOPE-1"),
    ("domain = \n", "tootcheck.toml: not valid TOML: "),
])
def test_a_bad_config_is_one_line_naming_file_and_key(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        text: str, message: str) -> None:
    (tmp_path / "tootcheck.toml").write_text(text)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(BadInput) as exc:
        load_project(known_rules=IDS)
    assert str(exc.value).startswith(message) and "\n" not in str(exc.value)
    code = main(["policy", str(RENDER)])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and message in err


def test_pyproject_errors_name_the_tool_table(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "pyproject.toml").write_text("[tool.tootcheck]\nweb_port = true\n")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(BadInput, match=r"^pyproject.toml: tool.tootcheck.web_port: must be an "
                                       r"integer, not True$"):
        load_project(start=tmp_path)


def test_explicit_config_must_exist_and_hold_the_table(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="config file does not exist"):
        config_file.load(tmp_path / "missing.toml")
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\n')
    with pytest.raises(BadInput, match=r"pyproject.toml: no \[tool.tootcheck\] table"):
        config_file.load(tmp_path / "pyproject.toml")


def test_cli_config_flag_and_paths_relative_to_the_working_directory(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    work = tmp_path / "ops"
    (work / "rendered").mkdir(parents=True)
    (work / "rendered" / "mastodon.yaml").write_text(RENDER.read_text())
    (tmp_path / "strict.toml").write_text('web_port = 3001\n')  # the pods listen on 3000
    monkeypatch.chdir(work)
    code = main(["policy", "rendered/mastodon.yaml", "--config", str(tmp_path / "strict.toml")])
    out = capsys.readouterr().out
    assert code == 1 and "3001" in out
    assert "rendered/mastodon.yaml:" in out and str(tmp_path) not in out


def test_this_repository_config_holds_kirchner_social() -> None:
    project = load_project(start=REPO_ROOT, known_rules=IDS)
    assert project.file.path == REPO_ROOT / "tootcheck.toml"
    assert project.config.profile == "hardened"
    assert project.config.domain == "kirchner.social"
    assert project.config.allowed_issuers == ("kirchner-social-issuer",)
    assert len(project.waivers) >= 10 and all(w.line > 1 for w in project.waivers.entries)
    assert not (REPO_ROOT / "manifests" / "policy-config.yaml").exists()
    assert not (REPO_ROOT / "manifests" / "policy-waivers.yaml").exists()
