"""Policy rules, one module per area (the module name is the ID's area):

wl (workload hygiene), sec (pod security), secret (secrets handling), tls (ingress
TLS and Traefik), ing (ingress routing), cfg (Mastodon configuration), pv
(persistence on NFS), db (PostgreSQL and Redis), upg (upgrade safety).
``tootcheck.policy.registry.RULE_MODULES`` lists them in catalogue order.
"""
