"""Tool versions, compatibility and the verified bootstrap (no network: fake fetch)."""

from __future__ import annotations

import hashlib
import io
import re
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from tootcheck import versions
from tootcheck.errors import BadInput, ToolMissing
from tootcheck.kube import tools

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(("text", "expected"), [
    ("kind v0.30.0 go1.24.6 linux/amd64", (0, 30, 0)),
    ("Client Version: v1.32.4-dispatcher\nKustomize Version: v5.5.0", (1, 32, 4)),
    ("v3.19.0+g3d8990f", (3, 19, 0)),
    ("Docker version 28.2.2, build e6534b4", (28, 2, 2)),
    ("go1.24.6 only", None),
    ("", None),
])
def test_parse_version(text, expected):
    assert tools.parse_version(text) == expected


@pytest.mark.parametrize(("tool", "version", "fragment"), [
    ("kind", (0, 30, 0), None),
    ("kind", (0, 31, 2), None),
    ("kind", (0, 17, 0), "older than v0.30.0"),
    ("kind", (1, 0, 0), "new major"),
    ("kubectl", (1, 34, 1), None),
    ("kubectl", (1, 32, 3), None),
    ("kubectl", (1, 27, 9), "older than v1.28.0"),
    ("kubectl", (1, 37, 0), "newer than Kubernetes 1.34"),
    ("helm", (3, 19, 0), None),
    ("helm", (4, 0, 1), "needs helm v3"),
    ("helm", (3, 12, 0), "older than v3.14.0"),
    ("helm", None, "cannot tell its version"),
])
def test_compatibility(tool, version, fragment):
    problem = tools.compatibility(tool, version)
    if fragment is None:
        assert problem is None
    else:
        assert problem is not None and fragment in problem and "\n" not in problem


def test_pinned_versions_satisfy_their_own_rules():
    for name, spec in tools.SPECS.items():
        assert tools.compatibility(name, spec.pinned_version) is None, name
    assert versions.HELM.startswith("v3.")


def test_every_platform_has_a_pinned_checksum():
    for tool in tools.SPECS:
        for os_name in ("linux", "darwin"):
            for arch in ("amd64", "arm64"):
                digest = versions.TOOL_SHA256[(tool, os_name, arch)]
                assert re.fullmatch(r"[0-9a-f]{64}", digest)


@pytest.mark.parametrize(("system", "machine", "expected"), [
    ("Linux", "x86_64", ("linux", "amd64")),
    ("Darwin", "arm64", ("darwin", "arm64")),
    ("Linux", "aarch64", ("linux", "arm64")),
])
def test_host_platform(system, machine, expected):
    assert tools.host_platform(system, machine) == expected


def test_unsupported_platform_is_one_line():
    with pytest.raises(BadInput, match="no pinned tool releases for windows"):
        tools.host_platform("Windows", "AMD64")


def test_checksum_files():
    digest = "a" * 64
    assert tools.parse_checksum_file(digest + "\n") == digest
    assert tools.parse_checksum_file(f"{digest}  kind-linux-amd64\n", "kind-linux-amd64") == digest
    assert tools.parse_checksum_file(f"{digest} *helm.tar.gz", "helm.tar.gz") == digest
    with pytest.raises(BadInput):
        tools.parse_checksum_file("<html>not found</html>", "kind-linux-amd64")


def test_verify_requires_every_checksum_to_match():
    data = b"binary"
    good = hashlib.sha256(data).hexdigest()
    assert tools.verify(data, pinned=good, official=good, what="x") == good
    assert tools.verify(data, pinned=None, official=good, what="x") == good
    with pytest.raises(BadInput, match="pinned checksum"):
        tools.verify(data, pinned="0" * 64, official=good, what="x")
    with pytest.raises(BadInput, match="published checksum"):
        tools.verify(data, pinned=good, official="0" * 64, what="x")
    with pytest.raises(BadInput, match="no checksum"):
        tools.verify(data, pinned=None, official=None, what="x")


class FakeReleases:
    """Serves release artifacts from memory, the way the official URLs would."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.fetched: list[str] = []

    def add(self, url: str, data: bytes, sha_url: str, sha_text: str | None = None) -> str:
        digest = hashlib.sha256(data).hexdigest()
        self.files[url] = data
        if sha_text is not False:
            self.files[sha_url] = (sha_text or f"{digest}  {url.rsplit('/', 1)[-1]}\n").encode()
        return digest

    def __call__(self, url: str) -> bytes:
        self.fetched.append(url)
        if url not in self.files:
            raise BadInput(f"cannot download {url}: 404")
        return self.files[url]


def kind_urls(spec=tools.SPECS["kind"]):
    fields = {"version": spec.pinned, "os": "linux", "arch": "amd64"}
    return spec.url.format(**fields), spec.sha_url.format(**fields)


def test_bootstrap_installs_a_verified_binary(tmp_path):
    releases = FakeReleases()
    url, sha_url = kind_urls()
    digest = releases.add(url, b"#!/bin/sh\necho kind v0.30.0\n", sha_url)
    path, note = tools.bootstrap("kind", dest=tmp_path, os_arch=("linux", "amd64"), fetch=releases,
                                 pins={("kind", "linux", "amd64"): digest})
    assert path == tmp_path / "kind" and path.read_bytes().startswith(b"#!/bin/sh")
    assert path.stat().st_mode & 0o111 and note == ""
    assert releases.fetched == [url, sha_url]


def test_bootstrap_refuses_a_tampered_download(tmp_path):
    releases = FakeReleases()
    url, sha_url = kind_urls()
    releases.add(url, b"evil", sha_url)
    with pytest.raises(BadInput, match="pinned checksum"):
        tools.bootstrap("kind", dest=tmp_path, os_arch=("linux", "amd64"), fetch=releases,
                        pins={("kind", "linux", "amd64"): "f" * 64})
    assert not (tmp_path / "kind").exists()


def test_bootstrap_without_published_checksum_uses_the_pin(tmp_path):
    releases = FakeReleases()
    url, sha_url = kind_urls()
    digest = releases.add(url, b"kind", sha_url, sha_text=False)
    _, note = tools.bootstrap("kind", dest=tmp_path, os_arch=("linux", "amd64"), fetch=releases,
                              pins={("kind", "linux", "amd64"): digest})
    assert "verified against the pin only" in note


def test_bootstrap_without_pin_needs_the_published_checksum(tmp_path):
    releases = FakeReleases()
    url, sha_url = kind_urls()
    releases.add(url, b"kind", sha_url, sha_text=False)
    with pytest.raises(BadInput):
        tools.bootstrap("kind", dest=tmp_path, os_arch=("linux", "amd64"), fetch=releases, pins={})


def test_bootstrap_extracts_helm_from_the_tarball(tmp_path):
    spec = tools.SPECS["helm"]
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as archive:
        payload = b"helm-binary"
        info = tarfile.TarInfo("linux-amd64/helm")
        info.size = len(payload)
        archive.addfile(info, io.BytesIO(payload))
    fields = {"version": spec.pinned, "os": "linux", "arch": "amd64"}
    releases = FakeReleases()
    digest = releases.add(spec.url.format(**fields), buf.getvalue(), spec.sha_url.format(**fields))
    path, _ = tools.bootstrap("helm", dest=tmp_path, os_arch=("linux", "amd64"), fetch=releases,
                              pins={("helm", "linux", "amd64"): digest})
    assert path.read_bytes() == b"helm-binary"
    assert releases.fetched[0].startswith("https://get.helm.sh/helm-v3.")


def test_ensure_uses_a_compatible_tool_as_is(tmp_path):
    local = tmp_path / "kind"
    local.write_text("#!/bin/sh\n")
    local.chmod(0o755)
    line = tools.ensure("kind", dest=tmp_path, path="", fetch=FakeReleases(),
                        version_of=lambda p, a: (0, 30, 0))
    assert line == f"kind v0.30.0 at {local} (compatible, used as is)"


def test_ensure_replaces_an_incompatible_tool(tmp_path):
    local = tmp_path / "helm"
    local.write_text("#!/bin/sh\n")
    local.chmod(0o755)
    spec = tools.SPECS["helm"]
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as archive:
        info = tarfile.TarInfo(f"{tools.host_platform()[0]}-{tools.host_platform()[1]}/helm")
        info.size = 1
        archive.addfile(info, io.BytesIO(b"h"))
    os_name, arch = tools.host_platform()
    fields = {"version": spec.pinned, "os": os_name, "arch": arch}
    releases = FakeReleases()
    releases.add(spec.url.format(**fields), buf.getvalue(), spec.sha_url.format(**fields))
    # the real pin cannot match our fake tarball, so the bootstrap must refuse it
    with pytest.raises(BadInput, match="pinned checksum"):
        tools.ensure("helm", dest=tmp_path, path="", fetch=releases,
                     version_of=lambda p, a: (4, 0, 1))


def test_ensure_without_network_is_one_line(tmp_path):
    def offline(url: str) -> bytes:
        raise BadInput(f"cannot download {url}: [Errno -2] Name or service not known")

    with pytest.raises(BadInput) as info:
        tools.ensure("kind", dest=tmp_path, path="", fetch=offline)
    assert "\n" not in str(info.value) and "cannot download" in str(info.value)


def test_a_binary_is_asked_its_version_once_until_it_changes(tmp_path):
    asked = tmp_path / "asked"
    tool = tmp_path / "kubectl"

    def install(version: str) -> None:
        tool.write_text(f"#!/bin/sh\necho x >> {asked}\necho 'Client Version: v{version}'\n")
        tool.chmod(0o755)

    install("1.32.4")
    assert tools.tool_version(tool, ["version", "--client"]) == (1, 32, 4)
    assert tools.tool_version(tool, ["version", "--client"]) == (1, 32, 4)
    assert asked.read_text().count("x") == 1
    install("1.33.10")  # replaced: a new size (and mtime), so asked again
    assert tools.tool_version(tool, ["version", "--client"]) == (1, 33, 10)
    assert asked.read_text().count("x") == 2
    tool.unlink()
    assert tools.tool_version(tool, ["version", "--client"]) is None


def test_resolve_missing_tool_is_tool_missing(tmp_path):
    with pytest.raises(ToolMissing) as info:
        tools.resolve("kind", tools_bin=tmp_path, path="")
    assert "make tools" in str(info.value) and "\n" not in str(info.value)


def test_script_refuses_unknown_tools():
    out = subprocess.run([sys.executable, str(REPO / "scripts" / "bootstrap-tools"), "minikube"],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 2
    assert out.stderr.strip().count("\n") == 0 and "unknown tool(s) minikube" in out.stderr
