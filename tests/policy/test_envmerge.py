"""The merged environment: envFrom order, env[] precedence, Secret keys without values,
external Secrets and ConfigMaps, and unresolved references."""

from __future__ import annotations

from dataclasses import replace

from tootcheck.policy.bundle import Bundle, parse_stream
from tootcheck.policy.config import MASTODON_SECRET_KEYS, PolicyConfig
from tootcheck.policy.envmerge import merge_env
from tootcheck.policy.k8s import containers

DOCS = """\
apiVersion: v1
kind: ConfigMap
metadata: {name: env, namespace: mastodon}
data: {LOCAL_DOMAIN: kirchner.social, PORT: "3000", A: from-cm}
---
apiVersion: v1
kind: Secret
metadata: {name: rendered, namespace: mastodon}
stringData: {A: secret-value-never-read, B: other-secret-value}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: m, namespace: mastodon}
spec:
  template:
    spec:
      volumes:
      - name: ca
        configMap: {name: tootcheck-ca}
      containers:
      - name: web
        image: ghcr.io/mastodon/mastodon:v4.7.2
        envFrom:
        - configMapRef: {name: env}
        - secretRef: {name: rendered}
        - secretRef: {name: mastodon-secrets}
        - configMapRef: {name: absent}
        env:
        - {name: PORT, value: "3001"}
        - name: X
          valueFrom: {secretKeyRef: {name: mastodon-secrets, key: NOT_DECLARED}}
        - name: POD
          valueFrom: {fieldRef: {fieldPath: metadata.name}}
"""


DECLARED = PolicyConfig(external_secrets={"mastodon/mastodon-secrets": MASTODON_SECRET_KEYS})


def merged(config: PolicyConfig | None = None, mode: str = "offline"):
    bundle = Bundle(parse_stream(DOCS, "d.yaml"), mode=mode)
    dep = next(o for o in bundle if o.kind == "Deployment")
    return merge_env(containers(dep)[0], bundle, config or DECLARED)


def test_precedence_and_sources() -> None:
    env = merged()
    assert env.value("LOCAL_DOMAIN") == "kirchner.social"
    assert env.get("PORT").source == "literal" and env.value("PORT") == "3001"
    a = env.get("A")
    assert a.source == "secret" and a.ref == "rendered" and a.value is None
    assert env.get("SECRET_KEY_BASE").from_secret  # declared key of the external Secret
    assert env.get("POD").source == "field"
    assert ("Secret", "mastodon-secrets") in env.env_from


def test_secret_values_are_never_read() -> None:
    env = merged()
    assert all(v.value is None for v in env.definitions if v.source == "secret")
    assert "secret-value-never-read" not in repr(env)


def test_unresolved_references() -> None:
    why = {(u.kind, u.name, u.key): u.why for u in merged().unresolved}
    assert why[("ConfigMap", "absent", None)].startswith("not rendered")
    assert "declares no key NOT_DECLARED" in why[("Secret", "mastodon-secrets", "NOT_DECLARED")]


def test_external_configmap_and_live_mode() -> None:
    config = replace(DECLARED, external_configmaps=("mastodon/absent",))
    assert not [u for u in merged(config).unresolved if u.name == "absent"]
    live = {(u.kind, u.name): u.why for u in merged(mode="live").unresolved}
    assert live[("Secret", "mastodon-secrets")] == "not found in the cluster"


def test_unrendered_undeclared_secret_is_assumed_offline_only() -> None:
    """With no external_secrets (the neutral default) the unrendered Secret provides
    Mastodon's secret settings not defined before it, and the keys read by name; the
    assumption is recorded. Live it must exist."""
    env = merged(PolicyConfig())
    assert not [u for u in env.unresolved if u.kind == "Secret"]
    assert env.get("SECRET_KEY_BASE").from_secret and env.get("X").from_secret
    assumed = {(a.name, a.keys) for a in env.assumed}
    assert ("mastodon-secrets", ("NOT_DECLARED",)) in assumed
    envfrom = next(a.keys for a in env.assumed if a.keys != ("NOT_DECLARED",))
    assert "ACTIVE_RECORD_ENCRYPTION_PRIMARY_KEY" in envfrom and "LOCAL_DOMAIN" not in envfrom
    live = {(u.kind, u.name) for u in merged(PolicyConfig(), mode="live").unresolved}
    assert ("Secret", "mastodon-secrets") in live


def test_assumed_secret_never_shadows_a_key_defined_elsewhere() -> None:
    """An unrendered Secret listed before the ConfigMap is not assumed to hold the keys
    the ConfigMap defines, so no duplicate (MSTDN-WL-006) is invented."""
    both = "        - secretRef: {name: rendered}\n        - secretRef: {name: mastodon-secrets}\n"
    docs = DOCS.replace(both, "        - secretRef: {name: rendered}\n")
    docs = docs.replace("        envFrom:\n        - configMapRef: {name: env}\n",
                        "        envFrom:\n        - secretRef: {name: mastodon-secrets}\n"
                        "        - configMapRef: {name: env}\n")
    docs = docs.replace("data: {LOCAL_DOMAIN: kirchner.social,",
                        "data: {DB_PASS: in-the-cm, LOCAL_DOMAIN: kirchner.social,")
    bundle = Bundle(parse_stream(docs, "d.yaml"))
    dep = next(o for o in bundle if o.kind == "Deployment")
    env = merge_env(containers(dep)[0], bundle, PolicyConfig())
    assumed = next(a for a in env.assumed if a.keys != ("NOT_DECLARED",))
    assert "DB_PASS" not in assumed.keys and "SECRET_KEY_BASE" in assumed.keys
    assert [d.source for d in env.definitions if d.name == "DB_PASS"] == ["configmap"]
