"""The report a person reads: verdict and capability matrix first, failures before passes,
pictures, the same counts in HTML, terminal, Markdown and JSON, and no secret anywhere."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tests.reporting import recorded
from tootcheck.reporting import capabilities, groups, svg, text
from tootcheck.reporting import html as html_report
from tootcheck.reporting import summary as json_summary

LIMIT = 200 * 1024


@pytest.fixture(scope="module")
def nightly() -> dict:
    return recorded.summary()


@pytest.fixture(scope="module")
def page(nightly: dict, tmp_path_factory: pytest.TempPathFactory) -> str:
    return html_report.render(nightly, tmp_path_factory.mktemp("r"), recorded.history())


def test_the_recorded_run_is_about_two_thousand_tests(nightly):
    assert sum(nightly["counts"].values()) == len(nightly["tests"]) > 1990
    assert nightly["counts"]["failed"] == 2 and nightly["counts"]["flaky"] == 1


def test_page_stays_small_for_two_thousand_tests(page):
    assert len(page.encode()) < LIMIT, f"{len(page.encode())} bytes"


def test_verdict_then_matrix_then_failures_then_passes(page):
    verdict = page.index("class='verdict bad'>FAILED")
    matrix = page.index("id='capabilities'")
    first_failure = page.index("class='fail")
    first_pass = page.index("id='passes'")
    assert verdict < matrix < first_failure < first_pass
    assert page.index("id='not-run'") < first_pass


def test_failure_shows_check_fault_and_headline_with_the_traceback_behind_details(page):
    block = page[page.index("<div class='fail"):]
    block = block[:block.index("</div></div>") if "</div></div>" in block else 4000]
    assert "https.http_semantics" in block and "no-redirect" in block
    assert "evidence</a>" in block
    details = re.search(r"<details><summary>details</summary><pre>(.*?)</pre></details>", page, re.S)
    assert details and "Traceback line 1" in details.group(1)
    outside = page.replace(details.group(0), "")
    assert "Traceback line 1" not in outside


def test_no_secret_in_any_output(nightly, page, tmp_path):
    secret = recorded.SECRET.reveal()
    json_summary.write(nightly, tmp_path)
    outputs = {
        "html": page,
        "markdown": text.markdown(nightly),
        "terminal": "\n".join(text.terminal(nightly)),
        **{p.name: p.read_text() for p in tmp_path.iterdir()},
    }
    assert "no-redirect" in outputs["markdown"]  # the failure is there, its secret is not
    for name, content in outputs.items():
        assert secret not in content, name


def test_matrix_cells_say_passed_failed_flaky_and_not_run_with_the_reason(nightly):
    cells = {c["check"]: c for row in nightly["capabilities"] for c in row["cells"]}
    assert cells["https.certificate"]["state"] == "passed"
    assert cells["https.http_semantics"]["state"] == "failed"
    assert cells["oidc.discovery"]["state"] == "flaky"
    assert cells["streaming.delivery"]["state"] == "not run"
    assert "refused in nightly mode" in cells["streaming.delivery"]["reason"]
    assert cells["sidekiq.health"]["reason"] == "needs a kubeconfig (--tootcheck-kubeconfig)"
    assert cells["mail.delivery"] == {"check": "mail.delivery", "state": "not run",
                                      "reason": capabilities.NOT_SELECTED, "nodeid": ""}
    assert cells[capabilities.POLICY_GATE]["state"] == "failed"
    order = [row["label"] for row in nightly["capabilities"]]
    assert order == ["HTTPS", "streaming", "Sidekiq", "OIDC", "mail", "drift", "policy"]


def test_not_run_is_as_visible_as_failed(page):
    matrix = page[page.index("id='capabilities'"):page.index("class='fail")]
    assert matrix.count("class='cell notrun'") == 4
    assert "delivery · not run" in matrix
    assert "class='cell failed'" in matrix


def test_numbers_sit_under_their_headers(page):
    for table in re.findall(r"<table>.*?</table>", page, re.S):
        header = re.search(r"<tr>(.*?)</tr>", table, re.S)
        assert header
        heads = re.findall(r"<th( class='num')?>", header.group(1))
        for row in re.findall(r"<tr>(<td.*?)</tr>", table, re.S):
            cells = re.findall(r"<td( class='num')?>", row)
            assert cells == heads, table[:200]


def test_policy_results_are_grouped_by_rule(page, nightly):
    rules = re.findall(r"<span class='o (\w+)'>(MSTDN-[A-Z]+-\d{3})</span></td><td class='num'>(\d+)</td>"
                       r"<td class='num'>(\d+)</td><td class='num'>(\d+)</td>", page)
    by_rule = {rule: (state, int(n), int(f), int(w)) for state, rule, n, f, w in rules}
    assert len(by_rule) == 42
    assert by_rule["MSTDN-WL-000"] == ("passed", 16, 0, 0)
    assert by_rule["MSTDN-SEC-004"] == ("failed", 1, 1, 0)
    assert by_rule["MSTDN-PV-002"] == ("notrun", 1, 0, 1)
    assert "passed 0.00" not in page


def test_passes_are_collapsed(page):
    passes = page[page.index("id='passes'"):]
    assert passes.count("<details>") == 12 + 3 and "<details open" not in passes


def test_pictures_are_inline_svg_without_script(page):
    svgs = re.findall(r"<svg .*?</svg>", page, re.S)
    titles = [re.search(r"<title>(.*?)</title>", s).group(1) for s in svgs]  # type: ignore[union-attr]
    assert titles == ["bring-up phase timeline", "trend of the last 12 runs", "latency figures"]
    for picture in svgs:
        ET.fromstring(picture)  # well-formed
    assert "<script" not in page and " src=" not in page and "<link" not in page
    assert not re.search(r"href=['\"]https?:", page)
    assert "streaming.latency latency_p95_s" in page and "oidc.login login_s" in page


def test_the_timeline_draws_concurrent_phases_side_by_side():
    picture = svg.timeline({"a": 10.0, "b": 5.0, "c": 5.0}, {"a": 0.0, "b": 10.0, "c": 10.0})
    xs = [float(x) for x in re.findall(r"<rect x='([\d.]+)'", picture)]
    assert xs[1] == xs[2] > xs[0]
    sequential = svg.timeline({"a": 10.0, "b": 5.0, "c": 5.0})
    xs = [float(x) for x in re.findall(r"<rect x='([\d.]+)'", sequential)]
    assert xs[0] < xs[1] < xs[2]


def test_trend_colours_each_capability_per_run():
    runs = recorded.history(3)
    picture = svg.trend(runs, capabilities.CAPABILITIES)
    assert picture.count(svg.COLOURS["failed"]) >= 3  # HTTPS failed in every run, plus bad runs
    assert "run02 HTTPS: failed" in picture and "run01 OIDC: flaky" in picture
    assert svg.trend([], capabilities.CAPABILITIES) == ""


def test_terminal_and_markdown_show_the_json_counts(nightly):
    lines = text.terminal(nightly)
    markdown = text.markdown(nightly)
    totals = ", ".join(f"{n} {k}" for k, n in nightly["counts"].items() if n)
    assert lines[-1].startswith(totals) and totals in markdown
    for row in nightly["capabilities"]:
        counts = [sum(c["state"] == s for c in row["cells"]) for s in capabilities.STATES]
        assert any(line.split()[-4:] == [str(n) for n in counts] and line.startswith(row["label"])
                   for line in lines), row["label"]
        assert f"| {row['label']} | " + " | ".join(map(str, counts)) + " |" in markdown
    assert "needs a kubeconfig (--tootcheck-kubeconfig): sidekiq.health" in "\n".join(lines)
    assert "render freshness NOT PROVEN (1 test)" in markdown


def test_an_offline_run_says_live_capabilities_were_not_checked():
    offline = recorded.summary(target="none", mode="gate")
    lines = text.terminal(offline)
    assert "live capabilities: not run (offline run, --target none)" in lines
    assert lines[1].startswith("policy") and lines[1].split()[1:] == ["1", "0", "0", "0"]


def test_history_keeps_outcome_per_capability_and_reads_the_last_thirty(tmp_path):
    template = json_summary.trend_line(recorded.summary())
    for i in range(35):
        line = {**template, "run_id": f"r{i}"}
        with (tmp_path / "history.jsonl").open("a") as handle:
            handle.write(json.dumps(line) + "\n")
    with (tmp_path / "history.jsonl").open("a") as handle:
        handle.write("not json\n")
    runs = json_summary.load_history(tmp_path)
    assert len(runs) == 29 and runs[-1]["run_id"] == "r34"
    assert runs[0]["capabilities"]["https"] == "failed" and runs[0]["capabilities"]["oidc"] == "flaky"


LIVE_SAMPLE = '''
import pytest
from tootcheck.model import CheckRun


@pytest.mark.check("streaming.latency")
def test_latency():
    run = CheckRun("streaming.latency", "peer")
    run.observe()
    run.metrics["latency_p95_s"] = 0.5
    run.fail("latency-exceeded", "p95 0.5s is over the 0.2s budget")
    result = run.result()
    assert result.ok, result.summary
'''


@pytest.mark.slow(reason="an inner pytest session that imports every live check module")
def test_a_live_test_records_its_fault_codes_and_metrics(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nenable_assertion_pass_hook = true\n")
    pytester.makepyfile(test_live=LIVE_SAMPLE)
    reports = pytester.path / "reports"
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", "-p", "no:pytest-kind",
                                          f"--reports-dir={reports}")
    assert result.ret == 1
    summary = json.loads((reports / "summary.json").read_text())
    test = summary["tests"][0]
    assert test["properties"]["faults"] == "latency-exceeded"
    assert json.loads(test["properties"]["metrics"]) == {"latency_p95_s": 0.5}
    assert summary["latencies"] == {"streaming.latency latency_p95_s": 0.5}
    markdown = (reports / "summary.md").read_text()
    assert "[latency-exceeded]" in markdown and "## tootcheck FAILED" in markdown
    assert "fault: <code>latency-exceeded</code>" in (reports / "summary.html").read_text()


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (Debian package chromium); "
                                              "the screenshot check needs it")
@pytest.mark.slow(reason="starts Chromium (the screenshot and the DOM in one run)")
def test_the_page_renders_in_a_headless_browser(page, tmp_path):
    assert CHROMIUM is not None
    path = tmp_path / "summary.html"
    path.write_text(page)
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1280,1600"]
    shot = tmp_path / "shot.png"
    done = subprocess.run([CHROMIUM, *flags, f"--screenshot={shot}", "--dump-dom", path.as_uri()],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert (width, height) == (1280, 1600) and len(data) > 20_000  # drawn, not blank
    assert "FAILED" in done.stdout and done.stdout.count("<svg") == 3  # the DOM after scripts
    assert "Uncaught" not in done.stderr


def test_write_puts_the_page_next_to_the_history(tmp_path, nightly):
    json_summary.write(nightly, tmp_path)
    json_summary.write(nightly, tmp_path)
    written = html_report.write(nightly, tmp_path)
    assert written == tmp_path / "summary.html"
    assert "Last 2 runs" in written.read_text()
    assert Path(written).stat().st_size < LIMIT


def test_a_not_proven_part_is_listed_once(tmp_path):
    summary = recorded.summary(target="none", mode="gate")
    summary["tests"].append({**summary["tests"][-1], "nodeid": "tests/test_render.py::test_fresh[x]",
                             "message": "NOT PROVEN: render.freshness[x]: helm not found"})
    summary["gaps"] = {"not_proven": {"render.freshness[x]": "helm not found"}}
    markdown = text.markdown(summary)
    page = html_report.render(summary, tmp_path)
    assert markdown.count("render.freshness[x]") == 1 and page.count("render.freshness[x]") == 1
    assert "- NOT PROVEN render.freshness[x]: helm not found" in markdown
    shown = len(re.findall(r"<li><span class='o notrun'>NOT PROVEN", page))
    skipped = sum(len(v) for v in groups.skipped_by_reason(summary["tests"], False, True).values())
    assert f"Not run ({shown + skipped})" in page
