"""In-cluster peers of the kind environment, and the names the suite reaches them by.

The ActivityPub peer and Web Push receiver is one standard-library program that runs in
a stock Python image. Its single source is ``manifests/infra/fediverse-peer/fediverse_peer.py``
(kustomize mounts it from a generated ConfigMap and cannot read outside its directory),
shipped as package data (:mod:`tootcheck.resources`); this package loads that file as
``tootcheck.peers.fediverse_peer`` for the suite's tests. The clients do not import it:
``tootcheck.clients.httpsig`` carries the same protocol helpers, and
``tests/checks/test_httpsig.py`` shows the two agree. The constants below
must agree with ``manifests/infra/mailpit/`` and ``manifests/infra/fediverse-peer/``;
``tests/checks/test_federation.py`` and ``tests/checks/test_mail.py`` check that.
"""

from __future__ import annotations

import importlib.util
import sys

from tootcheck import resources

PEER_PROGRAM = resources.peer_program()


def _load_peer_program() -> None:
    name = f"{__name__}.fediverse_peer"
    spec = importlib.util.spec_from_file_location(name, PEER_PROGRAM)
    if spec is None or spec.loader is None:  # pragma: no cover - the file is in the repository
        raise ImportError(f"cannot load the fediverse peer from {PEER_PROGRAM}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)


_load_peer_program()

# Mailpit: the SMTP sink Mastodon's mailers queue delivers to in kind.
MAILPIT_NAMESPACE = "mailpit"
MAILPIT_SELECTOR = "app.kubernetes.io/name=mailpit"
MAILPIT_HOST = "mailpit.mailpit.svc.cluster.local"
MAILPIT_SMTP_PORT = 1025
MAILPIT_API_PORT = 8025

# The fediverse peer: Mastodon reaches it at https://PEER_HOST (Service port 443, the
# peer terminates TLS itself with a cert-manager certificate); the suite reads its
# recordings on the admin port through a port-forward.
PEER_NAMESPACE = "fediverse-peer"
PEER_SELECTOR = "app.kubernetes.io/name=fediverse-peer"
PEER_HOST = "fedi.fediverse-peer.svc.cluster.local"
PEER_URL = f"https://{PEER_HOST}"
PEER_PUBLIC_PORT = 8443
PEER_ADMIN_PORT = 8080
# A fixed ClusterIP in the statically allocated low band of kind's default service
# CIDR (10.96.0.0/16), so Mastodon's ALLOWED_PRIVATE_ADDRESSES can name one address.
PEER_CLUSTER_IP = "10.96.0.200"
