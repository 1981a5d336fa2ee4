"""tootcheck: policy-and-conformance suite for the kirchner.social Mastodon deployment.

The package holds the policy engine (``tootcheck.policy``), the live check
functions (``tootcheck.checks``), the protocol clients (``tootcheck.clients``)
and the thin Kubernetes layer (``tootcheck.kube``). pytest wiring lives in
``tootcheck.plugin`` and in the repository's ``fixtures/`` package.
"""

from tootcheck.errors import BadInput, ToolMissing
from tootcheck.model import CheckResult, Fault, ObjectRef, Severity
from tootcheck.waiting import WaitTimeout, wait_until

__version__ = "0.1.0"

__all__ = [
    "BadInput",
    "CheckResult",
    "Fault",
    "ObjectRef",
    "Severity",
    "ToolMissing",
    "WaitTimeout",
    "__version__",
    "wait_until",
]
