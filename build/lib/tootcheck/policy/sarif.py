"""SARIF 2.1.0 for a policy run: one rule descriptor per registered rule, one
result per finding (waived ones carry a suppression), notifications for rules
that matched nothing and for waiver problems."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tootcheck.model import Severity
from tootcheck.policy.engine import Finding, PolicyRun
from tootcheck.redaction import redact

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
INFO_URI = "https://kirchner.social/tootcheck"


def _rule_descriptor(run: PolicyRun, index: int) -> dict[str, Any]:
    r = run.outcomes[index].rule
    return {
        "id": r.id,
        "name": r.fn.__name__,
        "shortDescription": {"text": r.title},
        "fullDescription": {"text": r.description},
        "help": {"text": r.remediation,
                 "markdown": f"**Remediation:** {r.remediation}\n\n"
                             f"Mirrors: {'; '.join(r.refs)}\n\n"
                             f"Details: [{r.id}]({r.help_uri})"},
        # no helpUri: SARIF requires an absolute URI there, and the rule's documentation
        # is a file of this repository (properties.docs, repository-relative)
        "defaultConfiguration": {"level": r.severity.sarif_level},
        "properties": {"tags": ["kubernetes", "policy", r.area.lower()], "severity":
                       r.severity.value, "kinds": r.applies_to, "refs": list(r.refs),
                       "docs": r.help_uri},
    }


def _location(f: Finding) -> dict[str, Any]:
    obj = f.obj
    loc: dict[str, Any] = {}
    if obj.source and not obj.source.startswith("live:"):
        uri = obj.artifact or ("stdin" if obj.source == "<stdin>" else obj.source)
        line = f.line if (f.line and not obj.artifact) else 1
        loc["physicalLocation"] = {"artifactLocation": {"uri": uri},
                                   "region": {"startLine": max(1, line)}}
    loc["logicalLocations"] = [
        {"name": obj.name, "fullyQualifiedName": obj.id, "kind": "resource"},
        {"name": f"{obj.api_version}, Kind={obj.kind}", "kind": "type"},
    ]
    if obj.namespace:
        loc["logicalLocations"].append({"name": obj.namespace, "kind": "namespace"})
    return loc


def to_sarif(run: PolicyRun, strict: bool = False) -> dict[str, Any]:
    index = {o.rule.id: i for i, o in enumerate(run.outcomes)}
    results = []
    for f in run.findings:
        result: dict[str, Any] = {
            "ruleId": f.rule.id,
            "ruleIndex": index[f.rule.id],
            "level": f.severity.sarif_level,
            "message": {"text": f"{f.subject_id}: {f.message}"},
            "locations": [_location(f)],
            "properties": {"path": f.path_text, "container": f.container,
                           "object": f.object_id, "subject": f.subject_id},
        }
        if f.waiver is not None:
            result["suppressions"] = [{
                "kind": "external",
                "status": "rejected" if f.waiver_expired else "accepted",
                "justification": f"{f.waiver.reason} (expires {f.waiver.expires.isoformat()})"}]
        results.append(result)
    notes = []
    for o in run.outcomes:
        if o.not_run or not o.matched:
            notes.append({"level": "note",
                          "message": {"text": f"{o.rule.id}: "
                                              f"{o.not_run or 'no matching objects'}"},
                          "associatedRule": {"id": o.rule.id, "index": index[o.rule.id]}})
    for p in run.waiver_problems:
        level = "error" if p.severity is Severity.ERROR else "warning"
        notes.append({"level": level, "message": {"text": p.message},
                      "associatedRule": {"id": p.waiver.rule,
                                         "index": index.get(p.waiver.rule, -1)}})
    return {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {"name": "tootcheck-policy", "informationUri": INFO_URI,
                                "semanticVersion": "0.1.0",
                                "rules": [_rule_descriptor(run, i)
                                          for i in range(len(run.outcomes))]}},
            "invocations": [{"executionSuccessful": True,
                             "exitCode": run.exit_code(strict),
                             "toolExecutionNotifications": notes}],
            "results": results,
            "properties": {"kubernetesVersion": run.kube_version, "objects": run.objects},
        }],
    }


def write_sarif(run: PolicyRun, path: Path, strict: bool = False) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(redact(json.dumps(to_sarif(run, strict), indent=2)) + "\n")
    return path
