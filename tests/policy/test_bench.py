"""``make bench``'s pure parts: statistics, the alternating order, the table, the
generated inputs. No timing is asserted."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tootcheck.policy import bench
from tootcheck.policy.bundle import parse_stream


def test_spread_is_median_and_range() -> None:
    s = bench.spread([3.0, 1.0, 2.0, 10.0])
    assert (s.median, s.low, s.high) == (2.5, 1.0, 10.0)
    assert s.text() == "2.50 (1.00-10.00)"
    with pytest.raises(ValueError):
        bench.spread([])


def test_rounds_alternate_the_order() -> None:
    assert bench.round_orders(["a", "b"], 4) == [["a", "b"], ["b", "a"], ["a", "b"], ["b", "a"]]
    orders = bench.round_orders(["tootcheck", "checkov"], 5)
    firsts = [o[0] for o in orders]
    assert abs(firsts.count("tootcheck") - firsts.count("checkov")) <= 1


def _series(tool: str, objects: int, walls: list[float], peak: float = 100.0,
            every: float = 120.0) -> bench.Series:
    s = bench.Series(tool, f"mix-{objects // 1000}k", objects)
    s.samples = [bench.Sample(w, w * 0.9, peak, 0, every) for w in walls]
    return s


def test_table_has_a_line_per_series_and_judges_targets() -> None:
    table = bench.format_table(
        [_series("tootcheck", 1000, [0.5, 0.6, 0.7]), _series("checkov", 1000, [9.0, 10.0]),
         _series("tootcheck", 100_000, [20.0], peak=600.0)],
        {1000: (0.8, None), 100_000: (15.0, 500.0)})
    lines = table.splitlines()
    assert len(lines) == 5
    assert "0.60 (0.50-0.70)" in lines[2] and lines[2].endswith("<= 0.8 s: met")
    assert "9.50 (9.00-10.00)" in lines[3] and "met" not in lines[3]  # no target for Checkov
    assert lines[4].endswith("<= 15 s, <= 500 MB: MISSED")


def test_memory_target_is_judged_on_the_larger_peak() -> None:
    """One process under the bound, all of them together over it: missed."""
    table = bench.format_table([_series("tootcheck", 100_000, [10.0], peak=400.0, every=650.0)],
                               {100_000: (15.0, 500.0)})
    line = table.splitlines()[2]
    assert "400 (400-400)" in line and "650 (650-650)" in line
    assert line.endswith("<= 15 s, <= 500 MB: MISSED")


def test_run_once_sums_the_memory_of_its_workers() -> None:
    """A child that forks a worker holding 60 MB of its own: counted in all procs."""
    code = ("import os, time\n"
            "pid = os.fork()\n"
            "if pid == 0:\n"
            "    b = b\"x\" * (60 << 20); time.sleep(0.5); os._exit(0)\n"
            "os.waitpid(pid, 0)\n")
    sample, err = bench.run_once([sys.executable, "-c", code])
    assert sample.exit_code == 0, err
    if not Path("/proc/self/smaps_rollup").exists():
        pytest.skip("no /proc smaps_rollup here: all procs is not measured")
    assert sample.all_mb >= 60


def test_ratio() -> None:
    assert bench.ratio(bench.spread([10.0]), bench.spread([0.5])) == 20.0


def test_mix_is_the_reference_in_distinct_namespaces() -> None:
    docs = bench.mix_documents(40)
    objects = parse_stream("---\n".join(docs), "mix.yaml")
    assert len(objects) == 40
    assert len({o.id for o in objects}) == 40  # no object repeats another
    kinds = {o.kind for o in objects}
    assert {"Deployment", "Service", "Ingress", "ConfigMap"} <= kinds
    assert "Namespace/bench-00001" in {o.id for o in objects}


def test_configmap_stress_documents() -> None:
    objects = parse_stream("---\n".join(bench.configmap_documents(25)), "cm.yaml")
    assert [o.kind for o in objects] == ["ConfigMap"] * 25
    assert len({o.id for o in objects}) == 25


def test_run_once_measures_a_child() -> None:
    sample, err = bench.run_once([sys.executable, "-c", "import sys; sys.exit(3)"])
    assert sample.exit_code == 3
    assert sample.wall_s > 0 and sample.cpu_s >= 0 and sample.peak_mb > 1
    assert err == ""


def test_a_run_is_bounded_and_its_stderr_cannot_block_it(monkeypatch) -> None:
    monkeypatch.setattr(bench, "RUN_TIMEOUT_S", 0.5)
    hung, _ = bench.run_once([sys.executable, "-c", "import time; time.sleep(30)"])
    assert hung.exit_code < 0 and hung.wall_s < 10  # killed at the bound
    chatty, err = bench.run_once([sys.executable, "-c", "import sys; sys.stderr.write('x' * 300000)"])
    assert chatty.exit_code == 0 and len(err) == 300000
