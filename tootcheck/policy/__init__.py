"""The policy engine: one rule catalogue over rendered manifests or live objects.

Layout: ``types`` (Subject, Context, Hit: what a rule sees and yields), ``registry``
(rule metadata, the ``@rule`` decorator, duplicate IDs refused), ``rules/`` (one module
per area), ``bundle`` (objects with file and line; parsing; ``fastparse`` for plain
documents in native code, ``splitparse`` for large files on two cores), ``sources``
(files, stdin, kustomize) and ``live`` (a cluster, Secrets as keys only), ``schema``
(strict validation: jsonschema-rs's fast yes, jsonschema's words), ``envmerge`` (a
container's effective environment), ``waivers``, ``engine`` (runs rules, attaches
context and waiver status; ``splitrun`` runs them on two cores, a chunk of objects at
a time), ``gate`` (the pytest gate's cases), and the renderers ``render_summary``,
``sarif``, ``junit``, ``docs``; ``bench`` is ``make bench``.
"""

from tootcheck.policy.config import PolicyConfig
from tootcheck.policy.config_loader import load_config
from tootcheck.policy.engine import Finding, PolicyRun, evaluate
from tootcheck.policy.registry import Rule, all_rules, rule

__all__ = ["Finding", "PolicyConfig", "PolicyRun", "Rule", "all_rules", "evaluate",
           "load_config", "rule"]
