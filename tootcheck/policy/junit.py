"""JUnit XML from the CLI, shaped like the pytest gate's: one testcase per rule and
subject (``MSTDN-SEC-002[Deployment/mastodon/mastodon:sidekiq]``); waived and
unmatched rules are skipped, never passed."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from tootcheck.policy.engine import PolicyRun, SubjectResult
from tootcheck.redaction import redact


def to_junit(run: PolicyRun, strict: bool = False) -> ET.Element:
    suite = ET.Element("testsuite", name="tootcheck.policy")
    counts = {"tests": 0, "failures": 0, "skipped": 0}
    for o in run.outcomes:
        cases: list[tuple[str, SubjectResult | None]] = [(r.test_id, r) for r in o.results] or [
            (f"{o.rule.id}[{'not run' if o.not_run else 'no matching objects'}]", None)]
        for name, res in cases:
            counts["tests"] += 1
            case = ET.SubElement(suite, "testcase", classname=f"policy.{o.rule.area.lower()}",
                                 name=name)
            if res is None:
                counts["skipped"] += 1
                ET.SubElement(case, "skipped", message=o.not_run or "no matching objects")
            elif res.failed(strict):
                counts["failures"] += 1
                text = "\n".join(redact(f.text()) for f in res.active)
                ET.SubElement(case, "failure", message=redact(res.active[0].message)).text = text
            elif res.status == "suppressed":
                counts["skipped"] += 1
                w = res.findings[0].waiver
                assert w is not None
                ET.SubElement(case, "skipped", message=f"waived until {w.expires}: {w.reason}")
            elif res.status in ("warn", "info"):
                ET.SubElement(case, "system-out").text = "\n".join(
                    redact(f.text()) for f in res.active)
    for p in run.waiver_problems:
        counts["tests"] += 1
        case = ET.SubElement(suite, "testcase", classname="policy.waivers", name=p.id)
        if p.severity.value == "ERROR" or strict:
            counts["failures"] += 1
            ET.SubElement(case, "failure", message=p.message)
        else:
            ET.SubElement(case, "system-out").text = p.message
    for key, value in counts.items():
        suite.set(key, str(value))
    suite.set("errors", "0")
    suite.set("time", f"{run.duration_s:.3f}")
    return suite


def write_junit(run: PolicyRun, path: Path, strict: bool = False) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    root = ET.Element("testsuites")
    root.append(to_junit(run, strict))
    ET.indent(root)
    path.write_bytes(ET.tostring(root, encoding="utf-8", xml_declaration=True))
    return path
