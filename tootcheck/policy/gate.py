"""The CI gate over the committed renders, as a list of cases the pytest hooks turn
into test items (one per rule and subject, plus rules that matched nothing and
waiver problems).

Renders deployed together (the reference and the infrastructure renders) form one
bundle, so references resolve across them; a render matching ``overlay_sources``
(the kind overlay) is an alternative to the reference and is gated on its own, its
ids suffixed ``@<render>``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from tootcheck.errors import BadInput
from tootcheck.model import Severity
from tootcheck.policy.bundle import Bundle, K8sObject, secret_values_of
from tootcheck.policy.config import PolicyConfig
from tootcheck.policy.config_loader import load_project
from tootcheck.policy.engine import Finding, PolicyRun, evaluate
from tootcheck.policy.registry import all_rules, check_profile
from tootcheck.policy.sources import split_overlays
from tootcheck.policy.splitparse import parse_file
from tootcheck.policy.waivers import load_waivers
from tootcheck.redaction import register_values
from tootcheck.rendering import display_path
from tootcheck.versions import KUBERNETES

# Relative to the project root (the config file's directory, else the working directory).
RENDERED_DIR = Path("manifests") / "rendered"


@dataclass(frozen=True)
class PolicyGate:
    """Declares a gate in a test module; ``tootcheck.hooks.policy`` collects it."""

    renders: Path = RENDERED_DIR  # a directory of *.yaml renders, or one file
    waivers: Path | None = None  # a YAML waivers file; default: the config file's waivers
    config: Path | None = None  # default: the config file found from the working directory
    kube_version: str = KUBERNETES


def render_files(renders: Path) -> list[Path]:
    if renders.is_file():
        return [renders]
    if not renders.is_dir():
        raise BadInput(f"{renders}: no such render file or directory")
    files = sorted(renders.glob("*.yaml"))
    if not files:
        raise BadInput(f"{display_path(renders)}: no *.yaml renders to gate")
    return files


def gate_bundles(files: Sequence[Path], config: PolicyConfig) -> list[Bundle]:
    objects: list[K8sObject] = []
    for path in files:
        shown = display_path(path)
        found = parse_file(path, shown, default_namespace=config.namespace)
        if not found:
            raise BadInput(f"{shown}: no Kubernetes objects in it")
        objects.extend(found)
        register_values(secret_values_of(found))  # never echoed by any report
    return split_overlays(objects, config.is_overlay_source)


def run_gate(gate: PolicyGate, *, today: dt.date | None = None,
             profile: str = "") -> PolicyRun:
    """Gate the renders; ``profile`` (non-empty) overrides the config's."""
    known = [r.id for r in all_rules()]
    project = load_project(gate.config, known_rules=known)
    config = project.config
    if profile:
        config = replace(config, profile=check_profile(profile))
    files = render_files(project.root / gate.renders)
    waivers = load_waivers(gate.waivers, known) if gate.waivers is not None else project.waivers
    return evaluate(gate_bundles(files, config), config, waivers=waivers,
                    kube_version=gate.kube_version, today=today)


@dataclass
class GateCase:
    """One test: its id, what it concluded, and the findings behind it."""

    name: str
    outcome: str  # pass | fail | warn | info | skip
    message: str = ""
    findings: list[Finding] = field(default_factory=list)
    source: str = ""
    line: int = 0
    rule_id: str = ""


def gate_cases(run: PolicyRun, strict: bool) -> list[GateCase]:
    cases: list[GateCase] = []
    for o in run.outcomes:
        if o.not_run:
            cases.append(GateCase(f"{o.rule.id}[not run]", "skip", f"{o.rule.id}: {o.not_run}",
                                  rule_id=o.rule.id))
            continue
        if not o.matched:
            cases.append(GateCase(f"{o.rule.id}[no matching objects]", "skip",
                                  f"{o.rule.id}: no matching objects: it applies to "
                                  f"{o.rule.applies_to} and none in the renders qualified",
                                  rule_id=o.rule.id))
            continue
        for res in o.results:
            status = res.status
            source, line = res.obj.source, res.obj.line
            if status == "pass":
                cases.append(GateCase(res.test_id, "pass", source=source, line=line,
                                      rule_id=o.rule.id))
            elif status == "suppressed":
                w = res.findings[0].waiver
                assert w is not None
                cases.append(GateCase(res.test_id, "skip",
                                      f"{res.test_id} waived until {w.expires.isoformat()}: "
                                      f"{w.reason}",
                                      res.findings, source, line, o.rule.id))
            else:
                outcome = "fail" if res.failed(strict) else status
                cases.append(GateCase(res.test_id, outcome,
                                      "\n".join(f.text() for f in res.active), res.active,
                                      source, res.active[0].line or line, o.rule.id))
    for p in run.waiver_problems:
        if p.severity is Severity.INFO:
            continue  # a waiver for an object outside this input: shown in the summary only
        outcome = "fail" if p.severity is Severity.ERROR or strict else "warn"
        cases.append(GateCase(f"{p.id}", outcome, p.message, source=run.waivers.source,
                              line=p.waiver.line, rule_id=p.waiver.rule))
    return cases
