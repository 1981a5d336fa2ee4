"""The policy catalogue over the live objects of the target's namespace (read-only).

The same rules as the offline gate, fed by the ``kubernetes`` client (Secrets reduced
to their keys before any rule sees them), with the project's waivers and config (the
config file found from the working directory).
"""

from __future__ import annotations

from dataclasses import replace

from tootcheck.checks.registry import live_check
from tootcheck.errors import BadInput
from tootcheck.model import CheckResult, CheckRun
from tootcheck.policy.config_loader import load_project
from tootcheck.policy.engine import evaluate
from tootcheck.policy.live import load_live_bundle
from tootcheck.policy.registry import all_rules
from tootcheck.settings import active
from tootcheck.target import Target

FAULTS = {
    "cluster-unreachable": "the target's API server cannot be read (kubeconfig, context, namespace)",
    "violation": "a live object breaks a rule of the catalogue (ERROR, or WARN under strict)",
}


@live_check("policy.live_objects", faults=FAULTS)
def check_live_objects(target: Target, *, strict: bool = False,
                       waivers: bool | None = True) -> CheckResult:
    """Every rule of the catalogue holds for the live objects of the target's namespace."""
    run = CheckRun("policy.live_objects", target.name)
    project = load_project(known_rules=[r.id for r in all_rules()])  # bad config: BadInput
    config = project.config
    if active().policy_profile:  # --policy-profile overrides the config's profile
        config = replace(config, profile=active().policy_profile)
    try:
        bundle = load_live_bundle(target.kubeconfig, target.kube_context, target.namespace, config)
        result = evaluate([bundle], config, waivers=project.waivers if waivers else None)
    except BadInput as exc:
        run.fail("cluster-unreachable", str(exc))
        return run.result()
    run.observe(len(bundle.objects))
    run.metrics["objects"] = float(len(bundle.objects))
    failing = [r for r in result.results if r.failed(strict)]
    run.metrics["violations"] = float(len(failing))
    run.evidence["rules_not_run"] = sorted(o.rule.id for o in result.outcomes if o.not_run)
    for subject in failing:
        for finding in subject.active:
            run.fail("violation", finding.text())
    for problem in result.waiver_problems:
        run.evidence.setdefault("waiver_problems", []).append(problem.message)
    return run.result()
