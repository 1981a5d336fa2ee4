"""The operators' CI: `make test` on every pull request; `make e2e` on pull requests touching
manifests/, nightly and on demand; reports/ uploaded always; actions pinned by commit SHA."""

from __future__ import annotations

import re

import pytest
import yaml

from tests import REPO_ROOT

WORKFLOWS = REPO_ROOT / ".github" / "workflows"
# Verified against the actions' own tags (git rev-parse <tag>^{commit} in their repositories).
PINNED_ACTIONS = {
    "actions/checkout": ("3d3c42e5aac5ba805825da76410c181273ba90b1", "v7.0.1"),
    "actions/setup-python": ("5fda3b95a4ea91299a34e894583c3862153e4b97", "v7.0.0"),
    "actions/upload-artifact": ("bbbca2ddaa5d8feaa63e36b76fdaad77386f024f", "v7.0.0"),
}
USES = re.compile(r"^\s*-?\s*uses:\s*(?P<action>[^@\s]+)@(?P<ref>\S+)(?:\s*#\s*(?P<tag>\S+))?\s*$")


def workflow(name: str) -> dict:
    # PyYAML reads the key `on` as True (YAML 1.1); normalise it back.
    data = yaml.safe_load((WORKFLOWS / name).read_text())
    if True in data:
        data["on"] = data.pop(True)
    return data


def steps(name: str, job: str) -> list[dict]:
    return workflow(name)["jobs"][job]["steps"]


def runs(name: str, job: str) -> list[str]:
    return [s.get("run", "") for s in steps(name, job)]


@pytest.mark.parametrize("path", sorted(WORKFLOWS.glob("*.yml")), ids=lambda p: p.name)
def test_actions_are_pinned_by_commit_sha(path):
    uses = [m for line in path.read_text().splitlines() if (m := USES.match(line))]
    assert uses
    for m in uses:
        assert m["action"] in PINNED_ACTIONS, f"{path.name}: unreviewed action {m['action']}"
        sha, tag = PINNED_ACTIONS[m["action"]]
        assert (m["ref"], m["tag"]) == (sha, tag), f"{path.name}: {m['action']}@{m['ref']}"


def test_make_test_on_every_pull_request():
    wf = workflow("test.yml")
    assert "pull_request" in wf["on"] and not (wf["on"]["pull_request"] or {}).get("paths")
    assert any(r.strip() == "make test" for r in runs("test.yml", "test"))
    step = next(s for s in steps("test.yml", "test") if s.get("run", "").strip() == "make test")
    assert step["env"]["TOOTCHECK_STRICT_PEERS"] == "1"


def test_make_e2e_on_manifest_changes_nightly_and_on_demand():
    on = workflow("e2e.yml")["on"]
    paths = on["pull_request"]["paths"]
    assert paths[0] == "manifests/**"
    assert {"tootcheck/**", "fixtures/**", "suites/**", ".github/workflows/e2e.yml"} <= set(paths)
    assert on["schedule"] and "workflow_dispatch" in on
    assert any(r.strip() == "make e2e" for r in runs("e2e.yml", "e2e"))
    loads = " ".join(runs("e2e.yml", "e2e"))
    assert "modprobe nfsv4" in loads, "the kind node mounts NFSv4.1 with the runner's kernel"


@pytest.mark.parametrize(("name", "job"), [("test.yml", "test"), ("e2e.yml", "e2e")])
def test_reports_are_uploaded_always(name, job):
    upload = next(s for s in steps(name, job) if s.get("uses", "").startswith("actions/upload-artifact@"))
    assert upload["if"] == "always()"
    assert upload["with"]["path"] == "reports/"


@pytest.mark.parametrize("name", ["test.yml", "e2e.yml"])
def test_least_privilege(name):
    wf = workflow(name)
    assert wf["permissions"] == {"contents": "read"}
    for job in wf["jobs"].values():
        assert job["timeout-minutes"] <= 120
        checkout = next(s for s in job["steps"] if s.get("uses", "").startswith("actions/checkout@"))
        assert checkout["with"]["persist-credentials"] is False


@pytest.mark.parametrize(("name", "job"), [("test.yml", "test"), ("e2e.yml", "e2e")])
def test_the_summary_table_becomes_the_job_summary(name, job):
    step = next(s for s in steps(name, job) if s.get("name") == "Job summary")
    assert step["if"] == "always()"
    assert 'cat reports/summary.md >> "$GITHUB_STEP_SUMMARY"' in step["run"]
def test_pinned_tools_are_installed_before_make_test():
    # Render freshness needs helm and kubectl: CI fetches the pinned ones first.
    commands = [r.strip() for r in runs("test.yml", "test")]
    assert "make tools" in commands
    assert commands.index("make tools") < commands.index("make test")
