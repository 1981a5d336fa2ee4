"""Errors that help: a failed render shows kubectl's whole error, says what it tried to
fetch when offline and how to provide it locally, and ``tootcheck render`` renders every
snapshot it can before reporting all the failures. Fake kubectl/helm scripts on PATH."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tootcheck.cli import main
from tootcheck.errors import BadInput
from tootcheck.rendering import INFRA_SNAPSHOTS, render

# kustomize nests helm's error; the last line is often just ">" (what the old message showed).
NESTED = """\
Error: accumulating resources: accumulation err='merging resources from 'values.yaml':
  > helm template failed: exit status 1
  > Error: execution error at (app-template/templates/common.yaml:1:3):
  >   controllers.main.containers.web.image.repository is required
  >
"""
OFFLINE = """\
Error: Error: looks like "https://bjw-s-labs.github.io/helm-charts" is not a valid chart repository or cannot be reached: Get "https://bjw-s-labs.github.io/helm-charts/index.yaml": dial tcp: lookup bjw-s-labs.github.io on 127.0.0.53:53: no such host
: unable to run: 'helm pull --untar --untardir charts/app-template-4.1.1 --repo https://bjw-s-labs.github.io/helm-charts app-template --version 4.1.1' with env=[]
"""  # noqa: E501

KUBECTL = """#!/bin/sh
case "$1" in
  version) echo "Client Version: v1.34.0"; exit 0;;
esac
dir="$(eval echo \\${$#})"
if [ -f "$dir/fail.txt" ]; then cat "$dir/fail.txt" >&2; exit 1; fi
echo "apiVersion: v1"
echo "kind: Namespace"
echo "metadata: {name: ok}"
"""
HELM = '#!/bin/sh\necho "v3.19.0+gabc"\n'


@pytest.fixture
def fake_bin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, text in (("kubectl", KUBECTL), ("helm", HELM)):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
    return bin_dir


def _kustomization(where: Path, error: str | None = None, chart: bool = False) -> Path:
    where.mkdir(parents=True, exist_ok=True)
    text = "resources: [ns.yaml]\n"
    if chart:
        text += ("helmCharts:\n- name: app-template\n  version: 4.1.1\n"
                 "  repo: https://bjw-s-labs.github.io/helm-charts\n")
    (where / "kustomization.yaml").write_text(text)
    if error is not None:
        (where / "fail.txt").write_text(error)
    return where


def test_the_whole_nested_error_is_shown(tmp_path: Path, fake_bin: Path) -> None:
    d = _kustomization(tmp_path / "app", NESTED)
    with pytest.raises(BadInput) as exc:
        render(d, tools_bin=tmp_path / "none")
    headline, *detail = str(exc.value).splitlines()
    assert headline.startswith("kubectl kustomize ") and headline.endswith("app failed (exit 1):")
    assert "controllers.main.containers.web.image.repository is required" in "\n".join(detail)
    assert "    > helm template failed: exit status 1" in detail  # kubectl's lines, indented
    assert "hint:" not in str(exc.value)  # nothing was fetched


def test_offline_chart_says_what_was_fetched_and_how_to_provide_it(tmp_path: Path,
                                                                   fake_bin: Path) -> None:
    d = _kustomization(tmp_path / "app", OFFLINE, chart=True)
    with pytest.raises(BadInput) as exc:
        render(d, tools_bin=tmp_path / "none")
    hint = str(exc.value).splitlines()[-1]
    assert hint.startswith("hint: the render needs the network: it tried to fetch ")
    assert "https://bjw-s-labs.github.io/helm-charts/index.yaml" in hint
    assert "chart app-template 4.1.1 from https://bjw-s-labs.github.io/helm-charts is not in " in hint
    assert "charts/app-template-4.1.1/app-template" in hint
    assert "helm pull app-template --repo https://bjw-s-labs.github.io/helm-charts --version 4.1.1" \
        in hint and "helmGlobals.chartHome" in hint


def test_offline_schema_fetch_names_the_url(tmp_path: Path, fake_bin: Path) -> None:
    error = ('Error: failed to fetch "https://example.org/schemas/crd.json": '
             "dial tcp: lookup example.org: no such host\n")
    d = _kustomization(tmp_path / "app", error)
    with pytest.raises(BadInput) as exc:
        render(d, tools_bin=tmp_path / "none")
    hint = str(exc.value).splitlines()[-1]
    assert "it tried to fetch https://example.org/schemas/crd.json" in hint
    assert "a local file the kustomization names instead of the URL" in hint


def test_render_command_renders_all_and_reports_every_failure(
        tmp_path: Path, fake_bin: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    project = tmp_path / "ops"
    _kustomization(project / "manifests" / "apps" / "mastodon", NESTED)
    (project / "tootcheck.toml").write_text("")
    monkeypatch.chdir(project)
    # The infrastructure renders from the package; make two of them fail too.
    failing = {"manifests/infra/nfs", "manifests/infra/mailpit"}
    from tootcheck import rendering

    real = rendering.render

    def render_or_fail(directory: Path, **kwargs: object) -> str:
        if any(directory == rendering.source_dir(s) for s in failing):
            raise BadInput(f"kubectl kustomize {directory.name} failed (exit 1):", "  > boom")
        return real(directory, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr("tootcheck.commands.render.render", render_or_fail)
    code = main(["render", "--infra"])
    out, err = capsys.readouterr()
    assert code == 2
    assert "not rendered: manifests/overlays/kind does not exist" in err  # the operator's own
    assert "3 of 9 render(s) failed" in err
    assert err.count("failed (exit 1):") == 3 and "image.repository is required" in err
    written = sorted(p.name for p in (project / "manifests" / "rendered").iterdir())
    expected = len(INFRA_SNAPSHOTS) - len(failing) - 1  # all but the failed and the absent
    assert len(written) == expected and out.count("rendered: ") == expected
    assert not any("infra-nfs" in name for name in written)


def test_render_command_in_a_project_without_the_reference(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["render"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "nothing to render: no manifests/apps/mastodon" in err
