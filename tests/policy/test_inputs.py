"""Inputs: YAML parsing with lines, Lists, stdin, directories, kustomize rendering, and
every kind of bad input as one line."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import pytest

from tests import REPO_ROOT
from tootcheck.errors import BadInput
from tootcheck.kube import tools
from tootcheck.policy.bundle import parse_stream
from tootcheck.policy.sources import load_bundle, split_overlays, uses_helm_charts

DEPLOY = """\
# leading comment
apiVersion: apps/v1
kind: Deployment
metadata:
  name: app
spec:
  template:
    spec:
      containers:
      - name: app
        image: nginx:1.27
        livenessProbe:
          tcpSocket:
            port: 8080
---
apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: ConfigMap
  metadata: {name: one}
- apiVersion: v1
  kind: ConfigMap
  metadata: {name: two}
"""


def test_objects_lines_and_lists() -> None:
    objs = parse_stream(DEPLOY, "x.yaml")
    assert [o.id for o in objs] == ["Deployment/mastodon/app", "ConfigMap/mastodon/one",
                                    "ConfigMap/mastodon/two"]
    dep = objs[0]
    assert dep.line == 2
    path = ("spec", "template", "spec", "containers", 0, "livenessProbe", "tcpSocket", "port")
    assert dep.line_of(path) == 14
    assert dep.line_of(("spec", "template", "spec", "containers", 0, "nothing")) == 10
    assert objs[2].line == 22


def test_yaml_1_1_booleans_as_kubectl_reads_them() -> None:
    obj = parse_stream("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata:\n  A: yes\n",
                       "c.yaml")[0]
    assert obj.data["data"]["A"] is True  # sigs.k8s.io/yaml reads yes as a bool, so do we


@pytest.mark.parametrize(("text", "message"), [
    ("a: 1\nkind: [unclosed\n", "c.yaml: not valid YAML at line 3: did not find expected"),
    ("- a\n- b\n", "c.yaml: document 1 is not a Kubernetes object (a list, not a mapping)"),
    ("just text", "c.yaml: document 1 is not a Kubernetes object (a str, not a mapping)"),
    ("a: 1\n", "c.yaml: document 1 is not a Kubernetes object (no apiVersion/kind)"),
    ("apiVersion: v1\nkind: ConfigMap\nmetadata: {}\n",
     "c.yaml: document 1 is not a Kubernetes object (ConfigMap without metadata.name)"),
])
def test_bad_documents(text: str, message: str) -> None:
    with pytest.raises(BadInput) as exc:
        parse_stream(text, "c.yaml")
    assert str(exc.value).startswith(message)
    assert "\n" not in str(exc.value)


def test_missing_file_and_empty_inputs(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match=r"^nope.yaml: no such file or directory$"):
        load_bundle(["nope.yaml"])
    empty = tmp_path / "empty.yaml"
    empty.write_text("# nothing\n---\n")
    with pytest.raises(BadInput, match="no Kubernetes objects"):
        load_bundle([str(empty)])
    with pytest.raises(BadInput, match="no kustomization and no YAML files"):
        load_bundle([str(_empty_dir(tmp_path))])
    with pytest.raises(BadInput, match="no input"):
        load_bundle([])


def _empty_dir(tmp_path: Path) -> Path:
    d = tmp_path / "empty-dir"
    d.mkdir()
    return d


def test_stdin_and_directory_of_yaml(tmp_path: Path) -> None:
    bundle = load_bundle(["-"], stdin=io.StringIO(DEPLOY))
    assert len(bundle) == 3 and bundle.objects[0].source == "<stdin>"
    (tmp_path / "a.yaml").write_text(DEPLOY)
    (tmp_path / "b.yml").write_text("apiVersion: v1\nkind: Service\nmetadata: {name: s}\n")
    (tmp_path / "notes.txt").write_text("ignored")
    bundle = load_bundle([str(tmp_path)])
    assert [o.kind for o in bundle] == ["Deployment", "ConfigMap", "ConfigMap", "Service"]


def test_helm_detection_follows_local_bases() -> None:
    assert uses_helm_charts(REPO_ROOT / "manifests" / "apps" / "mastodon")
    assert uses_helm_charts(REPO_ROOT / "manifests" / "overlays" / "kind")  # via ../../apps


def _plain_kustomization(tmp_path: Path) -> Path:
    d = tmp_path / "plain"
    d.mkdir()
    (d / "cm.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n"
                               "data: {A: b}\n")
    (d / "kustomization.yaml").write_text("resources: [cm.yaml]\nnamespace: mastodon\n")
    return d


def test_kustomize_directory_is_rendered(tmp_path: Path) -> None:
    if not tools.find("kubectl") or not any(f.ok for f in tools.find("kubectl")):
        pytest.skip("no compatible kubectl here (make tools)")
    bundle = load_bundle([str(_plain_kustomization(tmp_path))])
    [cm] = bundle.objects
    assert cm.id == "ConfigMap/mastodon/c" and cm.artifact.endswith("kustomization.yaml")


def test_kustomize_with_helm_charts_and_no_helm_is_bad_input(tmp_path: Path) -> None:
    kubectl = next((f.path for f in tools.find("kubectl") if f.ok), None)
    if kubectl is None:
        pytest.skip("no compatible kubectl here (make tools)")
    only_kubectl = tmp_path / "bin"
    only_kubectl.mkdir()
    (only_kubectl / "kubectl").symlink_to(kubectl)
    d = _plain_kustomization(tmp_path)
    (d / "kustomization.yaml").write_text(
        "resources: [cm.yaml]\nhelmCharts:\n- name: app-template\n  releaseName: m\n")
    with pytest.raises(BadInput) as exc:
        load_bundle([str(d)], tools_bin=tmp_path / "no-tools", search_path=str(only_kubectl))
    assert "has helmCharts and needs helm v3" in str(exc.value)
    assert "no helm is on PATH nor in .tools/bin" in str(exc.value)


def test_kustomize_failure_shows_the_whole_error(tmp_path: Path) -> None:
    if not any(f.ok for f in tools.find("kubectl")):
        pytest.skip("no compatible kubectl here (make tools)")
    d = tmp_path / "broken"
    d.mkdir()
    (d / "kustomization.yaml").write_text("resources: [missing.yaml]\n")
    with pytest.raises(BadInput) as exc:
        load_bundle([str(d)])
    first, *rest = str(exc.value).splitlines()
    assert first == f"kubectl kustomize {d} failed (exit 1):"
    assert rest and "missing.yaml" in "\n".join(rest)  # kubectl's error itself, indented


def test_no_kubectl_is_bad_input(tmp_path: Path) -> None:
    d = _plain_kustomization(tmp_path)
    with pytest.raises(BadInput, match="kubectl not found"):
        load_bundle([str(d)], tools_bin=tmp_path / "none", search_path=str(tmp_path / "none"))
    assert shutil.which("true")  # the machine has a PATH at all


def test_pipes_and_devices_are_read_as_files() -> None:
    """`tootcheck policy <(kubectl kustomize ...)` names a pipe, /dev/null a device:
    both are read, never listed as a directory."""
    import os

    r, w = os.pipe()
    os.write(w, DEPLOY.encode())
    os.close(w)
    try:
        bundle = load_bundle([f"/dev/fd/{r}"])
    finally:
        os.close(r)
    assert [o.kind for o in bundle] == ["Deployment", "ConfigMap", "ConfigMap"]
    with pytest.raises(BadInput, match=r"^/dev/null: no Kubernetes objects in it$"):
        load_bundle(["/dev/null"])


def test_undecodable_input_is_bad_input(tmp_path: Path) -> None:
    # stdin decoded with surrogateescape (a C locale) carries lone surrogates
    with pytest.raises(BadInput, match=r"^<stdin>: not UTF-8 text"):
        load_bundle(["-"], stdin=io.StringIO("apiVersion: v1\nkind: \udcff\n"))
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"\x00\xff\xfe")
    with pytest.raises(BadInput, match=r"binary\.yaml: cannot read"):
        load_bundle([str(binary)])
    kdir = tmp_path / "k"
    kdir.mkdir()
    (kdir / "kustomization.yaml").write_bytes(b"\xff\xfe")
    with pytest.raises(BadInput, match=r"kustomization\.yaml: cannot read"):
        uses_helm_charts(kdir)
    (kdir / "kustomization.yaml").write_text("resources: [2027-13-45]\n")
    with pytest.raises(BadInput, match=r"kustomization\.yaml: not valid YAML"):
        uses_helm_charts(kdir)


def test_excessive_aliasing_is_bad_input() -> None:
    """A few anchors can stand for billions of nodes (the "billion laughs"); refuse them
    before validation walks them, as kubectl does. Ordinary anchors still load."""
    lines = ["apiVersion: v1", "kind: ConfigMap", "metadata:", "  name: x",
             "  annotations:", "    a0: &a0 [l, l, l, l, l, l, l, l, l, l]"]
    lines += [f"    a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 7)]
    with pytest.raises(BadInput, match="document 1 expands its aliases to more than"):
        parse_stream("\n".join(lines) + "\n", "laughs.yaml")
    ok = parse_stream("\n".join(lines[:7]) + "\n", "fine.yaml")
    assert len(ok[0].data["metadata"]["annotations"]["a1"]) == 10


def test_the_loaded_bundle_is_kept_when_there_are_no_overlays(tmp_path: Path) -> None:
    """Its index is built once; with overlays beside the reference, bundles of their own."""
    (tmp_path / "a.yaml").write_text("apiVersion: v1\nkind: ServiceAccount\nmetadata:\n"
                                     "  name: a\n")
    (tmp_path / "overlay-b.yaml").write_text("apiVersion: v1\nkind: ServiceAccount\n"
                                             "metadata:\n  name: b\n")
    loaded = load_bundle([str(tmp_path / "a.yaml")])
    kept = split_overlays(loaded, lambda s: "overlay" in s)
    assert kept == [loaded] and kept[0] is loaded
    both = load_bundle([str(tmp_path / "a.yaml"), str(tmp_path / "overlay-b.yaml")])
    split = split_overlays(both, lambda s: "overlay" in s)
    assert [(b.label, [o.name for o in b]) for b in split] == [("", ["a"]),
                                                               ("overlay-b", ["b"])]
