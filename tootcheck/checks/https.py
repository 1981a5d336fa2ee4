"""HTTPS live checks: the served certificate, TLS versions, HTTP semantics, Mastodon's endpoints
and the Host check, all reached through ``target.pins`` with SNI and Host = the real domain.

What Mastodon itself sets, from Mastodon source (~4.5.0-alpha; see docs/https.md for the
4.7 caveats):

* ``config/environments/production.rb``: ``force_ssl = true`` with
  ``ssl_options = {hsts: {preload: true}}`` (Rails ``ActionDispatch::SSL``: HSTS
  ``max-age=63072000; includeSubDomains; preload`` on HTTPS responses), and
  ``default_headers`` X-Frame-Options DENY, X-Content-Type-Options nosniff,
  X-XSS-Protection 0, Referrer-Policy same-origin.
* ``config/initializers/content_security_policy.rb`` and
  ``app/controllers/concerns/api/content_security_policy.rb``: CSP with
  ``frame-ancestors 'none'``; ``WebAppControllerConcern`` may relax Referrer-Policy to
  strict-origin-when-cross-origin.
* ``config/initializers/1_hosts.rb``: ``config.hosts`` = LOCAL_DOMAIN/WEB_DOMAIN, so
  Rails' HostAuthorization answers any other Host with 403 (``/health`` excluded).

Every check is read-only and never sends credentials; evidence holds certificate facts and
status lines only.

One module of about 670 lines on purpose: the five HTTPS checks share the pinned
session, the expectations above and their judges; split, each part would import the rest.
"""

from __future__ import annotations

import datetime as dt
import re
import ssl
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests
from cryptography import x509
from urllib3.exceptions import MaxRetryError

from tootcheck.checks.registry import live_check
from tootcheck.clients import tls
from tootcheck.model import CheckResult, CheckRun
from tootcheck.target import Target

REQUEST_TIMEOUT_S = 15.0
CERT_MIN_DAYS = 14.0  # cert-manager renews at 2/3 of a 90-day cert: 30 days left
HSTS_MIN_MAX_AGE = 31_536_000  # one year (hstspreload.org minimum); Mastodon sends two
FOREIGN_HOST = "foreign-host.tootcheck.invalid"
HOST_REFUSED_STATUSES = frozenset({400, 403, 404, 421})  # Rails 403, Traefik 404

# ------------------------------------------------------------------- certificate

_VERIFY_FAULTS = {
    9: "cert-not-yet-valid",  # X509_V_ERR_CERT_NOT_YET_VALID
    10: "cert-expired",  # X509_V_ERR_CERT_HAS_EXPIRED
    62: "san-mismatch",  # X509_V_ERR_HOSTNAME_MISMATCH
    2: "wrong-issuer",  # X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT
    7: "wrong-issuer",  # X509_V_ERR_CERT_SIGNATURE_FAILURE
    18: "wrong-issuer",  # X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT
    19: "wrong-issuer",  # X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN
    20: "wrong-issuer",  # X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY
    21: "wrong-issuer",  # X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE
}


def has_san_for(info: tls.CertInfo, domain: str) -> bool:
    """Whether the SAN DNS names cover ``domain`` (RFC 6125: one left-most wildcard label).

    >>> info = tls.CertInfo(b"", "", "", ("*.kirchner.social",), (), None, None, "", "")
    >>> has_san_for(info, "auth.kirchner.social"), has_san_for(info, "kirchner.social")
    (True, False)
    """
    domain = domain.rstrip(".").lower()
    for name in (n.rstrip(".").lower() for n in info.dns_names):
        if name == domain:
            return True
        if name.startswith("*.") and "." in domain and domain.split(".", 1)[1] == name[2:]:
            return True
    return False


def issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> str | None:
    """None when ``issuer`` signed ``cert`` directly, else why not."""
    if cert.issuer != issuer.subject:
        return f"issuer is '{cert.issuer.rfc4514_string()}'"
    try:
        cert.verify_directly_issued_by(issuer)
    except Exception as exc:  # InvalidSignature, ValueError, TypeError
        return f"names the issuer but its signature does not verify ({type(exc).__name__})"
    return None


@live_check(
    "https.certificate",
    faults={
        "https-unreachable": "no TLS handshake with the HTTPS port at all",
        "chain-untrusted": "the served chain does not verify against the test CA (other reasons)",
        "wrong-issuer": "not issued by the cert-manager CA (the only CA trusted)",
        "cert-expired": "the served certificate has expired",
        "cert-not-yet-valid": "the served certificate is not valid yet",
        "cert-expiring-soon": "remaining validity below the threshold",
        "san-mismatch": "the SAN does not cover the domain",
        "cert-differs-from-secret": "the served certificate is not the one in the cert-manager Secret",
        "secret-cert-unreadable": "the Secret's tls.crt holds no certificate",
    },
)
def check_certificate(
    target: Target,
    *,
    issuer_pem: bytes | None = None,
    secret_cert_pem: bytes | None = None,
    min_days: float = CERT_MIN_DAYS,
    timeout: float = tls.HANDSHAKE_TIMEOUT_S,
) -> CheckResult:
    """The served certificate verifies against the test CA only, names the domain, comes
    from the cert-manager CA, has ``min_days`` left, and equals the Secret's."""
    tls.require_ca(target.ca_file)
    run = CheckRun("https.certificate", target.name)
    run.evidence["trust"] = str(target.ca_file) if target.ca_file else "system store"
    hs = tls.handshake_to(target.pins, target.domain, 443, target.ca_file, timeout=timeout)
    run.evidence["handshake"] = _handshake_evidence(hs)
    if hs.outcome in (tls.Outcome.UNREACHABLE, tls.Outcome.FAILED, tls.Outcome.CLIENT_UNSUPPORTED):
        run.fail("https-unreachable", f"no TLS handshake with {hs.where}: {hs.error}")
        return run.result()
    run.observe()

    leaf_der = hs.leaf_der
    if hs.outcome is tls.Outcome.UNVERIFIED:  # read what was served, for the diagnosis only
        chain, _ = tls.served_chain(target.pins, target.domain, 443, target.ca_file, timeout=timeout)
        run.evidence["served_chain_length"] = len(chain)
        leaf_der = chain[0] if chain else None
        if leaf_der is None:
            run.evidence["served_certificate"] = "not readable (no TLS 1.2 handshake to read it from)"
    faults: dict[str, str] = {}
    info = tls.CertInfo.from_der(leaf_der) if leaf_der else None
    if info is not None:
        run.evidence["served_certificate"] = info.evidence()
        faults.update(_judge_leaf(run, info, target.domain, issuer_pem, min_days))
    if hs.outcome is tls.Outcome.UNVERIFIED:
        code = _VERIFY_FAULTS.get(hs.verify_code or 0, "chain-untrusted")
        if code not in faults:
            served = f" (served certificate issued by '{info.issuer}')" if (
                info is not None and code == "wrong-issuer") else ""
            faults[code] = (f"served chain does not verify against the test CA: {hs.verify_message}"
                            f"{served} [OpenSSL verify error {hs.verify_code}]")
    if secret_cert_pem is not None:
        faults.update(_compare_secret(run, info, secret_cert_pem))
    for code, message in faults.items():
        run.fail(code, message)
    return run.result()


def _judge_leaf(run: CheckRun, info: tls.CertInfo, domain: str, issuer_pem: bytes | None,
                min_days: float) -> dict[str, str]:
    faults: dict[str, str] = {}
    now = dt.datetime.now(dt.UTC)
    days_left = (info.not_after - now).total_seconds() / 86400
    run.metrics["cert_days_left"] = round(days_left, 2)
    run.observe()
    if info.not_after <= now:
        faults["cert-expired"] = (f"served certificate expired {-days_left:.1f} days ago "
                                  f"(notAfter {info.not_after:%Y-%m-%d %H:%M}Z)")
    elif days_left < min_days:
        faults["cert-expiring-soon"] = (f"served certificate expires in {days_left:.1f} days "
                                        f"(notAfter {info.not_after:%Y-%m-%d %H:%M}Z), below the "
                                        f"{min_days:g}-day threshold")
    if info.not_before > now:
        faults["cert-not-yet-valid"] = (f"served certificate is not valid until "
                                        f"{info.not_before:%Y-%m-%d %H:%M}Z")
    run.observe()
    if not has_san_for(info, domain):
        faults["san-mismatch"] = (f"served certificate SAN {list(info.dns_names) or 'none'} "
                                  f"does not cover {domain}")
    if issuer_pem is not None:
        run.observe()
        try:
            issuers = tls.load_pem_certificates(issuer_pem)
        except ValueError:
            faults["wrong-issuer"] = "the expected issuer (cert-manager CA) PEM holds no certificate"
            return faults
        names = [issuer.subject.rfc4514_string() for issuer in issuers]
        run.evidence["expected_issuer"] = names[0] if len(names) == 1 else names
        reasons = [issued_by(info.certificate, issuer) for issuer in issuers]
        if None not in reasons:
            faults["wrong-issuer"] = (f"served certificate is not issued by the cert-manager CA "
                                      f"'{' or '.join(names)}': {reasons[0]}")
    return faults


def _compare_secret(run: CheckRun, info: tls.CertInfo | None,
                    secret_cert_pem: bytes) -> dict[str, str]:
    run.observe()
    try:
        secret_leaf = tls.CertInfo.from_cert(tls.load_pem_certificates(secret_cert_pem)[0])
    except ValueError:
        return {"secret-cert-unreadable": "the Secret's tls.crt holds no PEM certificate"}
    run.evidence["secret_certificate"] = {"subject": secret_leaf.subject,
                                          "sha256": secret_leaf.sha256,
                                          "not_after": secret_leaf.not_after.isoformat()}
    if info is None:
        run.evidence["secret_comparison"] = "skipped: the served certificate could not be read"
        return {}
    if info.der != secret_leaf.der:
        return {"cert-differs-from-secret": (
            f"served certificate (sha256 {info.sha256[:23]}…, notAfter {info.not_after:%Y-%m-%d}) "
            f"differs from the Secret's tls.crt (sha256 {secret_leaf.sha256[:23]}…, "
            f"notAfter {secret_leaf.not_after:%Y-%m-%d})")}
    run.evidence["secret_comparison"] = "identical"
    return {}


def _handshake_evidence(hs: tls.Handshake) -> dict[str, Any]:
    evidence: dict[str, Any] = {"to": hs.where, "outcome": hs.outcome.value}
    if hs.version:
        evidence["version"] = hs.version
        evidence["cipher"] = hs.cipher
    if hs.detail:
        evidence["detail"] = hs.detail
    return evidence


# ------------------------------------------------------------------ TLS versions


@live_check(
    "https.tls_versions",
    faults={
        "https-unreachable": "no TCP connection to the HTTPS port",
        "tls12-refused": "TLS 1.2 is refused",
        "tls13-refused": "TLS 1.3 is refused",
        "tls10-accepted": "TLS 1.0 is accepted",
        "tls11-accepted": "TLS 1.1 is accepted",
        "tls-probe-unavailable": "this machine's OpenSSL cannot offer a version to probe with",
    },
)
def check_tls_versions(
    target: Target,
    *,
    legacy_cipher_string: str = tls.LEGACY_CIPHERS,
    timeout: float = tls.HANDSHAKE_TIMEOUT_S,
) -> CheckResult:
    """TLS 1.2 and 1.3 are accepted; TLS 1.0 and 1.1 are refused (and we could offer them)."""
    tls.require_ca(target.ca_file)
    run = CheckRun("https.tls_versions", target.name)
    seen: dict[str, str] = {}
    run.evidence["versions"] = seen
    for label in ("TLS 1.2", "TLS 1.3", "TLS 1.0", "TLS 1.1"):
        version = tls.TLS_VERSIONS[label]
        code = "tls" + label[4:].replace(".", "")
        legacy = label in tls.LEGACY_VERSIONS
        if legacy:
            offerable, why = tls.can_offer(version, legacy_cipher_string)
            if not offerable:
                seen[label] = f"not probed: this client cannot offer it ({why})"
                run.fail("tls-probe-unavailable",
                         f"cannot tell whether {label} is refused: this machine's OpenSSL cannot "
                         f"offer {label} with ciphers '{legacy_cipher_string}' ({why})")
                continue
        hs = tls.handshake_to(target.pins, target.domain, 443, target.ca_file, version=version,
                              cipher_string=legacy_cipher_string if legacy else None,
                              timeout=timeout)
        if hs.outcome is tls.Outcome.UNREACHABLE:
            run.fail("https-unreachable", f"cannot connect to {hs.where}: {hs.error}")
            return run.result()
        if hs.outcome is tls.Outcome.CLIENT_UNSUPPORTED:
            seen[label] = f"not probed: the client could not build a hello ({hs.error})"
            run.fail("tls-probe-unavailable",
                     f"cannot tell whether the server takes {label}: our client could not offer it "
                     f"({hs.error})")
            continue
        run.observe()
        chose = tls.server_hello_version(hs.received)
        accepted = hs.negotiated or (legacy and chose == tls.VERSION_NAMES[version])
        seen[label] = ("accepted" + (f" ({hs.cipher})" if hs.cipher else "")
                       + (f"; {hs.detail}" if hs.detail else "")) if accepted \
            else f"refused ({hs.error})"
        if legacy and accepted:
            run.fail(f"{code}-accepted", f"{hs.where} accepts {label} (should be refused)"
                     + (f"; {hs.detail}" if hs.detail else ""))
        elif not legacy and not accepted:
            run.fail(f"{code}-refused", f"{hs.where} refuses {label}: {hs.error}")
    return run.result()


# --------------------------------------------------------------- HTTP semantics

# Mastodon's own security headers: name -> (predicate on the lower-cased value, expectation).
SECURITY_HEADERS: dict[str, tuple[Any, str]] = {
    "X-Content-Type-Options": (lambda v: v == "nosniff", "nosniff"),
    "X-Frame-Options": (lambda v: v == "deny", "DENY"),
    "Referrer-Policy": (lambda v: v in {"same-origin", "strict-origin-when-cross-origin",
                                        "no-referrer", "strict-origin"},
                        "same-origin or strict-origin-when-cross-origin"),
    "Content-Security-Policy": (lambda v: bool(re.search(r"frame-ancestors\s+'none'", v)),
                                "a policy with frame-ancestors 'none'"),
}
PERMANENT_REDIRECTS = frozenset({301, 308})


def hsts_max_age(value: str) -> int | None:
    """The max-age of a Strict-Transport-Security value, None when absent or malformed.

    >>> hsts_max_age("max-age=63072000; includeSubDomains; preload")
    63072000
    >>> hsts_max_age('includeSubDomains; max-age="300"'), hsts_max_age("preload")
    (300, None)
    """
    match = re.search(r'(?:^|;)\s*max-age\s*=\s*"?(\d+)"?\s*(?:;|$)', value, re.IGNORECASE)
    return int(match.group(1)) if match else None


@live_check(
    "https.http_semantics",
    faults={
        "http-unreachable": "nothing answers http:// (port 80)",
        "https-unreachable": "no HTTPS answer",
        "https-untrusted": "the HTTPS answer fails verification against the test CA",
        "no-redirect": "http:// answers without redirecting",
        "redirect-not-permanent": "http:// redirects with 302/303/307, not 301/308",
        "redirect-wrong-location": "the redirect does not go to the same URL on https://",
        "hsts-missing": "no Strict-Transport-Security header",
        "hsts-weak": "HSTS max-age below the threshold or malformed",
        "security-header-missing": "a Mastodon security header is absent",
        "security-header-weak": "a Mastodon security header has a weaker value",
    },
)
def check_http_semantics(
    target: Target,
    *,
    redirect_path: str = "/about",
    header_paths: Sequence[str] = ("/about", "/api/v2/instance"),
    min_hsts_max_age: int = HSTS_MIN_MAX_AGE,
    timeout: float = REQUEST_TIMEOUT_S,
) -> CheckResult:
    """http:// redirects permanently to the same https:// URL; HTTPS answers carry HSTS and
    Mastodon's security headers."""
    tls.require_ca(target.ca_file)
    run = CheckRun("https.http_semantics", target.name)
    lines: list[str] = []
    run.evidence["responses"] = lines
    session = target.http()
    with session:
        plain_url = f"{target.http_url}{redirect_path}"
        response = _get(session, plain_url, timeout)
        if isinstance(response, NoAnswer):
            run.fail("http-unreachable",
                     f"cannot reach {plain_url}{_pinned(target, 80)}: {response.reason}")
        else:
            lines.append(_status_line(response))
            _judge_redirect(run, response, f"{target.base_url}{redirect_path}")
        for index, path in enumerate(header_paths):
            url = f"{target.base_url}{path}"
            response = _get(session, url, timeout)
            if isinstance(response, NoAnswer):
                response.report(run, url, target)
                break
            lines.append(_status_line(response))
            if index == 0:
                _judge_hsts(run, response, min_hsts_max_age)
            _judge_security_headers(run, response, path)
    return run.result()


def _judge_redirect(run: CheckRun, response: requests.Response, expected: str) -> None:
    run.observe()
    plain = response.request.url
    location = response.headers.get("Location", "")
    if not response.is_redirect or not location:
        run.fail("no-redirect", f"{plain} answered {response.status_code} {response.reason} "
                 "instead of redirecting to https://")
        return
    if response.status_code not in PERMANENT_REDIRECTS:
        run.fail("redirect-not-permanent", f"{plain} redirects with {response.status_code} "
                 f"{response.reason}, not a permanent 301/308")
    if location != expected:
        run.fail("redirect-wrong-location", f"{plain} redirects to {location!r}, expected {expected!r}")
    run.evidence["redirect"] = f"{response.status_code} → {location}"


def _judge_hsts(run: CheckRun, response: requests.Response, min_max_age: int) -> None:
    run.observe()
    value = response.headers.get("Strict-Transport-Security")
    run.evidence["hsts"] = value
    if value is None:
        run.fail("hsts-missing", f"{response.request.url} has no Strict-Transport-Security header")
        return
    max_age = hsts_max_age(value)
    if max_age is None:
        run.fail("hsts-weak", f"Strict-Transport-Security {value!r} has no valid max-age")
    elif max_age < min_max_age:
        run.fail("hsts-weak", f"Strict-Transport-Security max-age={max_age} is below "
                 f"{min_max_age} seconds ({value!r})")


def _judge_security_headers(run: CheckRun, response: requests.Response, path: str) -> None:
    for name, (is_good, expected) in SECURITY_HEADERS.items():
        run.observe()
        value = response.headers.get(name)
        if value is None:
            run.fail("security-header-missing", f"{path} has no {name} header (Mastodon sends "
                     f"{expected})")
        elif not is_good(value.strip().lower()):
            run.fail("security-header-weak", f"{path} sends {name}: {value[:120]!r}, expected "
                     f"{expected}")


# ------------------------------------------------------------ Mastodon endpoints

NODEINFO_REL = "http://nodeinfo.diaspora.software/ns/schema/2.0"


@live_check(
    "https.mastodon_endpoints",
    faults={
        "https-unreachable": "no HTTPS answer",
        "https-untrusted": "the HTTPS answer fails verification against the test CA",
        "health-not-ok": "/health does not answer 200 OK",
        "instance-not-ok": "/api/v2/instance does not answer 200 with JSON",
        "instance-domain-wrong": "/api/v2/instance reports another domain",
        "webfinger-not-found": "webfinger does not find the test account",
        "webfinger-wrong": "webfinger answers with the wrong subject or no ActivityPub self link",
        "host-meta-missing": "/.well-known/host-meta does not answer with an XRD",
        "host-meta-wrong": "host-meta's lrdd template does not point at this webfinger",
        "nodeinfo-missing": "/.well-known/nodeinfo or its 2.0 document does not answer",
        "nodeinfo-wrong": "nodeinfo does not describe Mastodon on this domain",
    },
)
def check_mastodon_endpoints(
    target: Target,
    *,
    username: str,
    timeout: float = REQUEST_TIMEOUT_S,
) -> CheckResult:
    """/health, /api/v2/instance, webfinger for ``username``, host-meta and nodeinfo answer
    as Mastodon does for this domain."""
    tls.require_ca(target.ca_file)
    run = CheckRun("https.mastodon_endpoints", target.name)
    lines: list[str] = []
    run.evidence["responses"] = lines
    base = target.base_url
    with target.http() as session:

        def get(path: str, **kwargs: Any) -> requests.Response | None:
            response = _get(session, f"{base}{path}", timeout, **kwargs)
            if isinstance(response, NoAnswer):
                response.report(run, f"{base}{path}", target)
                return None
            lines.append(_status_line(response))
            run.observe()
            return response

        response = get("/health")
        if response is None:
            return run.result()
        if response.status_code != 200 or response.text.strip() != "OK":
            run.fail("health-not-ok", f"/health answered {response.status_code} "
                     f"{response.reason} {response.text.strip()[:40]!r}, expected 200 'OK'")

        if (response := get("/api/v2/instance")) is not None:
            _judge_instance(run, response, target.domain)
        acct = f"acct:{username}@{target.domain}"
        if (response := get("/.well-known/webfinger", params={"resource": acct})) is not None:
            _judge_webfinger(run, response, acct, target.domain)
        if (response := get("/.well-known/host-meta")) is not None:
            _judge_host_meta(run, response, base)
        if (response := get("/.well-known/nodeinfo")) is not None:
            href = _nodeinfo_link(run, response, target.domain)
            if href is not None and (document := get(urlsplit(href).path)) is not None:
                _judge_nodeinfo(run, document)
    return run.result()


def _json_body(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _judge_instance(run: CheckRun, response: requests.Response, domain: str) -> None:
    doc = _json_body(response) if response.status_code == 200 else None
    if not isinstance(doc, dict):
        run.fail("instance-not-ok", f"/api/v2/instance answered {response.status_code} "
                 f"{response.reason} without a JSON object")
        return
    run.evidence["instance"] = {k: doc.get(k) for k in ("domain", "title", "version")}
    if doc.get("domain") != domain:
        run.fail("instance-domain-wrong",
                 f"/api/v2/instance reports domain {doc.get('domain')!r}, expected {domain!r}")


def _judge_webfinger(run: CheckRun, response: requests.Response, acct: str, domain: str) -> None:
    if response.status_code != 200:
        run.fail("webfinger-not-found", f"webfinger for {acct} answered {response.status_code} "
                 f"{response.reason}")
        return
    doc = _json_body(response)
    if not isinstance(doc, dict) or doc.get("subject") != acct:
        subject = doc.get("subject") if isinstance(doc, dict) else None
        run.fail("webfinger-wrong", f"webfinger for {acct} names subject {subject!r}")
        return
    found = doc.get("links")
    links = found if isinstance(found, list) else []
    selves = [link.get("href", "") for link in links if isinstance(link, dict)
              and link.get("rel") == "self" and link.get("type") == "application/activity+json"]
    on_domain = [h for h in selves if urlsplit(h).scheme == "https" and urlsplit(h).hostname == domain]
    run.evidence["webfinger_self"] = selves
    if not on_domain:
        run.fail("webfinger-wrong", f"webfinger for {acct} has no rel=self "
                 f"application/activity+json link on https://{domain} (found {selves or 'none'})")


def _judge_host_meta(run: CheckRun, response: requests.Response, base: str) -> None:
    root = None
    if response.status_code == 200:
        try:
            root = ET.fromstring(response.content)
        except ET.ParseError:
            root = None
    if root is None or not root.tag.endswith("XRD"):
        run.fail("host-meta-missing", f"/.well-known/host-meta answered {response.status_code} "
                 f"{response.reason} without an XRD document")
        return
    expected = f"{base}/.well-known/webfinger?resource={{uri}}"
    templates = [link.get("template") for link in root.iter()
                 if link.tag.endswith("Link") and link.get("rel") == "lrdd"]
    run.evidence["host_meta_lrdd"] = templates
    if expected not in templates:
        run.fail("host-meta-wrong", f"host-meta lrdd template is {templates or 'missing'}, "
                 f"expected {expected!r}")


def _nodeinfo_link(run: CheckRun, response: requests.Response, domain: str) -> str | None:
    doc = _json_body(response) if response.status_code == 200 else None
    links = doc.get("links") if isinstance(doc, dict) else None
    if not isinstance(links, list):
        run.fail("nodeinfo-missing", f"/.well-known/nodeinfo answered {response.status_code} "
                 f"{response.reason} without a links list")
        return None
    hrefs = [link.get("href") for link in links
             if isinstance(link, dict) and link.get("rel") == NODEINFO_REL]
    if not hrefs:
        run.fail("nodeinfo-missing", "/.well-known/nodeinfo has no schema 2.0 link")
        return None
    href = str(hrefs[0])
    if urlsplit(href).scheme != "https" or urlsplit(href).hostname != domain:
        run.fail("nodeinfo-wrong", f"/.well-known/nodeinfo points to {href!r}, not https://{domain}")
        return None
    return href


def _judge_nodeinfo(run: CheckRun, response: requests.Response) -> None:
    path = urlsplit(str(response.request.url or "")).path
    doc = _json_body(response) if response.status_code == 200 else None
    if not isinstance(doc, dict):
        run.fail("nodeinfo-missing", f"{path} answered {response.status_code} {response.reason} "
                 "without a JSON object")
        return
    found = doc.get("software")
    software = found if isinstance(found, dict) else {}
    run.evidence["nodeinfo_software"] = software
    if software.get("name") != "mastodon":
        run.fail("nodeinfo-wrong", f"{path} reports software {software.get('name')!r}, "
                 "expected 'mastodon'")


# ------------------------------------------------------------------- Host header


@live_check(
    "https.host_header",
    faults={
        "https-unreachable": "no HTTPS answer",
        "https-untrusted": "the HTTPS answer fails verification against the test CA",
        "host-check-inconclusive": "the request with the right Host is refused too",
        "foreign-host-accepted": "a request with a foreign Host header is served",
        "foreign-host-unexpected": "a foreign Host gets an error other than a refusal",
    },
)
def check_host_header(
    target: Target,
    *,
    foreign_host: str = FOREIGN_HOST,
    path: str = "/api/v2/instance",
    timeout: float = REQUEST_TIMEOUT_S,
) -> CheckResult:
    """A request with a foreign Host header (same SNI and address) is refused by Mastodon
    (403) or Traefik (404), while the same request with the real Host is served."""
    tls.require_ca(target.ca_file)
    run = CheckRun("https.host_header", target.name)
    lines: list[str] = []
    run.evidence["responses"] = lines
    url = f"{target.base_url}{path}"
    with target.http() as session:
        own = _get(session, url, timeout)
        if isinstance(own, NoAnswer):
            own.report(run, url, target)
            return run.result()
        lines.append(f"Host: {target.domain}: " + _status_line(own))
        foreign = _get(session, url, timeout, headers={"Host": foreign_host})
        if isinstance(foreign, NoAnswer):
            foreign.report(run, f"{url} with Host {foreign_host}", target)
            return run.result()
        lines.append(f"Host: {foreign_host}: " + _status_line(foreign))
    run.observe(2)
    if own.status_code != 200:
        run.fail("host-check-inconclusive", f"{path} with Host {target.domain} answered "
                 f"{own.status_code} {own.reason}; a refusal of the foreign Host would prove nothing")
    status = foreign.status_code
    if status < 400:
        run.fail("foreign-host-accepted", f"{path} with Host {foreign_host} answered {status} "
                 f"{foreign.reason}: the foreign Host was not refused")
    elif status not in HOST_REFUSED_STATUSES:
        run.fail("foreign-host-unexpected", f"{path} with Host {foreign_host} answered {status} "
                 f"{foreign.reason}, not a refusal (403 from Mastodon or 404 from Traefik)")
    return run.result()


# ------------------------------------------------------------------------ helpers


@dataclass(frozen=True)
class NoAnswer:
    """Why a request got no response: a one-line reason, and whether TLS verification failed."""

    reason: str
    untrusted: bool = False

    def report(self, run: CheckRun, what: str, target: Target) -> None:
        where = f"{what}{_pinned(target, 443)}"
        if self.untrusted:
            run.fail("https-untrusted", f"{where} does not verify against the test CA "
                     f"({self.reason}); https.certificate says why")
        else:
            run.fail("https-unreachable", f"cannot reach {where}: {self.reason}")


def _get(session: requests.Session, url: str, timeout: float,
         **kwargs: Any) -> requests.Response | NoAnswer:
    """The response, or why there is none. Redirects are never followed."""
    try:
        return session.get(url, timeout=timeout, allow_redirects=False, **kwargs)
    except requests.exceptions.SSLError as exc:
        return NoAnswer(_short_error(exc), untrusted="CERTIFICATE_VERIFY_FAILED" in str(exc))
    except requests.RequestException as exc:
        return NoAnswer(_short_error(exc))


def _short_error(exc: BaseException) -> str:
    reason: BaseException = exc
    if exc.args and isinstance(exc.args[0], MaxRetryError) and exc.args[0].reason is not None:
        reason = exc.args[0].reason
    text = str(reason)
    if isinstance(reason, ssl.SSLError | OSError) and reason.args:
        text = str(reason.args[-1]) if isinstance(reason.args[-1], str) else text
    text = re.sub(r"^<[^>]+>: ", "", text)
    text = re.sub(r"\s*\(_ssl\.c:\d+\)", "", text)
    return f"{type(reason).__name__}: {' '.join(text.split())[:240]}"


def _status_line(response: requests.Response) -> str:
    return f"GET {response.request.url} → {response.status_code} {response.reason}"


def _pinned(target: Target, port: int) -> str:
    address = target.pins.resolve(target.domain, port)
    return "" if address == (target.domain, port) else f" (pinned to {address[0]}:{address[1]})"


def read_ca_file(path: Path | None) -> bytes | None:
    """The target's CA bundle (the cert-manager CA for kind), or None."""
    return path.read_bytes() if path is not None else None
