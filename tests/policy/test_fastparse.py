"""The fast parse (tootcheck.policy.fastparse) builds what PyYAML's path builds: the same
Python objects (types and key order included), lines, spans and positions, on every
committed YAML file and on mutations of a rendered object where YAML 1.1 and 1.2 part
ways; where it cannot be sure it hands the document (or the file) to PyYAML."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from tootcheck.errors import BadInput
from tootcheck.policy import fastparse
from tootcheck.policy.bundle import K8sObject, SourceText, parse_file
from tootcheck.redaction import secret_setting_values

ROOT = Path(__file__).resolve().parents[2]
RENDER = ROOT / "manifests" / "rendered" / "mastodon.yaml"


def typed(value: Any) -> Any:
    """``value`` with every type spelled out (``True == 1 == 1.0`` in Python)."""
    if isinstance(value, dict):
        return ("dict", [(typed(k), typed(v)) for k, v in value.items()])
    if isinstance(value, list):
        return ("list", [typed(v) for v in value])
    return (type(value).__name__, repr(value))


def view(objects: list[K8sObject], secret_values: list[str]) -> list[Any]:
    """Each object as compared, then the secret-valued settings found in them (in order)."""
    return [*((typed(o.data), o.line, o.doc, o.source,
               (o.span.start, o.span.end, o.span.column, o.span.line0) if o.span else None)
              for o in objects), ("secret values", secret_values)]


def by_pyyaml(path: Path) -> list[Any] | str:
    try:
        found = parse_file(path, "f")  # bundle.parse_file without ``fast``: PyYAML
    except BadInput as exc:
        return str(exc)
    return view(found, secret_setting_values([o.data for o in found]))


def by_fast(path: Path) -> list[Any] | None:
    """What the fast parse made, and the secret values it collected as it went."""
    found = fastparse.parse_range(path, 0, None, SourceText(path=path), "f", "mastodon", "")
    return None if found is None else view(found, found.secret_values)


@pytest.fixture
def oryaml_docs(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the documents oryaml built (so no comparison holds vacuously)."""
    built: list[int] = []
    real = fastparse._load

    def counted(doc: str) -> Any:
        data = real(doc)
        if data is not None:
            built.append(1)
        return data

    monkeypatch.setattr(fastparse, "_load", counted)
    return built


def compare(path: Path) -> str:
    """"same" when the fast path gave PyYAML's objects, "handed back" when it left the file
    to PyYAML (it must when PyYAML refuses it), else "differ"."""
    expected, got = by_pyyaml(path), by_fast(path)
    if got is None:
        return "handed back"
    return "same" if got == expected else "differ"


def test_every_committed_yaml_file(oryaml_docs: list[int]) -> None:
    listed = subprocess.run(["git", "ls-files", "*.yaml", "*.yml"], cwd=ROOT, check=True,
                            capture_output=True, text=True).stdout.split()
    paths = [ROOT / p for p in listed if (ROOT / p).is_file()]
    assert len(paths) > 100
    outcomes = {str(p.relative_to(ROOT)): compare(p) for p in paths}
    assert [p for p, outcome in outcomes.items() if outcome == "differ"] == []
    # the renders and cases went the fast way and were compared (not handed back)
    assert list(outcomes.values()).count("same") > 150
    assert len(oryaml_docs) > 300


def test_a_render_takes_the_fast_path_with_pyyaml_lines(oryaml_docs: list[int]) -> None:
    fast = by_fast(RENDER)
    assert fast is not None and fast == by_pyyaml(RENDER)
    assert len(oryaml_docs) == len(fast) - 1  # every object (the last entry: secret values)
    objects = fastparse.parse_range(RENDER, 0, None, SourceText(path=RENDER), "f",
                                    "mastodon", "")
    assert objects is not None
    slow = parse_file(RENDER, "f")
    deployment = next(i for i, o in enumerate(slow) if o.kind == "Deployment")
    for path in [("spec", "template", "spec", "containers", 0, "image"), ("metadata", "name"),
                 ("spec", "template", "spec", "containers", 0, "env", 3, "value")]:
        assert objects[deployment].line_of(path) == slow[deployment].line_of(path)


@pytest.mark.parametrize("off", ["switch", "not installed"])
def test_without_oryaml_pyyaml_parses_everything(monkeypatch: pytest.MonkeyPatch,
                                                  oryaml_docs: list[int], off: str) -> None:
    if off == "switch":
        monkeypatch.setenv("TOOTCHECK_FAST_YAML", "0")
    else:
        monkeypatch.setattr(fastparse, "oryaml", None)
    assert by_fast(RENDER) is None
    found = parse_file(RENDER, "f", fast=fastparse.parse_range)
    assert view(found, secret_setting_values([o.data for o in found])) == by_pyyaml(RENDER)
    assert oryaml_docs == []


# Scalars where YAML 1.1 (PyYAML) and serde_yaml's 1.2 rules may part ways, and some
# where they agree.
TRICKY = ["yes", "No", "ON", "off", "y", "n", "true", "False", "null", "~", "Null", "",
          "0755", "0o17", "0x1F", "0x_1", "1_000", "1e3", "1.0e3", "1.0e+3", "1.", "1.5",
          ".5", "-1", "+1", "-0", "00", "0", "12:30", "1:20:30", "190:20:30.15",
          "2024-01-01", "2001-12-14 21:59:43.10 -5", "2001-12-14t21:59:43.10-05:00",
          ".inf", "-.inf", ".NaN", "inf", "nan", "=", "<<", "0b101", "-0b101",
          "9223372036854775808", "123456789012345678", "1234567890123456789",
          "1.5e-3", "0.", "-1.5", "-0.0", "3.14159265358979323846", "Infinity",
          "10Gi", "127.0.0.1", "nginx:1.25", "1,000", "1 2", "- 5", "5 # five",
          "!!str 5", "!!int '7'", "!!binary aGk=", "!custom x", "&a 5", "*a",
          "'0755'", '"yes"', '"1e3"', "'12:30'", '"\\N\\_\\L\\P\\e\\/"', "|\n  yes\n  0755",
          ">-\n  on\n  12:30", "[yes, 0755, 1e3]", "{a: 0o17, b: on}", '{"a":0755}',
          '["b":yes]', "[a]", "{a: 1}"]


def mutations() -> list[str]:
    """One document of the render mutated each way: a value, a key, a list item, a
    flow entry, a continued line; and structures only PyYAML may read."""
    base = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: m\n  namespace: ns\n"
    docs = []
    for s in TRICKY:
        first, _, rest = s.partition("\n")
        more = "".join(f"\n    {line[2:]}" for line in rest.split("\n")) if rest else ""
        docs += [base + f"data:\n  k: {first}{more}\n",
                 base + f"data:\n  {first}: v\n" if not rest else base,
                 base + f"spec:\n  items:\n  - {first}{more}\n  - x\n",
                 base + f"spec: {{x: [{first}, 1]}}\n" if not rest else base,
                 base + f"data:\n  k: {first}\n    continued\n" if not rest else base]
    docs += [
        base + "data: &d\n  a: 1\nspec: *d\n",
        base + "spec:\n  <<: {a: 1}\n  b: 2\n",
        base + "data:\n  a: 1\n  a: 2\n",
        base + "data:\n  ? [a, b]\n  : 1\n",
        base + "data:\n  [a, b]: 1\n",
        base + "data:\n  k:\tyes\n",
        "%YAML 1.1\n---\n" + base,
        base + "...\n",
        "# a comment\n\n" + base,
        "--- # a comment\n" + base,
        "  " + base.replace("\n", "\n  ").rstrip(" "),
        "---\n",
        "apiVersion: v1\nkind: List\nitems:\n- " + base.replace("\n", "\n  ").rstrip(" "),
        "apiVersion: v1\nkind: ConfigMap\n",
        "- a\n",
        "--- !!map\n" + base,
        base + "data:\n  x: \"unterminated\n",
        base + "data:\n  k: v\r\n",
        "\ufeff" + base,
        base + "data:\n  k: caf\u00e9 \u263a\n",
        base.rstrip("\n"),  # no line break at the end of the file
        base + "# a trailing comment\n\n\n",
        # JSON (a .json input is read as YAML): values right after ":" with no space
        '{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"j"},"data":{"a":"b"}}\n',
        '{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"j"},"data":{"n":0755}}\n',
        '{"apiVersion": "v1", "kind": "ConfigMap",\n "metadata": {"name": "j"},\n'
        ' "data": {"t": yes, "n": 1e3, "m": 12}}\n',
        '{\n  "apiVersion": "v1",\n  "kind": "ConfigMap",\n  "metadata": {\n'
        '    "name": "j"\n  },\n  "data": {\n    "port": 8080,\n    "x": "0755"\n  }\n}\n',
    ]
    return docs


def test_mutations_build_what_pyyaml_builds(tmp_path: Path, oryaml_docs: list[int]) -> None:
    plain = "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: sa\n"
    differ, compared = [], 0
    for i, doc in enumerate(mutations()):
        path = tmp_path / f"m{i}.yaml"
        path.write_text(f"{plain}---\n{doc}---\n{plain}")
        outcome = compare(path)
        compared += outcome == "same"
        if outcome == "differ":
            differ.append(doc)
    assert not differ
    assert compared > 300  # most files were built by the fast path and compared
    assert len(oryaml_docs) > 500  # the plain documents around them went the fast way


def test_a_large_file_in_blocks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Read in pieces that end at a document boundary: what one piece gives."""
    docs = RENDER.read_text().split("\n---\n")
    path = tmp_path / "big.yaml"
    path.write_text("\n---\n".join(docs * 3) + "\n----not-a-boundary: 1\n" + "\n---\n"
                    + docs[0])
    monkeypatch.setattr(fastparse, "_BLOCK", 4096)
    assert by_fast(path) == by_pyyaml(path)


def test_a_range_counts_from_its_start(tmp_path: Path) -> None:
    text = RENDER.read_text()
    cut = text.index("\n---\n", len(text) // 2) + 1
    path = tmp_path / "r.yaml"
    path.write_text(text)
    tail = path.with_name("tail.yaml")
    tail.write_text(text[cut:])
    got = fastparse.parse_range(path, len(text[:cut].encode()), None, SourceText(path=path),
                                "f", "mastodon", "")
    assert got is not None and view(got, got.secret_values) == by_pyyaml(tail)


def test_documents_left_to_pyyaml_in_runs(tmp_path: Path, oryaml_docs: list[int]) -> None:
    """Consecutive documents that PyYAML must read (YAML 1.1 scalars, an empty one
    between) are read by it in one piece, between documents oryaml built; the secret
    values of both kinds of document are collected in document order."""
    cm = ("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c{i}\ndata:\n  k: {v}\n"
          "  SMTP_PASSWORD: planted-{i}\n")
    docs = [cm.format(i=0, v="plain"), cm.format(i=1, v="yes"), "# nothing\n",
            cm.format(i=2, v="0755"), cm.format(i=3, v="'quoted: 0755'"),
            cm.format(i=4, v="12:30"), cm.format(i=5, v="on")]
    path = tmp_path / "runs.yaml"
    path.write_text("---\n".join(docs))
    fast = by_fast(path)
    assert fast is not None and fast == by_pyyaml(path)
    assert len(oryaml_docs) == 2  # c0 and c3; the others went to PyYAML
    assert [item[1] for item in fast[:-1]] == [1, 9, 19, 27, 35, 43]  # lines of c0..c5
    assert fast[-1] == ("secret values", [f"planted-{i}" for i in range(6)])
