"""action.yml and .pre-commit-hooks.yaml, offline: every command and flag they use exists
in the CLI, the inputs reach it, and the SARIF upload is pinned."""

from __future__ import annotations

import argparse
import re
import shlex
import tomllib

import yaml

from tests import REPO_ROOT
from tootcheck.cli import build_parser

ACTION = REPO_ROOT / "action.yml"
HOOKS = REPO_ROOT / ".pre-commit-hooks.yaml"


def _scripts() -> set[str]:
    data = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    return set(data["project"]["scripts"])


def _options(command: str) -> set[str]:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert command in sub.choices, f"tootcheck has no {command} command"
    return {o for a in sub.choices[command]._actions for o in a.option_strings}


def test_action_runs_existing_flags_with_its_inputs() -> None:
    action = yaml.safe_load(ACTION.read_text())
    assert action["runs"]["using"] == "composite"
    assert {"path", "profile", "config"} <= set(action["inputs"])
    steps = action["runs"]["steps"]
    (policy,) = [s for s in steps if s.get("id") == "policy"]
    script = policy["run"]
    assert re.search(r"\btootcheck \"\$\{args\[@\]\}\"", script) and "args=(policy " in script
    flags = set(re.findall(r"(--[a-z][a-z-]+)", script))
    assert flags == {"--sarif", "--profile", "--config"}
    assert flags <= _options("policy")
    for name in ("path", "profile", "config", "sarif"):
        assert policy["env"][f"INPUT_{name.upper()}"] == f"${{{{ inputs.{name} }}}}"
    install = next(s for s in steps if s.get("name") == "Install tootcheck")
    assert "$ACTION_PATH" in install["run"] and "github.action_path" in install["env"]["ACTION_PATH"]
    (upload,) = [s for s in steps if "upload-sarif" in s.get("uses", "")]
    assert re.fullmatch(r"github/codeql-action/upload-sarif@v\d+(\.\d+){0,2}", upload["uses"])
    assert upload["with"]["sarif_file"] == "${{ inputs.sarif }}"


def test_pre_commit_hooks_run_existing_commands() -> None:
    hooks = yaml.safe_load(HOOKS.read_text())
    assert {h["id"] for h in hooks} >= {"tootcheck-policy"}
    for hook in hooks:
        script, command, *flags = shlex.split(hook["entry"])
        assert script in _scripts()
        options = _options(command)
        for flag in [*flags, *hook.get("args", [])]:
            if flag.startswith("--"):
                assert flag.split("=")[0] in options, f"{hook['id']}: {flag}"
        assert hook["language"] == "python" and hook["pass_filenames"] is False
        re.compile(hook["files"])


def test_readme_shows_the_action_and_the_hook() -> None:
    readme = (REPO_ROOT / "README.md").read_text()
    section = readme.split("## Use it in your repository", 1)[1].split("\n## ", 1)[0]
    assert "pip install" in section and "tootcheck.toml" in section
    assert "uses: " in section and "id: tootcheck-policy" in section
    assert "--tootcheck-kubeconfig" in section
