"""The rules run on two cores (tootcheck.policy.splitrun) give what one process gives:
the same results in the same order, the same findings and lines, the same waiver
counts; and one process is used when the halves could not be joined."""

from __future__ import annotations

import datetime as dt
import os
import signal
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.policy.casefiles import CASE_CONFIG, CASES_DIR
from tootcheck.policy import splitrun
from tootcheck.policy.bundle import Bundle, K8sObject, parse_stream
from tootcheck.policy.config_loader import load_project
from tootcheck.policy.engine import PolicyRun, evaluate
from tootcheck.policy.registry import all_rules
from tootcheck.policy.sources import split_overlays
from tootcheck.policy.splitparse import parse_file, weighted_cut
from tootcheck.policy.waivers import parse_waivers

ROOT = Path(__file__).resolve().parents[2]
TODAY = dt.date(2026, 11, 27)


def outcome_view(run: PolicyRun) -> list[Any]:
    """Everything a report reads from a run, as plain data."""
    return [(o.rule.id, o.not_run, o.matched,
             [o.count(s) for s in ("fail", "warn", "info", "suppressed", "pass")],
             [(r.test_id, r.obj.id, r.container, r.status,
               [(f.subject_id, f.container, f.path, f.message, f.line, f.label,
                 f.waiver.object if f.waiver else None, f.waiver_expired)
                for f in r.findings]) for r in r_list])
            for o in run.outcomes for r_list in [o.results]]


def one_pass(make_run: Any) -> Any:
    """``make_run()`` in one process, every object in one chunk."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TOOTCHECK_PARSE_WORKERS", "1")
        patch.setattr(splitrun, "CHUNK_OBJECTS", 10**9)
        return make_run()


def split_run(monkeypatch: pytest.MonkeyPatch, make_run: Any, *, splits: bool = True) -> Any:
    """``make_run()`` split over two processes (``splits``: it really was)."""
    monkeypatch.delenv("TOOTCHECK_PARSE_WORKERS", raising=False)
    monkeypatch.setattr(splitrun, "two_cores", lambda: True)
    monkeypatch.setattr(splitrun, "MIN_SPLIT_OBJECTS", 1)
    received: list[int] = []  # batches that came back from the worker
    real = splitrun._received

    def counted(*args: Any) -> Any:
        received.append(1)
        return real(*args)

    monkeypatch.setattr(splitrun, "_received", counted)
    split = make_run()
    monkeypatch.setattr(splitrun, "_received", real)
    assert bool(received) == splits, "the run was not split as expected"
    return split


@pytest.fixture(scope="module")
def serial() -> dict[str, Any]:
    """The one-process, one-pass view of each run the tests compare against, made once
    for the module (each comparison used to evaluate and view it again)."""
    renders, failing = one_pass(rendered_run), one_pass(failing_cases_run)
    assert renders[0].findings and failing.findings  # both runs have findings to compare
    return {"renders": (outcome_view(renders[0]), renders[1],
                        [p.message for p in renders[0].waiver_problems]),
            "failing-cases": (outcome_view(failing),
                              [w.matched for w in failing.waivers.entries])}


def rendered_run() -> tuple[PolicyRun, list[int]]:
    project = load_project(ROOT / "tootcheck.toml", known_rules=[r.id for r in all_rules()])
    objects: list[K8sObject] = []
    for path in sorted((ROOT / "manifests" / "rendered").glob("*.yaml")):
        objects.extend(parse_file(path, f"manifests/rendered/{path.name}",
                                  default_namespace=project.config.namespace))
    bundles = split_overlays(objects, project.config.is_overlay_source)
    run = evaluate(bundles, project.config, waivers=project.waivers, today=TODAY)
    return run, [w.matched for w in run.waivers.entries]


@pytest.mark.slow(reason="evaluates the committed renders with a forked worker (and once in "
                         "one process, shared by the module)")
def test_committed_renders_split_equals_one_process(monkeypatch: pytest.MonkeyPatch,
                                                   serial: dict[str, Any]) -> None:
    view, used, problems = serial["renders"]
    split, split_used = split_run(monkeypatch, rendered_run)
    assert outcome_view(split) == view
    assert split_used == used and sum(used) > 0  # the waivers were used
    assert [p.message for p in split.waiver_problems] == problems


def failing_cases_run() -> PolicyRun:
    """Every failing case file in one bundle: many findings on both halves."""
    objects: list[K8sObject] = []
    paths = sorted(CASES_DIR.glob("*/fail-*.yaml"))
    for i, path in enumerate(paths):
        for obj in parse_stream(path.read_text(), path.name):
            obj.data["metadata"]["namespace"] = f"case-{i}"  # keep the cases apart
            objects.append(obj)
    # case-0 is MSTDN-CFG-001's first failing file (in the first half), WL-005's near the
    # end (in the second): one waiver used by each process
    late = paths.index(CASES_DIR / "MSTDN-WL-005" / "fail-latest.yaml")
    waivers = parse_waivers(
        "waivers:\n- rule: MSTDN-CFG-001\n  object: Deployment/case-0/mastodon\n"
        "  reason: a waiver used on the first half\n  expires: 2027-03-01\n"
        f"- rule: MSTDN-WL-005\n  object: Deployment/case-{late}/mastodon\n"
        "  reason: a waiver used on the second half\n  expires: 2027-03-01\n",
        "waivers.yaml", [r.id for r in all_rules()])
    return evaluate([Bundle(objects)], CASE_CONFIG, waivers=waivers, today=TODAY)


def test_failing_cases_split_equals_one_process(monkeypatch: pytest.MonkeyPatch,
                                               serial: dict[str, Any]) -> None:
    view, used = serial["failing-cases"]
    split = split_run(monkeypatch, failing_cases_run)
    assert outcome_view(split) == view
    assert [w.matched for w in split.waivers.entries] == used and all(used)


def test_an_id_in_both_halves_keeps_one_process(monkeypatch: pytest.MonkeyPatch) -> None:
    text = (CASES_DIR / "MSTDN-WL-005" / "fail-latest.yaml").read_text()
    objects = parse_stream(text, "a.yaml") + parse_stream(text, "b.yaml")  # same ids twice
    assert splitrun.halves(Bundle(objects)) is None

    def run() -> PolicyRun:
        return evaluate([Bundle(objects)], CASE_CONFIG, today=TODAY)

    serial = one_pass(run)
    split = split_run(monkeypatch, run, splits=False)
    assert outcome_view(split) == outcome_view(serial)


_MARKER: list[Path] = []  # where a broken worker notes that it ran (set before the fork)


def _raises() -> Any:
    _MARKER[0].with_name("raises").touch()
    raise RuntimeError("worker lost")


def _killed() -> Any:
    _MARKER[0].with_name("killed").touch()
    os.kill(os.getpid(), signal.SIGKILL)  # as an out-of-memory kill would end it


@pytest.mark.slow(reason="evaluates every failing case file twice, a broken worker each time")
def test_a_failing_worker_leaves_the_second_half_to_this_process(
        monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str],
        tmp_path: Path, serial: dict[str, Any]) -> None:
    view, _ = serial["failing-cases"]
    monkeypatch.delenv("TOOTCHECK_PARSE_WORKERS", raising=False)
    monkeypatch.setattr(splitrun, "two_cores", lambda: True)
    monkeypatch.setattr(splitrun, "MIN_SPLIT_OBJECTS", 1)
    monkeypatch.setattr(splitrun, "_received", None)  # nothing comes back from the worker
    monkeypatch.setattr(sys.modules[__name__], "_MARKER", [tmp_path / "marker"])
    for broken in (_raises, _killed):
        monkeypatch.setattr(splitrun, "_second_half", broken)  # runs in the forked worker
        again = failing_cases_run()
        assert (tmp_path / broken.__name__.strip("_")).exists(), "the worker did not run"
        assert outcome_view(again) == view, broken.__name__
    assert "Traceback" not in capfd.readouterr().err  # the worker's failure stays quiet


@pytest.mark.parametrize(("weights", "share", "cut"), [
    ([1, 1, 1, 1], 0.5, 2), ([1, 1, 1, 1], 0.48, 2), ([10, 1, 1], 0.5, 1),
    ([1, 1, 10], 0.5, 3), ([], 0.5, 0), ([0, 0], 0.5, 1)])
def test_weighted_cut(weights: list[int], share: float, cut: int) -> None:
    assert weighted_cut(weights, share) == cut


def test_halves_split_by_text_and_keep_bundle_order() -> None:
    text = Path(CASES_DIR / "MSTDN-WL-005" / "fail-latest.yaml").read_text()
    objects = [o for i in range(6) for o in parse_stream(
        text.replace("namespace: mastodon", f"namespace: ns{i}"), f"{i}.yaml")]
    cut = splitrun.halves(Bundle(objects))
    assert cut is not None and 0 < cut < len(objects)
    text_before = sum(o.span.end - o.span.start for o in objects[:cut] if o.span)
    text_after = sum(o.span.end - o.span.start for o in objects[cut:] if o.span)
    assert abs(text_before - text_after) <= max(o.span.end - o.span.start
                                                for o in objects if o.span)


@pytest.mark.parametrize("name, make_run", [("renders", lambda: rendered_run()[0]),
                                            ("failing-cases", failing_cases_run)],
                         ids=["renders", "failing-cases"])
def test_rules_a_chunk_at_a_time_give_one_pass(monkeypatch: pytest.MonkeyPatch,
                                                serial: dict[str, Any], name: str,
                                                make_run: Any) -> None:
    """Every rule over a chunk of objects, then the next (each object its own chunk
    here): the results, findings and lines of one pass over all the objects."""
    view, used = serial[name][:2]
    monkeypatch.setenv("TOOTCHECK_PARSE_WORKERS", "1")
    chunks: list[int] = []
    real = splitrun._Chunks

    def counted(*args: Any) -> Any:
        found = real(*args)
        chunks.append(len(found))
        return found

    monkeypatch.setattr(splitrun, "CHUNK_OBJECTS", 1)
    monkeypatch.setattr(splitrun, "_Chunks", counted)
    chunked = make_run()
    assert max(chunks) > 10  # it was evaluated in chunks
    assert outcome_view(chunked) == view
    assert [w.matched for w in chunked.waivers.entries] == used


def test_findings_stay_in_result_order_when_a_repeated_subject_fails_later() -> None:
    """An object that passes, another that fails, then the first one's id again failing:
    its findings join the first position, after the second object's were added."""
    cases = CASES_DIR / "MSTDN-WL-005"
    fail = (cases / "fail-latest.yaml").read_text()
    objects = (parse_stream((cases / "pass-pinned.yaml").read_text(), "pass.yaml")
               + parse_stream(fail.replace("namespace: mastodon", "namespace: other"), "o.yaml")
               + parse_stream(fail, "fail.yaml"))
    run = evaluate([Bundle(objects)], CASE_CONFIG, today=TODAY)
    in_results = [f for r in run.results for f in r.findings]
    assert len({f.subject_id for f in in_results}) >= 2  # both objects failed
    assert run.findings == in_results
