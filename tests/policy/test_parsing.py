"""The streamed file parser gives what PyYAML's safe loader gives, with the same lines
a kept node tree would give, and refuses what the text parser refuses."""

from __future__ import annotations

import gc
import secrets
from pathlib import Path
from typing import Any

import pytest
import yaml

from tootcheck.errors import BadInput
from tootcheck.policy.bundle import LIBYAML, K8sObject, Objects, collector_paused, parse_file
from tootcheck.policy.gate import RENDERED_DIR
from tootcheck.redaction import secret_setting_values


def _paths(data: Any, path: tuple = ()) -> list[tuple]:
    out = [path]
    if isinstance(data, dict):
        for k, v in list(data.items())[:6]:
            out += _paths(v, (*path, k))
    elif isinstance(data, list):
        for i, v in enumerate(data[:3]):
            out += _paths(v, (*path, i))
    return out


def test_libyaml_is_used() -> None:
    assert LIBYAML, "the installed PyYAML has no libyaml: parsing is several times slower"


@pytest.mark.parametrize("render", sorted(p.name for p in RENDERED_DIR.glob("*.yaml")
                                         if p.stat().st_size < 100_000))  # test time
def test_file_parse_matches_pyyaml_data_and_lines(render: str) -> None:
    path = RENDERED_DIR / render
    text = path.read_text()
    objects = parse_file(path, render)
    loader = yaml.CSafeLoader(text)  # PyYAML's own constructor, node trees kept
    kept = []
    while loader.check_node():
        node = loader.get_node()
        data = loader.construct_document(node)
        if data is not None:
            kept.append(K8sObject(data=data, source=render, line=node.start_mark.line + 1,
                                  node=node))
    assert [o.data for o in objects] == [o.data for o in kept]
    for fresh, obj in zip(objects[:12], kept[:12], strict=True):
        assert fresh.line == obj.line
        for p in _paths(fresh.data)[:30]:
            assert fresh.line_of(p) == obj.line_of(p), (fresh.id, p)


def test_lines_with_a_list_and_flow_style(tmp_path: Path) -> None:
    f = tmp_path / "l.yaml"
    f.write_text("# c\napiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: ConfigMap\n"
                 "  metadata: {name: a}\n  data:\n    K: v\n"
                 "- {apiVersion: v1, kind: ConfigMap,\n   metadata: {name: b}, data: {K: w}}\n"
                 "---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\ndata:\n  X: |\n"
                 "    text\n  Y: z\n")
    a, b, c = parse_file(f, "l.yaml")
    assert (a.line, a.line_of(("data", "K")), a.line_of(("metadata", "name"))) == (5, 9, 7)
    assert (b.line, b.line_of(("metadata", "name")), b.line_of(("data", "K"))) == (10, 11, 11)
    assert (c.line, c.line_of(("data", "Y")), c.line_of(("nothing",))) == (13, 20, 13)


def test_file_refusals(tmp_path: Path) -> None:
    utf16 = tmp_path / "u16.yaml"
    utf16.write_bytes("apiVersion: v1\n".encode("utf-16"))
    with pytest.raises(BadInput, match=r"u16\.yaml: cannot read"):
        parse_file(utf16, "u16.yaml")
    latin = tmp_path / "latin.yaml"
    latin.write_bytes(b"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: \xe9}\n")
    with pytest.raises(BadInput, match=r"latin\.yaml: cannot read"):
        parse_file(latin, "latin.yaml")
    laughs = ["apiVersion: v1", "kind: ConfigMap", "metadata:", "  name: x", "  annotations:",
              "    a0: &a0 [l, l, l, l, l, l, l, l, l, l]"]
    laughs += [f"    a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 7)]
    bomb = tmp_path / "laughs.yaml"
    bomb.write_text("\n".join(laughs) + "\n")
    with pytest.raises(BadInput, match="expands its aliases"):
        parse_file(bomb, "laughs.yaml")


def test_generic_documents_build_as_pyyaml_does(tmp_path: Path) -> None:
    text = ("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: m}\n"
            "base: &b {x: 1}\nmerged:\n  <<: *b\n  y: 2\nwhen: 2024-01-02\non: yes\n"
            "n: ~\nf: 1.5\ni: 0x1f\nbin: !!binary aGk=\nset: !!set {a, b}\n")
    f = tmp_path / "g.yaml"
    f.write_text(text)
    assert parse_file(f, "g.yaml")[0].data == yaml.load(text, Loader=yaml.SafeLoader)
    plain = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: p}\nwhen: 2024-01-02\n" \
            "on: yes\nn: ~\nf: 1.5\ni: 0x1f\n1: one\nbin: !!binary aGk=\n"
    f.write_text(plain)
    assert parse_file(f, "g.yaml")[0].data == yaml.load(plain, Loader=yaml.SafeLoader)


def test_two_halves_give_what_one_piece_gives(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from tootcheck.policy import bench, splitparse

    f = tmp_path / "big.yaml"
    planted = [f"planted-{i}-{secrets.token_hex(8)}" for i in range(2)]  # one per half
    docs = bench.mix_documents(60)
    for at, value in zip((3, 50), planted, strict=True):
        docs[at] = (f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: s{at}\n"
                    f"data:\n  SMTP_PASSWORD: {value}\n")
    f.write_text("".join(f"---\n{d}" for d in docs))
    monkeypatch.setattr(splitparse, "MIN_SPLIT_BYTES", 0)
    halves = splitparse.parse_halves(f, "big.yaml", "mastodon", "")
    assert halves is not None, "the file was not split"
    assert isinstance(halves, Objects)
    monkeypatch.setenv("TOOTCHECK_PARSE_WORKERS", "1")
    whole = parse_file(f, "big.yaml")
    # each half collected its secret-valued settings: what a walk over all finds
    assert set(planted) <= set(halves.secret_values)
    assert sorted(halves.secret_values) == sorted(
        secret_setting_values([o.data for o in whole]))
    assert [o.data for o in halves] == [o.data for o in whole]
    assert [(o.doc, o.line) for o in halves] == [(o.doc, o.line) for o in whole]
    for a, b in zip(halves[25:40], whole[25:40], strict=True):
        for p in _paths(a.data)[:20]:
            assert a.line_of(p) == b.line_of(p), (a.id, p)


def test_no_split_where_lines_could_shift(tmp_path: Path) -> None:
    from tootcheck.policy import splitparse

    f = tmp_path / "crlf.yaml"
    f.write_bytes(b"a: 1\r\n" * 200 + b"---\nb: 2\n" * 200)
    assert splitparse.split_point(f, f.stat().st_size) is None
    f.write_bytes(b"a: 1\n" * 200 + b"%YAML 1.1\n---\nb: 2\n" * 200)
    assert splitparse.split_point(f, f.stat().st_size) is None
    f.write_bytes("%YAML 1.1\n---\na: é\n".encode() + b"---\nb: 2\n" * 200)  # not ASCII
    assert splitparse.split_point(f, f.stat().st_size) is None
    f.write_bytes(b"a: 1\n" * 200 + b"---\nb: 2\n" * 200)
    assert splitparse.split_point(f, f.stat().st_size) is not None


def test_the_worker_beside_is_waited_for_within_a_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    """A worker that answers is heard; one stuck after the fork is given up (and killed)
    once the bound after this process's half has passed: its half is then done here."""
    import time

    from tootcheck.policy import splitparse

    assert splitparse.beside_a_worker(lambda: "mine", lambda n: n * 2, (21,)) == ("mine", 42)
    assert splitparse.worker_bound(1.0) == splitparse.WORKER_MIN_WAIT_S
    assert splitparse.worker_bound(100.0) == 100.0 * splitparse.WORKER_WAIT_FACTOR
    monkeypatch.setattr(splitparse, "WORKER_MIN_WAIT_S", 0.2)
    started = time.monotonic()
    assert splitparse.beside_a_worker(lambda: "mine", time.sleep, (3600,)) == ("mine", None)
    assert time.monotonic() - started < 30  # not the hour the worker would have taken


def test_collector_paused_and_what_it_keeps() -> None:
    """Off inside, as it was after; with ``keep``, what is alive is frozen before the
    collector runs again (so its first pass does not walk the run's objects)."""
    assert gc.isenabled()
    frozen = gc.get_freeze_count()
    with collector_paused():
        assert not gc.isenabled()
        made = [[i] for i in range(1000)]  # lists: tracked by the collector
    assert gc.isenabled() and gc.get_freeze_count() == frozen
    with collector_paused(keep=True):
        made += [[i] for i in range(1000)]
    assert gc.isenabled() and gc.get_freeze_count() >= frozen + len(made)
