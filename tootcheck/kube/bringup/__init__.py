"""The kind bring-up: run :data:`tootcheck.kube.plan.KIND_PLAN` phase by phase.

Each phase has a ``run`` (do it, then wait for its readiness condition through
:func:`tootcheck.kube.waits.wait_ready`) and, where state can tell, a ``done``
check used with ``--reuse-cluster`` to skip work already done. A line per phase
is printed as it ends; timings go to ``reports/timings.json``. Every external
call is bounded; every failure is one line naming the phase and what was seen.

The package, by seam:

* ``engine``: runs the phases, several at once where the plan allows;
* ``context``: the run's context, :class:`BringUpHooks` (what higher layers inject:
  the rehearsal's render and images), shared helpers;
* ``phases``: the table of phase functions; one module per area: ``cluster``
  (kind, secrets, renders, images, nodes), ``ingress`` (CoreDNS, Traefik), ``storage``
  (NFS), ``certificates`` (cert-manager, issuers, CA), ``identity`` (Authentik), ``app``
  (Mastodon, accounts, peers);
* ``kind``: pytest-kind's cluster, bounded; ``progress``: the output; ``keep``: keep
  or delete the cluster at the end.

The logic worth testing without Docker lives in the pure modules these call (plan,
readiness, objects, kindconfig, images, accounts, safety); the phase functions are
thin glue, exercised against a fake cluster in ``tests/kube/test_bringup.py``.
"""

from tootcheck.kube.bringup.context import BringUpFailed, BringUpHooks, Context, Impl, Rendered
from tootcheck.kube.bringup.engine import created_verdict, execute, write_timings
from tootcheck.kube.bringup.keep import KeepDecision, keep_decision, reconnect_lines
from tootcheck.kube.bringup.kind import SuiteKindCluster, run_kind_config
from tootcheck.kube.bringup.phases import IMPLS
from tootcheck.kube.bringup.progress import LineProgress, Progress

__all__ = [
    "IMPLS",
    "BringUpFailed",
    "BringUpHooks",
    "Context",
    "Impl",
    "KeepDecision",
    "LineProgress",
    "Progress",
    "Rendered",
    "SuiteKindCluster",
    "created_verdict",
    "execute",
    "keep_decision",
    "reconnect_lines",
    "run_kind_config",
    "write_timings",
]
