"""Every rule can fail: each fail case fires exactly its rule on the expected subject,
and its pass twin (which the rule must match, so it is not vacuous) does not."""

from __future__ import annotations

import pytest

from tests.policy.casefiles import CASE_CONFIG, Case, all_cases, run_case
from tootcheck.policy.registry import load_rules

REGISTRY = load_rules()
CASES = all_cases()
# literal credentials written into some fail cases: no message may echo them
PLANTED = ("hunter2", "postgresql://mastodon:pw@", "not-a-real-secret", "x" * 64)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_case(case: Case) -> None:
    assert case.rule_id in REGISTRY, f"cases for unknown rule {case.rule_id}"
    rule = REGISTRY.get(case.rule_id)
    run = run_case(rule, case.path)
    outcome = run.outcomes[0]
    assert outcome.matched, f"{case.id}: the rule matched no object, so the case proves nothing"
    findings = run.findings
    if not case.failing:
        assert not findings, f"{case.id}: the pass twin fired: " + "; ".join(
            f.text() for f in findings)
        return
    expected = case.expected()
    assert expected is not None, f"{case.id}: no '# expect: Kind/ns/name[:container]' header"
    obj, container = expected
    hits = [f for f in findings if f.object_id == obj and (container is None
                                                          or f.container == container)]
    assert hits, (f"{case.id}: {case.rule_id} did not fire on {obj}"
                  f"{':' + container if container else ''}; it reported: "
                  + ("; ".join(f"{f.subject_id}: {f.message}" for f in findings) or "nothing"))
    for f in findings:
        assert f.rule.id == case.rule_id
        assert f.message and "\n" not in f.message
        assert not any(p in f.text() for p in PLANTED), f"{case.id}: a message echoes a value"


def test_private_addresses_allowed_only_in_overlay_sources() -> None:
    """MSTDN-CFG-007 flags the reference but not a source listed under overlay_sources."""
    from tests.policy.casefiles import CASES_DIR
    from tootcheck.policy.bundle import Bundle, parse_stream
    from tootcheck.policy.engine import evaluate

    text = (CASES_DIR / "MSTDN-CFG-007" / "fail-set-in-reference.yaml").read_text()
    rule = REGISTRY.get("MSTDN-CFG-007")
    for source, fires in (("manifests/rendered/mastodon.yaml", True),
                          ("manifests/rendered/overlay-kind.yaml", False),
                          ("manifests/overlays/kind", False)):
        run = evaluate([Bundle(parse_stream(text, source))], CASE_CONFIG, rules=[rule])
        assert bool(run.findings) is fires, source


def test_object_defined_twice_is_a_schema_finding() -> None:
    from tootcheck.policy.bundle import Bundle, parse_stream
    from tootcheck.policy.engine import evaluate

    doc = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c, namespace: mastodon}\n"
    run = evaluate([Bundle(parse_stream(doc + "---\n" + doc, "twice.yaml"))], CASE_CONFIG,
                   rules=[REGISTRY.get("MSTDN-WL-010")])
    assert [f.message for f in run.findings] == [
        "defined twice: twice.yaml document 2 repeats twice.yaml document 1"]


def test_schema_messages_never_echo_values() -> None:
    """A mistyped literal (a number where the API wants a string) is a schema finding
    that names the field, never the value: it may be a credential."""
    from tootcheck.policy.bundle import Bundle, parse_stream
    from tootcheck.policy.engine import evaluate

    doc = """\
apiVersion: v1
kind: ConfigMap
metadata: {name: c, namespace: mastodon}
data: {OTP_SECRET: 918273645546372819}
---
apiVersion: v1
kind: Pod
metadata: {name: p, namespace: mastodon}
spec:
  containers:
  - name: web
    image: ghcr.io/mastodon/mastodon:v4.5.0
    env: [{name: DB_PASS, value: 564738291029384756}]
"""
    run = evaluate([Bundle(parse_stream(doc, "typed.yaml"))], CASE_CONFIG,
                   rules=[REGISTRY.get("MSTDN-WL-010")])
    messages = sorted(f.message for f in run.findings)
    assert messages == [
        "data.OTP_SECRET: value is not of type 'string', 'null'",
        "spec.containers.0.env.0.value: value is not of type 'string', 'null'"]
    assert not any("918273645546372819" in f.text() or "564738291029384756" in f.text()
                   for f in run.findings)


@pytest.mark.parametrize(("name", "secret"), [
    ("REPLICA_DB_PASS", True), ("SAML_PRIVATE_KEY", True), ("SWIFT_TEMP_URL_KEY", True),
    ("ES_PASS", True), ("LDAP_PASSWORD", True), ("ACTIVE_RECORD_ENCRYPTION_PRIMARY_KEY", True),
    # URLs and flags whose names contain "token"/"secret" (Mastodon's own settings)
    ("OIDC_TOKEN_ENDPOINT", False), ("OIDC_SEND_SCOPE_TO_TOKEN_ENDPOINT", False),
    ("CACHE_BUSTER_SECRET_HEADER", False), ("VAPID_PUBLIC_KEY", False), ("DB_HOST", False),
])
def test_secret_setting_names(name: str, secret: bool) -> None:
    from tootcheck.policy.rules.secret import is_secret_name

    assert is_secret_name(name) is secret
