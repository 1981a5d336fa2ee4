"""A large file gated a few namespaces at a time (tootcheck.policy.streamrun) gives what
gating it whole gives: the same results in the same order, findings, lines, waiver
counts and problems, on one core and on two. Where that could differ (a rule reading
another namespace, an object not where its text suggested, a document that needs
PyYAML) the file is gated whole instead, and says why."""

from __future__ import annotations

import datetime as dt
import json
import random
import secrets
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.policy.casefiles import CASE_CONFIG, CASES_DIR
from tests.policy.test_splitrun import outcome_view
from tootcheck.cli import main
from tootcheck.policy import bench, streamplan, streamrun
from tootcheck.policy.bundle import Bundle, NamespaceSlice, OutsideSlice, parse_stream
from tootcheck.policy.config import PolicyConfig
from tootcheck.policy.config_loader import load_project
from tootcheck.policy.engine import PolicyRun, evaluate
from tootcheck.policy.k8s import all_containers, mastodon_containers
from tootcheck.policy.registry import all_rules
from tootcheck.policy.rules._common import traefik_middlewares
from tootcheck.policy.sources import load_bundle
from tootcheck.policy.types import Context
from tootcheck.policy.waivers import Waivers, parse_waivers
from tootcheck.redaction import MASK, redact

ROOT = Path(__file__).resolve().parents[2]
TODAY = dt.date(2026, 11, 27)
BATCH = 25  # objects per batch here: several batches, namespaces of every size
DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


def whole(path: Path, config: PolicyConfig, waivers: Waivers | None = None) -> PolicyRun:
    bundle = load_bundle([str(path)], default_namespace=config.namespace)
    return evaluate([bundle], config, waivers=waivers, today=TODAY)


def streamed(monkeypatch: pytest.MonkeyPatch, path: Path, config: PolicyConfig,
             waivers: Waivers | None = None, *, workers: int = 2,
             why: list[str] | None = None) -> PolicyRun | None:
    """The run batch by batch; with two ``workers``, the worker's results came back."""
    monkeypatch.setattr(streamplan, "BATCH_OBJECTS", BATCH)
    monkeypatch.setattr(streamrun, "two_cores", lambda: workers == 2)
    received: list[int] = []
    real = streamrun._Run.received

    def counted(self: Any, sent: Any) -> Any:
        received.append(1)
        return real(self, sent)

    monkeypatch.setattr(streamrun._Run, "received", counted)
    run = streamrun.stream_gate(path, str(path), config, waivers=waivers, today=TODAY,
                                min_bytes=0, why=why)
    monkeypatch.setattr(streamrun._Run, "received", real)
    if run is not None:
        assert bool(received) == (workers == 2), "the worker's half did not come back"
    return run


def view(run: PolicyRun) -> Any:
    return (outcome_view(run), [p.message for p in run.waiver_problems],
            [w.matched for w in run.waivers.entries], run.objects)


def write(path: Path, docs: list[str]) -> Path:
    path.write_text("".join(f"---\n{d if d.endswith(chr(10)) else d + chr(10)}" for d in docs))
    return path


@pytest.fixture(scope="module")
def mix(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, PolicyConfig]:
    """The bench's mix, 240 objects: copies of the reference render, then fillers."""
    folder = tmp_path_factory.mktemp("mix")
    path = write(folder / "mix.yaml", bench.mix_documents(240))
    config = load_project(bench.policy_config(folder),
                          known_rules=[r.id for r in all_rules()]).config
    return path, config


@pytest.fixture(scope="module")
def failing_cases(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Waivers]:
    """Every failing case file, each in a namespace of its own: many findings, in every
    batch; two waivers, one used early in the file and one late."""
    docs: list[str] = []
    paths = [p for p in sorted(CASES_DIR.glob("*/fail-*.yaml")) if namespace_local(p)]
    assert len(paths) >= 80  # of 81
    for i, path in enumerate(paths):
        for obj in parse_stream(path.read_text(), path.name):
            meta = obj.data["metadata"]
            meta["namespace"] = f"case-{i}"
            if obj.kind == "Namespace":
                meta["name"] = f"case-{i}"
            for key, value in (meta.get("annotations") or {}).items():
                if key.endswith("router.middlewares"):  # the case's own Middlewares
                    meta["annotations"][key] = value.replace("mastodon-", f"case-{i}-")
            docs.append(yaml.dump(obj.data, Dumper=DUMPER, sort_keys=False))
    late = paths.index(CASES_DIR / "MSTDN-WL-005" / "fail-latest.yaml")
    waivers = parse_waivers(
        "waivers:\n- rule: MSTDN-CFG-001\n  object: Deployment/case-0/mastodon\n"
        "  reason: used early\n  expires: 2027-03-01\n"
        f"- rule: MSTDN-WL-005\n  object: Deployment/case-{late}/mastodon\n"
        "  reason: used late\n  expires: 2027-03-01\n"
        "- rule: MSTDN-WL-005\n  object: Deployment/elsewhere/mastodon\n"
        "  reason: matches nothing\n  expires: 2027-03-01\n",
        "waivers.yaml", [r.id for r in all_rules()])
    return write(tmp_path_factory.mktemp("cases") / "cases.yaml", docs), waivers


def namespace_local(case: Path) -> bool:
    """Whether the case has a web container where it has Mastodon containers (else
    rules take another namespace's, as they should, and such a file is gated whole)."""
    roles = {c.role for c in all_containers(Bundle(parse_stream(case.read_text(), case.name)))
             if c.is_mastodon}
    return not roles or "web" in roles


@pytest.mark.parametrize("workers", [1, 2])
def test_the_mix_streamed_equals_whole(monkeypatch: pytest.MonkeyPatch,
                                       mix: tuple[Path, PolicyConfig], mix_whole: Any,
                                       workers: int) -> None:
    path, config = mix
    run = streamed(monkeypatch, path, config, workers=workers)
    assert run is not None
    assert view(run) == mix_whole
    assert run.objects == 240 and sum(o.matched for o in run.outcomes) > 1500  # subjects


@pytest.fixture(scope="module")
def mix_whole(mix: tuple[Path, PolicyConfig]) -> Any:
    return view(whole(*mix))


@pytest.fixture(scope="module")
def cases_whole(failing_cases: tuple[Path, Waivers]) -> Any:
    return view(whole(failing_cases[0], CASE_CONFIG, failing_cases[1]))


@pytest.mark.parametrize("workers", [1, 2])
def test_failing_cases_streamed_equal_whole(monkeypatch: pytest.MonkeyPatch,
                                            failing_cases: tuple[Path, Waivers],
                                            cases_whole: Any, workers: int) -> None:
    path, waivers = failing_cases
    monkeypatch.setattr(streamplan, "MAX_SHARED_SHARE", 1.0)  # the cases' PVs, classes
    expected = cases_whole
    why: list[str] = []
    run = streamed(monkeypatch, path, CASE_CONFIG, waivers, workers=workers, why=why)
    assert run is not None, why
    assert view(run) == expected
    assert sum(len(o.findings) for o in run.outcomes) > 100
    assert expected[2][:2] == [1, 1] and expected[2][2] == 0  # used early, late, never
    assert any("elsewhere" in p for p in expected[1])  # the unused waiver, a problem
    assert_cut_down(run)


def assert_cut_down(run: PolicyRun) -> None:
    """The run holds of each object what the reports read, and its findings' lines."""
    for obj in run.bundles[0]:
        if obj.namespace is None and obj.kind != "Namespace":
            continue  # cluster-scoped: in every batch, kept whole
        assert set(obj.data) == {"apiVersion", "kind", "metadata"}
        assert set(obj.data["metadata"]) <= {"name", "generateName", "namespace"}
        assert obj.span is None and obj.node is None
    lines = [f.line for f in run.findings]
    assert lines and all(line > 0 for line in lines)


@pytest.mark.parametrize("workers", [1, 2])
def test_alternating_namespaces_streamed_equal_whole(monkeypatch: pytest.MonkeyPatch,
                                                     tmp_path: Path,
                                                     failing_cases: tuple[Path, Waivers],
                                                     workers: int) -> None:
    """The failing cases' documents shuffled, so a batch's namespaces lie in many
    pieces, parsed as one text: the findings' lines must still be the file's. The
    file's first document has no "---" line and its last no final line break."""
    path, waivers = failing_cases
    monkeypatch.setattr(streamplan, "MAX_SHARED_SHARE", 1.0)  # the cases' PVs, classes
    docs = path.read_text().split("---\n")[1:]
    random.Random(12).shuffle(docs)
    shuffled = tmp_path / "shuffled.yaml"
    shuffled.write_text(("---\n".join(docs)).rstrip("\n"))
    joined: list[int] = []
    real = streamrun._Run._joined

    def counted(self: Any, runs: Any, texts: Any) -> Any:
        found = real(self, runs, texts)
        joined.append(len(runs) if found is not None else 0)
        return found

    monkeypatch.setattr(streamrun._Run, "_joined", counted)
    why: list[str] = []
    run = streamed(monkeypatch, shuffled, CASE_CONFIG, waivers, workers=workers, why=why)
    assert run is not None, why
    expected = view(whole(shuffled, CASE_CONFIG, waivers))
    assert view(run) == expected
    assert sum(1 for n in joined if n > 5) >= 3  # batches of many pieces, joined
    assert 0 not in joined  # none fell back to a parse per piece
    assert sum(len(o.findings) for o in run.outcomes) > 100
    assert_cut_down(run)


def test_committed_renders_streamed_equal_whole(monkeypatch: pytest.MonkeyPatch,
                                               tmp_path: Path) -> None:
    """The reference and the infrastructure renders in one file (their CRDs and cluster
    roles beside every batch), with the project's config and waivers."""
    renders = sorted((ROOT / "manifests" / "rendered").glob("*.yaml"))
    path = tmp_path / "renders.yaml"
    path.write_text("".join(p.read_text() if p.read_text().startswith("---")
                            else "---\n" + p.read_text() for p in renders
                            if "overlay" not in p.name))
    project = load_project(ROOT / "tootcheck.toml", known_rules=[r.id for r in all_rules()])
    monkeypatch.setattr(streamplan, "MAX_SHARED_SHARE", 1.0)
    expected = view(whole(path, project.config, project.waivers))
    why: list[str] = []
    run = streamed(monkeypatch, path, project.config, project.waivers, why=why)
    assert run is not None, why
    assert view(run) == expected
    assert sum(expected[2]) > 0 and run.objects > 100  # waivers used, every render in


def test_a_failing_worker_leaves_its_batches_here(monkeypatch: pytest.MonkeyPatch,
                                                  mix: tuple[Path, PolicyConfig],
                                                  mix_whole: Any) -> None:
    path, config = mix
    expected = mix_whole

    def lost(*args: Any) -> Any:
        raise RuntimeError("worker lost")

    def plan_worker_lost(here: Any, there: Any, args: Any) -> Any:
        return here(), None  # as beside_a_worker answers when its worker failed

    monkeypatch.setattr(streamrun._Run, "second_half", lost)
    monkeypatch.setattr(streamplan, "beside_a_worker", plan_worker_lost)  # the plan's half
    monkeypatch.setattr(streamrun, "two_cores", lambda: True)
    monkeypatch.setattr(streamplan, "BATCH_OBJECTS", BATCH)
    run = streamrun.stream_gate(path, str(path), config, today=TODAY, min_bytes=0)
    assert run is not None and view(run) == expected


@pytest.mark.parametrize("workers", [1, 2])
def test_secret_values_of_every_batch_are_redacted(monkeypatch: pytest.MonkeyPatch,
                                                   tmp_path: Path, workers: int,
                                                   mix: tuple[Path, PolicyConfig]) -> None:
    value = secrets.token_hex(16)  # in the last namespace: the worker's, with two
    docs = [*bench.mix_documents(100), "apiVersion: v1\nkind: ConfigMap\nmetadata:\n"
            f"  name: env\n  namespace: zz-last\ndata:\n  OTP_SECRET: {value}\n"]
    path = write(tmp_path / f"secret-{workers}.yaml", docs)
    assert redact(value) == value
    assert streamed(monkeypatch, path, mix[1], workers=workers) is not None
    assert redact(f"says {value}") == f"says {MASK}"


# ------------------------------------------------------- gated whole, and why


def reference_docs(ns: str, middleware_ns: str | None = None) -> list[str]:
    """The reference render in namespace ``ns``; its Ingresses name the Middlewares of
    ``middleware_ns`` (default: its own)."""
    docs = [bench.retarget(yaml.dump(o.data, Dumper=DUMPER, sort_keys=False), ns)
            for o in parse_stream(bench.REFERENCE.read_text(), "mastodon.yaml")]
    if middleware_ns is None:
        return docs
    return ["\n".join(line.replace(f"{ns}-", f"{middleware_ns}-")
                      if "router.middlewares:" in line else line for line in d.split("\n"))
            for d in docs]


def test_a_middleware_of_another_namespace_is_gated_whole(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path, mix: tuple[Path, PolicyConfig]) -> None:
    _, config = mix
    docs = [*reference_docs("alpha"), *(d for i in range(3)
                                         for d in reference_docs(f"beta-{i}")),
            *reference_docs("gamma", middleware_ns="alpha")]  # alpha's redirect, by name
    path = write(tmp_path / "cross.yaml", docs)
    why: list[str] = []
    assert streamed(monkeypatch, path, config, why=why) is None
    assert why and "Middleware alpha-" in why[0] and "may be in namespace alpha" in why[0]


def test_a_namespace_without_web_is_gated_whole(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path, mix: tuple[Path, PolicyConfig]) -> None:
    _, config = mix
    lone = [d for d in reference_docs("lone") if "kind: Namespace" in d]
    lone.append(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: sidekiq\n"
        "  namespace: lone\nspec:\n  selector:\n    matchLabels: {app: sidekiq}\n"
        "  template:\n    metadata:\n      labels: {app: sidekiq}\n    spec:\n"
        "      containers:\n      - name: sidekiq\n"
        "        image: ghcr.io/mastodon/mastodon:v4.3.0\n"
        "        command: [bundle, exec, sidekiq]\n")
    docs = [*(d for i in range(3) for d in reference_docs(f"web-{i}")), *lone]
    path = write(tmp_path / "lone.yaml", docs)
    why: list[str] = []
    assert streamed(monkeypatch, path, config, why=why) is None
    assert why and "containers of other namespaces than lone" in why[0]


def test_an_object_not_where_its_text_suggests_is_gated_whole(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path, mix: tuple[Path, PolicyConfig]) -> None:
    _, config = mix
    flow = ("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: hidden, namespace: elsewhere}\n"
            "data: {A: b}\n")  # no "metadata:" block: the plan guesses the default
    moved = write(tmp_path / "flow.yaml", [*bench.mix_documents(100), flow])
    why: list[str] = []
    assert streamed(monkeypatch, moved, config, why=why) is None
    assert len(why) == 1 and "is not the ConfigMap in mastodon its text suggested" in why[0]


def test_a_broken_document_is_gated_whole_for_its_error(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path, mix: tuple[Path, PolicyConfig],
        capsys: pytest.CaptureFixture[str]) -> None:
    _, config = mix
    broken = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n  namespace: y\ndata: [\n"
    path = write(tmp_path / "broken.yaml", [*bench.mix_documents(100), broken])
    why: list[str] = []
    assert streamed(monkeypatch, path, config, why=why) is None
    assert why and "needs PyYAML" in why[0]
    monkeypatch.setattr(streamrun, "MIN_STREAM_BYTES", 0)
    assert main(["policy", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0].startswith(f"tootcheck: {path} is gated whole")
    assert "not valid YAML" in err[-1] and "Traceback" not in "".join(err)


# ---------------------------------------------------------------- the guards


def sliced(docs: list[str], held: set[str], known: set[str]) -> Bundle:
    bundle = Bundle([o for d in docs for o in parse_stream(d, "x.yaml")])
    bundle.slice = NamespaceSlice(frozenset(held), frozenset(known))
    return bundle


def test_mastodon_containers_of_another_namespace_are_refused() -> None:
    docs = reference_docs("alpha")
    bundle = sliced(docs, {"alpha"}, {"alpha", "beta"})
    assert [c.name for c in mastodon_containers(bundle, "web", namespace="alpha")]
    with pytest.raises(OutsideSlice):
        mastodon_containers(bundle, "web", namespace="beta")  # beta's may be elsewhere
    with pytest.raises(OutsideSlice):
        mastodon_containers(bundle, namespace="alpha")  # every role, any namespace
    assert mastodon_containers(bundle, "web", namespace="beta", any_namespace=False) == []
    whole_bundle = Bundle(bundle.objects)
    assert mastodon_containers(whole_bundle, "web", namespace="beta")  # alpha's, as a fallback


@pytest.mark.parametrize(("ref", "held", "known", "answered"), [
    ("alpha-redirect-https@kubernetescrd", {"alpha"}, {"alpha", "beta"}, True),
    ("beta-redirect-https@kubernetescrd", {"alpha"}, {"alpha", "beta"}, False),
    # "mastodon-web-redirect": Middleware web-redirect of mastodon, or redirect of mastodon-web
    ("mastodon-web-redirect@kubernetescrd", {"mastodon"}, {"mastodon", "mastodon-web"}, False),
    ("mastodon-web-redirect@kubernetescrd", {"mastodon", "mastodon-web"},
     {"mastodon", "mastodon-web"}, True),
    ("nowhere-redirect-https@kubernetescrd", {"alpha"}, {"alpha", "beta"}, True),  # no such ns
])
def test_middlewares_another_namespace_could_name_are_refused(
        ref: str, held: set[str], known: set[str], answered: bool) -> None:
    docs = reference_docs("alpha")
    ctx = Context(sliced(docs, held, known), CASE_CONFIG)
    known_mw = traefik_middlewares(ctx)
    if answered:
        assert (ref in known_mw) == ref.startswith("alpha-")
        assert (known_mw.get(ref) is not None) == ref.startswith("alpha-")
    else:
        with pytest.raises(OutsideSlice):
            known_mw.get(ref)
        with pytest.raises(OutsideSlice):
            _ = ref in known_mw
        with pytest.raises(OutsideSlice):
            _ = known_mw[ref]


# ------------------------------------------------------------------ the plan


@pytest.mark.parametrize("workers", [1, 2])
def test_what_the_plan_refuses_in_either_half_is_said(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path, workers: int,
        mix: tuple[Path, PolicyConfig]) -> None:
    docs = bench.mix_documents(200)
    for at in (10, 190):  # in the first half, then in the second (the worker's, with two)
        listed = [*docs[:at], "apiVersion: v1\nkind: List\nitems: []\n", *docs[at:]]
        why: list[str] = []
        path = write(tmp_path / f"list-{at}.yaml", listed)
        assert streamed(monkeypatch, path, mix[1], workers=workers, why=why) is None
        assert why == ["it holds a List"]


def test_plan_places_every_document(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(streamplan, "MAX_SHARED_SHARE", 1.0)
    docs = [
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: grün-frei\n",  # bytes != characters
        "apiVersion: v1\nkind: Namespace\nmetadata:\n    name: two\n",  # indented by 4
        "# only a comment\n",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n    name: a\n    namespace: two\n"
        "data:\n  NOTE: \"Grüße, ☃\"\n",
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata:\n  name: r\n",
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: s\nspec:\n  ports:\n  - port: 1\n",
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata:\n  name: b\n"
        "  namespace: two\nsubjects:\n- kind: ServiceAccount\n  name: x\n  namespace: other\n",
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata:\n  name: c\n"
        "subjects:\n- kind: ServiceAccount\n  name: x\n  namespace: other\n",  # not metadata's
        "apiVersion: v1\nkind: 'Secret'  # quoted\nmetadata:\n  namespace: \"two\" # here\n"
        "  name: s\n",
    ]
    path = write(tmp_path / "plan.yaml", docs)
    raw = path.read_bytes()
    plan = streamplan.read_plan(path, "mastodon")
    assert isinstance(plan, streamplan.Plan), plan
    got = [(d.kind, d.group, d.position) for d in plan.docs]
    assert got == [("Namespace", "grün-frei", 0), ("Namespace", "two", 1),
                   ("ConfigMap", "two", 2), ("ClusterRole", streamplan.SHARED, 3),
                   ("Service", "mastodon", 4), ("RoleBinding", "two", 5),
                   ("RoleBinding", "mastodon", 6), ("Secret", "two", 7)]
    for d in plan.docs:  # bytes and lines of each document, non-ASCII text before it
        text = raw[d.start:d.end].decode()
        assert text.startswith("---\n") and f"kind: {d.kind}" in text.replace("'", "")
        assert raw[:d.start].count(b"\n") == d.line0
    assert [d.kind for d in plan.shared] == ["ClusterRole"]
    monkeypatch.setattr(streamplan, "_BLOCK", 7)  # documents cut across blocks
    assert streamplan.read_plan(path, "mastodon") == plan


def test_batches_hold_whole_namespaces(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(streamplan, "BATCH_OBJECTS", 10)
    docs = [f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c{i}\n  namespace: ns{i % 7}\n"
            for i in range(100)]
    plan = streamplan.read_plan(write(tmp_path / "round.yaml", docs), "mastodon")
    assert isinstance(plan, streamplan.Plan) and len(plan.batches) > 2
    seen: dict[str, int] = {}
    for k, batch in enumerate(plan.batches):
        assert [d.position for d in batch] == sorted(d.position for d in batch)
        for d in batch:
            assert seen.setdefault(d.group, k) == k  # a namespace is in one batch
    assert sorted(d.position for b in plan.batches for d in b) == list(range(100))


@pytest.mark.parametrize(("text", "why"), [
    (b"---\napiVersion: v1\nkind: ConfigMap\r\nmetadata:\n  name: a\n", "line breaks"),
    (b"---\napiVersion: v1\nkind: List\nitems: []\n", "it holds a List"),
    (b"---\napiVersion: v1\nmetadata:\n  name: a\n", "no top-level kind"),
    (b"%YAML 1.1\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n", "directive"),
    (b"---\napiVersion: v1\nkind: Config Map\nmetadata:\n  name: a\n", "one plain word"),
    (b"---\napiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n", "Namespace's name"),
    (b"---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: \xff\n", "cannot read it"),
])
def test_plan_refuses_what_it_cannot_place(tmp_path: Path, text: bytes, why: str) -> None:
    path = tmp_path / "x.yaml"
    path.write_bytes(text)
    found = streamplan.read_plan(path, "mastodon")
    assert isinstance(found, str) and why in found


def test_cluster_scoped_objects_beyond_a_share_are_not_planned(tmp_path: Path) -> None:
    role = "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata:\n  name: r{i}\n"
    cm = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c{i}\n  namespace: n{i}\n"
    few = [cm.format(i=i) for i in range(40)] + [role.format(i=0)]
    many = few + [role.format(i=i) for i in range(1, 5)]
    assert isinstance(streamplan.read_plan(write(tmp_path / "few.yaml", few), "mastodon"),
                      streamplan.Plan)
    assert streamplan.read_plan(write(tmp_path / "many.yaml", many), "mastodon") == \
        "5 of its 45 objects are cluster-scoped (more than 5%)"


# ------------------------------------------------------------------- the CLI


def test_cli_output_streamed_equals_whole(monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                          mix: tuple[Path, PolicyConfig],
                                          failing_cases: tuple[Path, Waivers]) -> None:
    """The JSON report (findings, lines, counts) of the first 40 failing cases."""
    docs = failing_cases[0].read_text().split("---\n")[1:]
    first = [d for d in docs if any(f"case-{i}\n" in d for i in range(40))]
    path = write(tmp_path / "some-cases.yaml", first)
    config = mix[0].parent / "tootcheck.toml"
    monkeypatch.setattr(streamplan, "BATCH_OBJECTS", BATCH)
    monkeypatch.setattr(streamplan, "MAX_SHARED_SHARE", 1.0)
    monkeypatch.setattr(streamrun, "MIN_STREAM_BYTES", 0)
    calls: list[PolicyRun | None] = []
    real = streamrun.stream_gate

    def spied(*args: Any, **kwargs: Any) -> PolicyRun | None:
        calls.append(real(*args, **kwargs))
        return calls[-1]

    monkeypatch.setattr("tootcheck.commands.policy.stream_gate", spied)
    outputs = []
    for stream in ("1", "0"):
        monkeypatch.setenv("TOOTCHECK_STREAM", stream)
        code = main(["policy", "--config", str(config), "--format", "json", str(path)])
        out = json.loads(capsys.readouterr().out)
        out.pop("duration_s", None)
        outputs.append((code, out))
    assert calls[0] is not None and calls[1] is None  # streamed, then gated whole
    assert outputs[0] == outputs[1]
    assert len(outputs[0][1]["findings"]) > 20 and outputs[0][1]["objects"] == len(first)
