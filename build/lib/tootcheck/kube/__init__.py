"""The thin Kubernetes layer: bring-up of the kind deployment and cluster access.

Pure logic (what "ready" means, the bring-up plan, name pinning from the kind
config, secret and command construction, evidence layout, the safety verdict)
sits in modules that import no cluster client, so it is unit-tested on literal
objects. The modules that talk to a cluster (``client``, ``apply``, ``pods``,
``portforward``, ``bringup``) stay thin over the ``kubernetes`` client.

Nothing is imported here on purpose: ``scripts/bootstrap-tools`` imports
``tootcheck.kube.tools`` with the system Python, before the venv exists.
"""
