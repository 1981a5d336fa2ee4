"""Which images to preload, and the pull/load sequence (fake docker and kind)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tootcheck.kube import images
from tootcheck.kube.apply import images as render_images
from tootcheck.kube.apply import split_documents

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(("image", "ref"), [
    ("redis:7.4.11-alpine", "docker.io/library/redis:7.4.11-alpine"),
    ("docker.io/library/postgres:17.11-bookworm", "docker.io/library/postgres:17.11-bookworm"),
    ("docker.io/traefik:v3.7.11", "docker.io/library/traefik:v3.7.11"),
    ("axllent/mailpit:v1.30.5", "docker.io/axllent/mailpit:v1.30.5"),
    ("ghcr.io/mastodon/mastodon:v4.7.2", "ghcr.io/mastodon/mastodon:v4.7.2"),
    ("quay.io/jetstack/cert-manager-controller", "quay.io/jetstack/cert-manager-controller:latest"),
    ("localhost:5000/x:1", "localhost:5000/x:1"),
    ("ghcr.io/a/b@sha256:abc", "ghcr.io/a/b@sha256:abc"),
])
def test_normalize(image, ref):
    assert images.normalize(image) == ref


def node(*names_lists):
    return {"status": {"images": [{"names": list(n)} for n in names_lists]}}


def test_missing_on_node_reads_status_images():
    present = images.node_image_names([node(
        ["docker.io/library/redis:7.4.11-alpine", "docker.io/library/redis@sha256:1"],
        ["ghcr.io/mastodon/mastodon@sha256:feed", "ghcr.io/mastodon/mastodon:v4.7.2"])])
    wanted = ["redis:7.4.11-alpine", "ghcr.io/mastodon/mastodon:v4.7.2",
              "ghcr.io/mastodon/mastodon-streaming:v4.7.2", "docker.io/library/redis@sha256:1"]
    assert images.missing_on_node(wanted, present) == ["ghcr.io/mastodon/mastodon-streaming:v4.7.2"]


def test_an_image_counts_only_if_every_node_has_it():
    present = images.node_image_names([node(["docker.io/library/a:1"]), node(["docker.io/library/b:1"])])
    assert present == set()
    assert images.node_image_names([]) == set()


def test_tag_and_digest_pin_matches_the_digest_on_the_node():
    present = {"registry.k8s.io/sig-storage/nfs-provisioner@sha256:beef"}
    assert images.missing_on_node(["registry.k8s.io/sig-storage/nfs-provisioner:v4.0.8@sha256:beef"],
                                  present) == []


def test_the_reference_render_lists_its_images():
    docs = split_documents((REPO / "manifests" / "rendered" / "mastodon.yaml").read_text())
    assert sorted(render_images(docs)) == [
        "docker.io/library/postgres:17.11-bookworm", "docker.io/library/redis:7.4.11-alpine",
        "ghcr.io/mastodon/mastodon-streaming:v4.7.2", "ghcr.io/mastodon/mastodon:v4.7.2"]


class FakeTools:
    """docker and kind as they answer: which images the host has, which loads fail."""

    def __init__(self, on_host: set[str], unpullable: set[str] = frozenset(),
                 unloadable: set[str] = frozenset(), unsavable: set[str] = frozenset(),
                 platform: str = "linux/amd64", load_status: int = 1,
                 archive_fails: bool = False) -> None:
        self.on_host, self.unpullable, self.unloadable = set(on_host), unpullable, unloadable
        self.unsavable, self.platform = unsavable, platform
        self.load_status, self.archive_fails = load_status, archive_fails
        self.calls: list[list[str]] = []

    def __call__(self, argv, timeout):
        argv = list(argv)
        self.calls.append(argv)
        image = argv[-1]
        ok = subprocess.CompletedProcess(argv, 0, "", "")
        if argv[1:3] == ["image", "inspect"]:
            return ok if image in self.on_host else subprocess.CompletedProcess(argv, 1, "", "No such image")
        if argv[1] == "pull":
            if image in self.unpullable:
                return subprocess.CompletedProcess(argv, 1, "", "toomanyrequests: rate limit\n")
            self.on_host.add(image)
            return ok
        if argv[1:3] == ["load", "docker-image"]:
            if image in self.unloadable:
                return subprocess.CompletedProcess(argv, self.load_status, "",
                                                   "ctr: content digest not found\n")
            return ok
        if argv[1] == "version":
            return subprocess.CompletedProcess(argv, 0, self.platform + "\n", "")
        if argv[1:3] == ["image", "save"]:
            assert argv[3:5] == ["--platform", self.platform] and argv[5] == "-o"
            if image in self.unsavable:
                return subprocess.CompletedProcess(argv, 1, "", "unknown flag: --platform\n")
            return ok
        if argv[1:3] == ["load", "image-archive"]:
            assert image.endswith("image.tar")
            if self.archive_fails:
                return subprocess.CompletedProcess(argv, 1, "", "ERROR: failed to load image\n")
            return ok
        raise AssertionError(argv)


def test_preload_pulls_once_and_loads_everything():
    tools = FakeTools(on_host={"a:1"})
    report = images.preload(["a:1", "b:1"], docker=Path("docker"), kind=Path("kind"), cluster="t",
                            report=images.PreloadReport(wanted=3, already_on_node=1), runner=tools)
    assert report.host_hits == 1 and report.pulled == ["b:1"] and report.loaded == ["a:1", "b:1"]
    assert ["kind", "load", "docker-image", "--name", "t", "b:1"] in tools.calls
    assert report.summary() == "3 images: 1 already on the node, 1 from the host cache, 1 pulled"


def test_failures_leave_the_image_to_the_node_and_say_why():
    tools = FakeTools(on_host=set(), unpullable={"rate:1"}, unloadable={"multi:1"},
                      unsavable={"multi:1"})
    report = images.preload(["rate:1", "multi:1", "ok:1"], docker=Path("docker"), kind=Path("kind"),
                            cluster="t", report=images.PreloadReport(wanted=3), runner=tools)
    assert report.left_to_node == ["rate:1", "multi:1"] and report.loaded == ["ok:1"]
    assert report.problems == ["pull rate:1: toomanyrequests: rate limit",
                               "kind load multi:1: ctr: content digest not found",
                               "docker image save --platform linux/amd64 multi:1: unknown flag: "
                               "--platform"]
    assert "2 left to the node's own pull" in report.summary()
    assert set(report.to_json()["seconds"]) == {"host", "load"}


def test_the_containerd_image_store_loads_through_a_one_platform_archive():
    """kind#3795: `kind load docker-image` fails on Docker's containerd image store; the image
    still reaches the node (docker image save --platform, kind load image-archive), unpulled."""
    tools = FakeTools(on_host={"multi:1", "plain:1"}, unloadable={"multi:1"}, platform="linux/arm64")
    report = images.preload(["multi:1", "plain:1"], docker=Path("docker"), kind=Path("kind"),
                            cluster="t", report=images.PreloadReport(wanted=2), runner=tools)
    assert report.loaded == ["multi:1", "plain:1"] and report.via_archive == ["multi:1"]
    assert report.left_to_node == [] and report.problems == [] and report.pulled == []
    save = next(c for c in tools.calls if c[1:3] == ["image", "save"])
    assert save[3:5] == ["--platform", "linux/arm64"] and save[-1] == "multi:1"
    archive = next(c for c in tools.calls if c[1:3] == ["load", "image-archive"])
    assert archive[3:5] == ["--name", "t"] and archive[-1] == save[6]
    assert [c[1] for c in tools.calls].count("version") == 1


def test_an_unknown_daemon_platform_leaves_the_image_to_the_node():
    tools = FakeTools(on_host={"multi:1"}, unloadable={"multi:1"}, platform="")
    report = images.preload(["multi:1"], docker=Path("docker"), kind=Path("kind"), cluster="t",
                            report=images.PreloadReport(wanted=1), runner=tools)
    assert report.left_to_node == ["multi:1"] and report.via_archive == []
    assert report.problems[-1] == "archive fallback multi:1: the Docker daemon's platform is unknown"


def test_a_failing_archive_load_leaves_the_image_to_the_node_and_says_why():
    tools = FakeTools(on_host={"multi:1"}, unloadable={"multi:1"}, archive_fails=True)
    report = images.preload(["multi:1"], docker=Path("docker"), kind=Path("kind"), cluster="t",
                            report=images.PreloadReport(wanted=1), runner=tools)
    assert report.left_to_node == ["multi:1"] and report.via_archive == [] and report.loaded == []
    assert report.problems == ["kind load multi:1: ctr: content digest not found",
                               "kind load image-archive multi:1: ERROR: failed to load image"]


@pytest.mark.parametrize("status", [images.TIMED_OUT, images.NOT_STARTED])
def test_a_load_that_timed_out_or_never_started_is_not_tried_again_as_an_archive(status):
    tools = FakeTools(on_host={"multi:1"}, unloadable={"multi:1"}, load_status=status)
    report = images.preload(["multi:1"], docker=Path("docker"), kind=Path("kind"), cluster="t",
                            report=images.PreloadReport(wanted=1), runner=tools)
    assert report.left_to_node == ["multi:1"] and len(report.problems) == 1
    assert not any(c[1] in ("version", "image") and c[2:3] != ["inspect"] for c in tools.calls)
    assert not any(c[1:3] == ["load", "image-archive"] for c in tools.calls)


def test_a_warm_host_cache_loads_without_pulling():
    tools = FakeTools(on_host={"a:1", "b:1"})
    report = images.preload(["a:1", "b:1"], docker=Path("docker"), kind=Path("kind"), cluster="t",
                            report=images.PreloadReport(wanted=2), runner=tools)
    assert not [c for c in tools.calls if c[1] == "pull"] and report.pulled == []
    assert report.host_hits == 2 and report.loaded == ["a:1", "b:1"]


def test_reports_of_both_image_phases_combine():
    infra = images.PreloadReport(wanted=2, already_on_node=1, images=["a", "b"], host_hits=1,
                                 loaded=["b"], seconds={"host": 1.0, "load": 2.0})
    app = images.PreloadReport(wanted=1, images=["c"], pulled=["c"], loaded=["c"],
                               seconds={"host": 3.0, "load": 4.0})
    both = images.PreloadReport.combined([infra, app])
    assert (both.wanted, both.already_on_node, both.host_hits) == (3, 1, 1)
    assert both.images == ["a", "b", "c"] and both.loaded == ["b", "c"] and both.pulled == ["c"]
    assert both.seconds == {"host": 4.0, "load": 6.0}
