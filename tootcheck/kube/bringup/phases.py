"""Which function runs each phase of the plan, which tells it is done, and what a skip still loads.

The engine reads this table when it runs; tests replace entries to stub phases.
"""

from __future__ import annotations

from tootcheck.kube.bringup.app import (
    PEER_WATCHES,
    done_accounts,
    done_mastodon,
    done_mastodon_secrets,
    run_accounts,
    run_mastodon,
    run_mastodon_secrets,
    run_peers,
)
from tootcheck.kube.bringup.certificates import (
    CERT_MANAGER_WATCHES,
    done_issuers,
    run_cert_manager,
    run_issuers,
    webhook_endpoints,
)
from tootcheck.kube.bringup.cluster import (
    after_skip_images,
    done_images,
    done_nodes,
    run_cluster,
    run_images,
    run_nodes,
    run_render,
    run_secrets,
)
from tootcheck.kube.bringup.context import Impl, done_when
from tootcheck.kube.bringup.identity import (
    AUTHENTIK_WATCHES,
    done_authentik_secrets,
    oidc_discovery,
    run_authentik,
    run_authentik_secrets,
)
from tootcheck.kube.bringup.ingress import COREDNS_WATCHES, TRAEFIK_WATCHES, run_coredns, run_traefik
from tootcheck.kube.bringup.storage import STORAGE_WATCHES, run_storage

IMPLS: dict[str, Impl] = {
    "cluster": Impl(run_cluster),
    "secrets": Impl(run_secrets),
    "render": Impl(run_render),
    "images": Impl(run_images, done_images, after_skip_images),
    "app-images": Impl(run_images, done_images, after_skip_images),
    "nodes": Impl(run_nodes, done_nodes),
    "coredns": Impl(run_coredns, done_when(COREDNS_WATCHES)),
    "cert-manager": Impl(run_cert_manager, done_when(CERT_MANAGER_WATCHES, webhook_endpoints)),
    "issuers": Impl(run_issuers, done_issuers),
    "storage": Impl(run_storage, done_when(STORAGE_WATCHES)),
    "traefik": Impl(run_traefik, done_when(TRAEFIK_WATCHES)),
    "authentik-secrets": Impl(run_authentik_secrets, done_authentik_secrets),
    "authentik": Impl(run_authentik, done_when(AUTHENTIK_WATCHES, lambda c: oidc_discovery(c, False))),
    "mastodon-secrets": Impl(run_mastodon_secrets, done_mastodon_secrets),
    "mastodon": Impl(run_mastodon, done_mastodon),
    "accounts": Impl(run_accounts, done_accounts),
    "peers": Impl(run_peers, done_when(PEER_WATCHES)),
}

