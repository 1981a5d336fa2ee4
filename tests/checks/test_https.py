"""The HTTPS checks against a real TLS server on 127.0.0.1, reached as https://kirchner.social.

Each test starts its own peer (a TLS server with a certificate from a CA made here,
plus the http:// redirector) and a Target whose pins send kirchner.social:443 and :80
there; SNI, Host and certificate checks all use kirchner.social. The healthy peer
passes every check; each declared fault is caused by breaking the peer for real.
"""

from __future__ import annotations

import datetime as dt
import ssl
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.peers.databases import free_port
from tests.peers.tls import (
    DOMAIN,
    Leaf,
    LocalCA,
    MastodonSite,
    RedirectSite,
    Reply,
    SitePeer,
    server_context,
)
from tootcheck.checks.https import (
    check_certificate,
    check_host_header,
    check_http_semantics,
    check_mastodon_endpoints,
    check_tls_versions,
    hsts_max_age,
)
from tootcheck.clients import tls
from tootcheck.clients.pinning import PinMap
from tootcheck.target import Account, Target
from tootcheck.testing import expect_fault, expect_ok

V = ssl.TLSVersion
USERNAME = "tootcheck"
DAY = dt.timedelta(days=1)


@dataclass
class PKI:
    ca: LocalCA  # plays cert-manager's CA ClusterIssuer
    other_ca: LocalCA  # some other issuer (Traefik's default cert, a wrong ClusterIssuer)
    leaf: Leaf  # healthy: kirchner.social, 90 days, from ca
    directory: Path
    extra: dict[str, Leaf] = field(default_factory=dict)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PKI:
    directory = tmp_path_factory.mktemp("https-pki")
    ca = LocalCA(directory, "kirchner-social test CA")
    return PKI(ca=ca, other_ca=LocalCA(directory, "Other CA"), leaf=ca.issue(), directory=directory)


Serve = Callable[..., Target]


@pytest.fixture(scope="module")
def contexts() -> dict[tuple[Path, V, V], ssl.SSLContext]:
    """Server contexts by (leaf, versions), made once for the module: loading the chain
    is most of a peer's start, and most tests serve the same leaf."""
    return {}


@pytest.fixture
def serve(pki: PKI, contexts: dict[tuple[Path, V, V], ssl.SSLContext]) -> Iterator[Serve]:
    """Start a peer pair and return a Target pinned to it; everything stops at teardown."""
    started: list[SitePeer] = []

    def start(
        site: MastodonSite | None = None,
        *,
        leaf: Leaf | None = None,
        minimum: V = V.TLSv1_2,
        maximum: V = V.MAXIMUM_SUPPORTED,
        redirect: RedirectSite | None = None,
        ca_file: Path | None = None,
    ) -> Target:
        leaf = leaf or pki.leaf
        key = (leaf.cert_file, minimum, maximum)
        if key not in contexts:
            contexts[key] = server_context(leaf, minimum=minimum, maximum=maximum)
        https = SitePeer(site or MastodonSite(), contexts[key])
        started.append(https)
        http = SitePeer(redirect or RedirectSite())
        started.append(http)
        return local_target(https.port, http.port, ca_file or pki.ca.ca_file)

    yield start
    for peer in started:
        peer.stop()


def local_target(https_port: int, http_port: int, ca_file: Path) -> Target:
    return Target(
        name="local://https-peer",
        domain=DOMAIN,
        ca_file=ca_file,
        pins=PinMap({(DOMAIN, 443): ("127.0.0.1", https_port), (DOMAIN, 80): ("127.0.0.1", http_port)}),
        accounts={"test": Account(username=USERNAME)},
    )


@pytest.fixture
def closed_target(pki: PKI) -> Target:
    """Pins to ports nothing listens on."""
    return local_target(free_port(), free_port(), pki.ca.ca_file)


# ------------------------------------------------------------------ https.certificate


def test_certificate_healthy(serve: Serve, pki: PKI) -> None:
    target = serve()
    result = expect_ok(check_certificate(target, issuer_pem=pki.ca.pem, secret_cert_pem=pki.leaf.pem))
    served = result.evidence["served_certificate"]
    assert served["san_dns"] == [DOMAIN]
    assert served["issuer"] == "CN=kirchner-social test CA"
    assert served["sha256"] == tls.CertInfo.from_der(pki.leaf.der).sha256
    assert result.evidence["secret_comparison"] == "identical"
    port = target.pins.resolve(DOMAIN, 443)[1]
    assert result.evidence["handshake"]["to"] == f"{DOMAIN}:443 (pinned to 127.0.0.1:{port})"
    assert 88.9 < result.metrics["cert_days_left"] <= 89


def test_certificate_issuer_may_be_one_of_a_bundle(serve: Serve, pki: PKI) -> None:
    expect_ok(check_certificate(serve(), issuer_pem=pki.other_ca.pem + pki.ca.pem))


def test_certificate_expired(serve: Serve, pki: PKI) -> None:
    leaf = pki.ca.issue(valid_from=-91 * DAY, valid_for=88 * DAY)
    result = expect_fault(check_certificate(serve(leaf=leaf)), "cert-expired",
                          mentions="expired 3.0 days ago")
    assert result.evidence["served_certificate"]["not_after"].startswith(
        leaf.cert.not_valid_after_utc.date().isoformat())


def test_certificate_not_yet_valid(serve: Serve, pki: PKI) -> None:
    leaf = pki.ca.issue(valid_from=2 * DAY)
    expect_fault(check_certificate(serve(leaf=leaf)), "cert-not-yet-valid", mentions="not valid until")


def test_certificate_expiring_soon(serve: Serve, pki: PKI) -> None:
    leaf = pki.ca.issue(valid_from=-85 * DAY, valid_for=90 * DAY)  # 5 days left
    result = check_certificate(serve(leaf=leaf), min_days=14)
    expect_fault(result, "cert-expiring-soon", mentions="below the 14-day threshold")
    assert result.fault_codes == ("cert-expiring-soon",)
    expect_ok(check_certificate(serve(leaf=leaf), min_days=3))  # the threshold is a parameter


def test_certificate_wrong_san(serve: Serve, pki: PKI) -> None:
    leaf = pki.ca.issue(["mastodon.example.org"])
    result = check_certificate(serve(leaf=leaf))
    expect_fault(result, "san-mismatch", mentions="does not cover kirchner.social")
    assert "mastodon.example.org" in result.summary


def test_certificate_wildcard_san_covers_subdomain_not_apex(serve: Serve, pki: PKI) -> None:
    leaf = pki.ca.issue(["*.kirchner.social"])
    expect_fault(check_certificate(serve(leaf=leaf)), "san-mismatch", mentions="*.kirchner.social")


def test_certificate_wrong_issuer_untrusted(serve: Serve, pki: PKI) -> None:
    """Served by another CA: the chain fails against the test CA, and the check says who issued it."""
    leaf = pki.other_ca.issue()
    result = check_certificate(serve(leaf=leaf), issuer_pem=pki.ca.pem)
    expect_fault(result, "wrong-issuer", mentions="CN=Other CA")
    assert result.evidence["served_chain_length"] == 1


def test_certificate_wrong_issuer_without_expected_issuer(serve: Serve, pki: PKI) -> None:
    result = check_certificate(serve(leaf=pki.other_ca.issue()))
    expect_fault(result, "wrong-issuer", mentions="unable to get local issuer certificate")


def test_certificate_wrong_issuer_tls13_only(serve: Serve, pki: PKI) -> None:
    """TLS 1.3 encrypts the certificate: the fault still names the verify failure."""
    target = serve(leaf=pki.other_ca.issue(), minimum=V.TLSv1_3)
    result = expect_fault(check_certificate(target), "wrong-issuer", mentions="verify error 20")
    assert "not readable" in result.evidence["served_certificate"]


def test_certificate_wrong_issuer_even_if_trusted(serve: Serve, pki: PKI) -> None:
    """A bundle that trusts both CAs verifies the chain; the issuer check still refuses it."""
    bundle = pki.directory / "both.pem"
    bundle.write_bytes(pki.ca.pem + pki.other_ca.pem)
    target = serve(leaf=pki.other_ca.issue(), ca_file=bundle)
    result = check_certificate(target, issuer_pem=pki.ca.pem)
    expect_fault(result, "wrong-issuer", mentions="not issued by the cert-manager CA")
    assert result.evidence["handshake"]["outcome"] == "ok"


def test_certificate_chain_untrusted_for_other_reasons(serve: Serve, pki: PKI) -> None:
    """Right CA, right name, in date, but a client-auth-only certificate: OpenSSL refuses it."""
    leaf = pki.ca.issue(server_auth=False)
    result = check_certificate(serve(leaf=leaf), issuer_pem=pki.ca.pem)
    expect_fault(result, "chain-untrusted", mentions="unsuitable certificate purpose")
    assert result.fault_codes == ("chain-untrusted",)


def test_certificate_differs_from_secret(serve: Serve, pki: PKI) -> None:
    """cert-manager renewed into the Secret, but the server still serves the old one."""
    renewed = pki.ca.issue()
    result = check_certificate(serve(), issuer_pem=pki.ca.pem, secret_cert_pem=renewed.pem + pki.ca.pem)
    expect_fault(result, "cert-differs-from-secret", mentions="differs from the Secret's tls.crt")
    assert result.evidence["secret_certificate"]["sha256"] == tls.CertInfo.from_der(renewed.der).sha256


def test_certificate_secret_unreadable(serve: Serve, pki: PKI) -> None:
    result = check_certificate(serve(), secret_cert_pem=b"not a certificate\n")
    expect_fault(result, "secret-cert-unreadable", mentions="tls.crt")


def test_certificate_unreachable(closed_target: Target) -> None:
    result = check_certificate(closed_target, timeout=2)
    expect_fault(result, "https-unreachable", mentions="pinned to 127.0.0.1")


# ----------------------------------------------------------------- https.tls_versions


def test_tls_versions_healthy(serve: Serve) -> None:
    result = expect_ok(check_tls_versions(serve()))
    versions = result.evidence["versions"]
    assert versions["TLS 1.2"].startswith("accepted") and versions["TLS 1.3"].startswith("accepted")
    assert versions["TLS 1.0"].startswith("refused") and versions["TLS 1.1"].startswith("refused")


def test_tls_versions_tls10_only_server(serve: Serve) -> None:
    result = check_tls_versions(serve(minimum=V.TLSv1, maximum=V.TLSv1))
    expect_fault(result, "tls10-accepted", mentions="accepts TLS 1.0")
    expect_fault(result, "tls12-refused", mentions="refuses TLS 1.2")
    expect_fault(result, "tls13-refused", mentions="refuses TLS 1.3")


def test_tls_versions_tls11_accepted(serve: Serve) -> None:
    result = check_tls_versions(serve(minimum=V.TLSv1_1))
    expect_fault(result, "tls11-accepted", mentions="accepts TLS 1.1")
    assert result.fault_codes == ("tls11-accepted",)


def test_tls_versions_tls12_refused(serve: Serve) -> None:
    result = check_tls_versions(serve(minimum=V.TLSv1_3))
    expect_fault(result, "tls12-refused", mentions="TLS 1.2")
    assert result.fault_codes == ("tls12-refused",)


def test_tls_versions_tls13_refused(serve: Serve) -> None:
    result = check_tls_versions(serve(maximum=V.TLSv1_2))
    expect_fault(result, "tls13-refused", mentions="TLS 1.3")
    assert result.fault_codes == ("tls13-refused",)


@pytest.mark.parametrize("ciphers", ["DEFAULT", "ECDHE-ECDSA-AES128-GCM-SHA256"],
                         ids=["openssl3-default-seclevel", "tls12-only-suite"])
def test_tls_versions_cannot_offer_legacy(serve: Serve, ciphers: str) -> None:
    """A client that cannot complete TLS 1.0 (OpenSSL 3 at its default security level refuses
    the server's SHA-1 signature; a TLS 1.2-only cipher list cannot even say hello) must say so,
    not report "the server refused TLS 1.0" (a silent pass). The server here takes TLS 1.0."""
    result = check_tls_versions(serve(minimum=V.TLSv1), legacy_cipher_string=ciphers)
    expect_fault(result, "tls-probe-unavailable", mentions="cannot offer TLS 1.0")
    assert "tls10-accepted" not in result.fault_codes  # we could not find out, and say so
    assert result.evidence["versions"]["TLS 1.0"].startswith("not probed")


def test_tls_versions_unreachable(closed_target: Target) -> None:
    expect_fault(check_tls_versions(closed_target, timeout=2), "https-unreachable",
                 mentions="pinned to 127.0.0.1")


def test_client_abort_after_hello_is_not_a_refusal(serve: Serve, pki: PKI) -> None:
    """OpenSSL 3 at security level 1 sends a TLS 1.0 hello, then aborts on the server's SHA-1
    signature: the handshake fails, yet the ServerHello shows the server chose TLS 1.0."""
    target = serve(minimum=V.TLSv1, maximum=V.TLSv1)
    attempt = tls.handshake_to(target.pins, DOMAIN, 443, target.ca_file, version=V.TLSv1,
                               cipher_string="DEFAULT")
    assert attempt.outcome is tls.Outcome.FAILED
    assert "LEGACY_SIGALG_DISALLOWED" in attempt.error
    assert tls.server_hello_version(attempt.received) == "TLSv1"


def test_checks_refuse_a_ca_file_without_a_certificate(pki: PKI, tmp_path: Path) -> None:
    from tootcheck.errors import BadInput

    empty = tmp_path / "empty.pem"
    empty.write_text("")
    with pytest.raises(BadInput, match="holds no PEM certificate"):
        check_certificate(local_target(free_port(), free_port(), empty))
    with pytest.raises(BadInput, match="holds no CA certificate"):
        check_tls_versions(local_target(free_port(), free_port(), pki.leaf.cert_file))


def test_can_offer_reports_this_machine() -> None:
    assert tls.can_offer(V.TLSv1_2, "DEFAULT")[0]
    ok, why = tls.can_offer(V.TLSv1, "ECDHE-ECDSA-AES128-GCM-SHA256")  # a TLS 1.2-only suite
    assert not ok and "no ciphers available" in why.lower()


# ---------------------------------------------------------------- https.http_semantics


def test_http_semantics_healthy(serve: Serve) -> None:
    result = expect_ok(check_http_semantics(serve()))
    assert result.evidence["redirect"] == "301 → https://kirchner.social/about"
    assert result.evidence["hsts"] == "max-age=63072000; includeSubDomains; preload"
    assert result.evidence["responses"][0] == "GET http://kirchner.social/about → 301 Moved Permanently"


def test_http_semantics_permanent_308_is_fine(serve: Serve) -> None:
    expect_ok(check_http_semantics(serve(redirect=RedirectSite(status=308))))


def test_http_semantics_missing_redirect(serve: Serve) -> None:
    result = check_http_semantics(serve(redirect=RedirectSite(status=None)))
    expect_fault(result, "no-redirect", mentions="answered 200")


def test_http_semantics_redirect_not_permanent(serve: Serve) -> None:
    result = check_http_semantics(serve(redirect=RedirectSite(status=302)))
    expect_fault(result, "redirect-not-permanent", mentions="302")


@pytest.mark.parametrize("location", ["http://{host}{path}", "https://{host}/", "https://evil.example{path}"])
def test_http_semantics_redirect_wrong_location(serve: Serve, location: str) -> None:
    result = check_http_semantics(serve(redirect=RedirectSite(location=location)))
    expect_fault(result, "redirect-wrong-location", mentions="expected 'https://kirchner.social/about'")


def test_http_semantics_missing_hsts(serve: Serve) -> None:
    result = check_http_semantics(serve(MastodonSite(hsts=None)))
    expect_fault(result, "hsts-missing", mentions="Strict-Transport-Security")


@pytest.mark.parametrize("value", ["max-age=300", "includeSubDomains"])
def test_http_semantics_weak_hsts(serve: Serve, value: str) -> None:
    expect_fault(check_http_semantics(serve(MastodonSite(hsts=value))), "hsts-weak", mentions=value)


@pytest.mark.parametrize("header", ["X-Frame-Options", "X-Content-Type-Options", "Referrer-Policy",
                                    "Content-Security-Policy"])
def test_http_semantics_security_header_missing(serve: Serve, header: str) -> None:
    result = check_http_semantics(serve(MastodonSite(headers={header: None})))
    expect_fault(result, "security-header-missing", mentions=header)


@pytest.mark.parametrize(("header", "value"), [
    ("X-Frame-Options", "SAMEORIGIN"),
    ("Referrer-Policy", "unsafe-url"),
    ("Content-Security-Policy", "default-src 'none'; frame-ancestors *"),
])
def test_http_semantics_security_header_weak(serve: Serve, header: str, value: str) -> None:
    result = check_http_semantics(serve(MastodonSite(headers={header: value})))
    expect_fault(result, "security-header-weak", mentions=header)


def test_http_semantics_http_unreachable(serve: Serve, pki: PKI) -> None:
    healthy = serve()
    target = local_target(healthy.pins.resolve(DOMAIN, 443)[1], free_port(), pki.ca.ca_file)
    expect_fault(check_http_semantics(target), "http-unreachable", mentions="http://kirchner.social/about")


def test_http_semantics_https_unreachable(closed_target: Target) -> None:
    expect_fault(check_http_semantics(closed_target, timeout=2), "https-unreachable",
                 mentions="pinned to 127.0.0.1")


def test_hsts_max_age_parsing() -> None:
    assert hsts_max_age("max-age=63072000; includeSubDomains; preload") == 63072000
    assert hsts_max_age("MAX-AGE = 10") == 10
    assert hsts_max_age("max-age=abc") is None
    assert hsts_max_age("preload; max-age=5") == 5


# ------------------------------------------------------------ https.mastodon_endpoints


def endpoints(target: Target) -> object:
    return check_mastodon_endpoints(target, username=target.account("test").username)


def test_endpoints_healthy(serve: Serve) -> None:
    site = MastodonSite()
    result = expect_ok(endpoints(serve(site)))
    assert result.evidence["instance"]["domain"] == DOMAIN
    assert result.evidence["nodeinfo_software"] == {"name": "mastodon", "version": "4.7.2"}
    assert (DOMAIN, "/.well-known/webfinger") in site.requests_seen  # Host kirchner.social
    assert "GET https://kirchner.social/health → 200 OK" in result.evidence["responses"]


@pytest.mark.parametrize("reply", [Reply(500, body=b"boom"), Reply(200, body=b"NOT OK")])
def test_endpoints_health_not_ok(serve: Serve, reply: Reply) -> None:
    result = endpoints(serve(MastodonSite(replies={"/health": reply})))
    expect_fault(result, "health-not-ok", mentions="/health answered")


def test_endpoints_instance_not_ok(serve: Serve) -> None:
    result = endpoints(serve(MastodonSite(replies={"/api/v2/instance": Reply(503)})))
    expect_fault(result, "instance-not-ok", mentions="503")


def test_endpoints_instance_domain_wrong(serve: Serve) -> None:
    result = endpoints(serve(MastodonSite(instance_domain="localhost:3000")))
    expect_fault(result, "instance-domain-wrong", mentions="'localhost:3000'")


def test_endpoints_webfinger_not_found(serve: Serve) -> None:
    result = endpoints(serve(MastodonSite(username="someone-else")))
    expect_fault(result, "webfinger-not-found", mentions="acct:tootcheck@kirchner.social answered 404")


def test_endpoints_webfinger_without_self_link(serve: Serve) -> None:
    jrd = (b'{"subject": "acct:tootcheck@kirchner.social", "links": [{"rel": "self", '
           b'"type": "text/html", "href": "https://kirchner.social/@tootcheck"}]}')
    result = endpoints(serve(MastodonSite(replies={"/.well-known/webfinger": Reply(200, {}, jrd)})))
    expect_fault(result, "webfinger-wrong", mentions="no rel=self application/activity+json")


def test_endpoints_webfinger_wrong_subject(serve: Serve) -> None:
    jrd = b'{"subject": "acct:tootcheck@localhost", "links": []}'
    result = endpoints(serve(MastodonSite(replies={"/.well-known/webfinger": Reply(200, {}, jrd)})))
    expect_fault(result, "webfinger-wrong", mentions="acct:tootcheck@localhost")


def test_endpoints_host_meta_missing(serve: Serve) -> None:
    result = endpoints(serve(MastodonSite(replies={"/.well-known/host-meta": Reply(404)})))
    expect_fault(result, "host-meta-missing", mentions="404")


def test_endpoints_host_meta_wrong_template(serve: Serve) -> None:
    xrd = (b'<?xml version="1.0"?><XRD xmlns="http://docs.oasis-open.org/ns/xri/xrd-1.0">'
           b'<Link rel="lrdd" template="http://localhost:3000/.well-known/webfinger?resource={uri}"/></XRD>')
    result = endpoints(serve(MastodonSite(replies={"/.well-known/host-meta": Reply(200, {}, xrd)})))
    expect_fault(result, "host-meta-wrong", mentions="localhost:3000")


@pytest.mark.parametrize("path", ["/.well-known/nodeinfo", "/nodeinfo/2.0"])
def test_endpoints_nodeinfo_missing(serve: Serve, path: str) -> None:
    result = endpoints(serve(MastodonSite(replies={path: Reply(404)})))
    expect_fault(result, "nodeinfo-missing", mentions=path)


def test_endpoints_nodeinfo_wrong_software(serve: Serve) -> None:
    doc = b'{"version": "2.0", "software": {"name": "pleroma", "version": "2.6"}}'
    result = endpoints(serve(MastodonSite(replies={"/nodeinfo/2.0": Reply(200, {}, doc)})))
    expect_fault(result, "nodeinfo-wrong", mentions="'pleroma'")


def test_endpoints_nodeinfo_off_domain_link(serve: Serve) -> None:
    doc = b'{"links": [{"rel": "http://nodeinfo.diaspora.software/ns/schema/2.0", "href": "http://localhost:3000/nodeinfo/2.0"}]}'
    result = endpoints(serve(MastodonSite(replies={"/.well-known/nodeinfo": Reply(200, {}, doc)})))
    expect_fault(result, "nodeinfo-wrong", mentions="localhost:3000")


def test_endpoints_unreachable(closed_target: Target) -> None:
    result = check_mastodon_endpoints(closed_target, username=USERNAME, timeout=2)
    expect_fault(result, "https-unreachable", mentions="https://kirchner.social/health")


# ------------------------------------------------------------------- https.host_header


@pytest.mark.parametrize("status", [403, 404], ids=["mastodon-403", "traefik-404"])
def test_host_header_refused(serve: Serve, status: int) -> None:
    site = MastodonSite(foreign_host_status=status)
    result = expect_ok(check_host_header(serve(site)))
    assert ("foreign-host.tootcheck.invalid", "/api/v2/instance") in site.requests_seen
    assert f"→ {status}" in result.evidence["responses"][1]


def test_host_header_foreign_host_accepted(serve: Serve) -> None:
    result = check_host_header(serve(MastodonSite(foreign_host_status=None)))
    expect_fault(result, "foreign-host-accepted", mentions="answered 200")


def test_host_header_foreign_host_unexpected(serve: Serve) -> None:
    result = check_host_header(serve(MastodonSite(foreign_host_status=502)))
    expect_fault(result, "foreign-host-unexpected", mentions="502")


def test_host_header_inconclusive_when_everything_is_refused(serve: Serve) -> None:
    result = check_host_header(serve(MastodonSite(replies={"/api/v2/instance": Reply(404)})))
    expect_fault(result, "host-check-inconclusive", mentions="prove nothing")


def test_host_header_unreachable(closed_target: Target) -> None:
    expect_fault(check_host_header(closed_target, timeout=2), "https-unreachable",
                 mentions="pinned to 127.0.0.1")


# ----------------------------------------------------------------- the TLS client itself


def test_served_chain_is_read_from_a_tls12_handshake(serve: Serve, pki: PKI) -> None:
    leaf = pki.other_ca.issue()
    target = serve(leaf=leaf)
    chain, attempt = tls.served_chain(target.pins, DOMAIN, 443, target.ca_file)
    assert attempt.outcome is tls.Outcome.UNVERIFIED  # still refused: read, never trusted
    assert chain == (leaf.der,)


def test_parse_server_certificates_handles_split_records() -> None:
    der = b"\x30\x03\x02\x01\x05"
    body = len(der).to_bytes(3, "big") + der
    message = bytes([11]) + (len(body) + 3).to_bytes(3, "big") + (len(body)).to_bytes(3, "big") + body
    hello = bytes([2]) + (38).to_bytes(3, "big") + b"\x03\x01" + bytes(36)
    stream = hello + message
    records = b"".join(bytes([22, 3, 3]) + len(part).to_bytes(2, "big") + part
                       for part in (stream[:10], stream[10:]))
    assert tls.parse_server_certificates(records) == (der,)
    assert tls.server_hello_version(records) == "TLSv1"
    assert tls.parse_server_certificates(records[:-2]) == ()  # truncated: nothing, no crash


# ------------------------------------------- HTTP checks refuse an untrusted certificate


@pytest.mark.parametrize("check", [
    check_http_semantics,
    lambda target: endpoints(target),
    check_host_header,
], ids=["http_semantics", "mastodon_endpoints", "host_header"])
def test_http_checks_refuse_an_untrusted_certificate(
    serve: Serve, pki: PKI, check: Callable[[Target], object]
) -> None:
    site = MastodonSite()
    result = check(serve(site, leaf=pki.other_ca.issue()))
    expect_fault(result, "https-untrusted", mentions="unable to get local issuer certificate")
    assert site.requests_seen == [], "a request got through an untrusted handshake"


# ------------------------------------------- the suite's Secret reader, on a fake API server

SECRET_PATH = "/api/v1/namespaces/mastodon/secrets/kirchner-social-tls"


def kubeconfig_for(directory: Path, server: str) -> Path:
    path = directory / "kubeconfig"
    path.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: fake\n"
        f"clusters: [{{name: fake, cluster: {{server: '{server}'}}}}]\n"
        "users: [{name: fake, user: {token: fake-token-for-a-local-peer}}]\n"
        "contexts: [{name: fake, context: {cluster: fake, user: fake}}]\n")
    return path


def test_read_tls_secret_returns_the_certificate_parts(httpserver, pki: PKI, tmp_path: Path) -> None:
    import base64

    from suites.https.secret import read_tls_secret

    def b64(data: bytes) -> str:
        return base64.b64encode(data).decode()

    httpserver.expect_request(SECRET_PATH).respond_with_json({
        "apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
        "metadata": {"name": "kirchner-social-tls", "namespace": "mastodon"},
        "data": {"tls.crt": b64(pki.leaf.pem + pki.ca.pem), "tls.key": b64(b"not read"),
                 "ca.crt": b64(pki.ca.pem)}})
    secret = read_tls_secret(kubeconfig_for(tmp_path, httpserver.url_for("/").rstrip("/")),
                             None, "mastodon")
    assert secret.ca_crt == pki.ca.pem
    assert secret.tls_crt.startswith(pki.leaf.pem)
    assert not hasattr(secret, "tls_key")


@pytest.mark.parametrize(("reply", "message"), [
    ((404, {"kind": "Status", "code": 404, "reason": "NotFound"}), "HTTP 404"),
    ((200, {"kind": "Secret", "metadata": {"name": "x"}, "data": {"tls.key": "S0VZ"}}), "no tls.crt"),
])
def test_read_tls_secret_fails_in_one_line(httpserver, tmp_path: Path, reply: tuple, message: str) -> None:
    from suites.https.secret import SecretUnreadable, read_tls_secret

    httpserver.expect_request(SECRET_PATH).respond_with_json(reply[1], status=reply[0])
    with pytest.raises(SecretUnreadable, match=message) as caught:
        read_tls_secret(kubeconfig_for(tmp_path, httpserver.url_for("/").rstrip("/")), None, "mastodon")
    assert "\n" not in str(caught.value)


def test_read_tls_secret_unreachable_api_server(tmp_path: Path) -> None:
    from suites.https.secret import SecretUnreadable, read_tls_secret

    config = kubeconfig_for(tmp_path, f"http://127.0.0.1:{free_port()}")
    with pytest.raises(SecretUnreadable, match="cannot read Secret mastodon/kirchner-social-tls"):
        read_tls_secret(config, None, "mastodon", timeout=2)
