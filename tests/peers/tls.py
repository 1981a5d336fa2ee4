"""A local stand-in for kirchner.social behind Traefik: a real TLS server and an HTTP redirector.

* :class:`LocalCA` makes a test CA and certificates with ``cryptography`` (any
  validity window, any names, any issuer, any extended key usage), so every
  certificate fault is a real certificate served over a real handshake.
* :class:`MastodonSite` answers like Mastodon's web process does (routes,
  ``default_headers``, CSP, HSTS from ``force_ssl``, host authorization), each
  behaviour switchable to a broken one.
* :class:`RedirectSite` answers ``http://`` like Traefik's ``redirectScheme``.
* :class:`SitePeer` serves a site on 127.0.0.1 with or without TLS, with the
  protocol versions and ciphers the test asks for.

Mastodon behaviour modelled from Mastodon source (Lastorder-DC/mastodon, ~4.5.0-alpha):
``config/environments/production.rb`` (default_headers, force_ssl + ssl_options
hsts preload), ``config/initializers/content_security_policy.rb``,
``app/controllers/concerns/api/content_security_policy.rb``,
``config/initializers/1_hosts.rb`` (host authorization, /health excluded),
``app/controllers/health_controller.rb``, ``app/controllers/well_known/*``,
``app/serializers/webfinger_serializer.rb``, ``app/views/well_known/host_meta/show.xml.ruby``,
``app/serializers/node_info/*``, ``app/serializers/rest/instance_serializer.rb``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import socket
import ssl
import threading
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

DOMAIN = "kirchner.social"

# ------------------------------------------------------------------ certificates


@dataclass(frozen=True)
class Leaf:
    """A server certificate and its key, written to files for ``load_cert_chain``."""

    cert: x509.Certificate
    cert_file: Path
    key_file: Path

    @property
    def pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    @property
    def der(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.DER)


class LocalCA:
    """A CA made in the test (EC P-256), like cert-manager's CA ClusterIssuer."""

    def __init__(self, directory: Path, name: str = "kirchner-social test CA") -> None:
        self.directory = directory
        self.name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        self._key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.UTC)
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(self.name).issuer_name(self.name)
            .public_key(self._key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(True, False, False, False, False, True, True, False, False),
                           critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(self._key.public_key()),
                           critical=False)
            .sign(self._key, hashes.SHA256())
        )
        slug = name.lower().replace(" ", "-")
        self.ca_file = directory / f"{slug}.pem"
        self.ca_file.write_bytes(self.pem)
        self._issued = 0

    @property
    def pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def issue(
        self,
        names: Iterable[str] = (DOMAIN,),
        *,
        valid_from: dt.timedelta = dt.timedelta(days=-1),
        valid_for: dt.timedelta = dt.timedelta(days=90),
        server_auth: bool = True,
    ) -> Leaf:
        """A leaf for ``names``, valid from now+``valid_from`` for ``valid_for``."""
        names = list(names)
        key = ec.generate_private_key(ec.SECP256R1())
        start = dt.datetime.now(dt.UTC) + valid_from
        usage = [ExtendedKeyUsageOID.SERVER_AUTH if server_auth else ExtendedKeyUsageOID.CLIENT_AUTH]
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
            .issuer_name(self.name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(start + valid_for)
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]),
                           critical=False)
            .add_extension(x509.ExtendedKeyUsage(usage), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self._key.public_key()),
                           critical=False)
            .sign(self._key, hashes.SHA256())
        )
        self._issued += 1
        stem = self.directory / f"{self.ca_file.stem}-leaf{self._issued}"
        cert_file, key_file = stem.with_suffix(".crt"), stem.with_suffix(".key")
        cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_file.touch(mode=0o600)
        key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                               serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
        return Leaf(cert, cert_file, key_file)


def server_context(
    leaf: Leaf,
    *,
    minimum: ssl.TLSVersion = ssl.TLSVersion.TLSv1_2,
    maximum: ssl.TLSVersion = ssl.TLSVersion.MAXIMUM_SUPPORTED,
) -> ssl.SSLContext:
    """A server context serving ``leaf`` at the given protocol versions.

    Versions below TLS 1.2 need OpenSSL security level 0 on the server too.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(leaf.cert_file, leaf.key_file)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        if minimum < ssl.TLSVersion.TLSv1_2:
            context.set_ciphers("DEFAULT:@SECLEVEL=0")
        context.minimum_version = minimum
        context.maximum_version = maximum
    return context


# ------------------------------------------------------------------ behaviours


@dataclass(frozen=True)
class Reply:
    status: int
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""


# production.rb default_headers (X-XSS-Protection '0' since Mastodon 4.x) ...
MASTODON_DEFAULT_HEADERS: dict[str, str] = {
    "Server": "Mastodon",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "X-XSS-Protection": "0",
    "Referrer-Policy": "same-origin",
}
# ... the app-wide CSP (content_security_policy.rb) for HTML, and the API one.
HTML_CSP = ("base-uri 'none'; default-src 'none'; frame-ancestors 'none'; font-src 'self' "
            "https://kirchner.social; img-src 'self' data: blob: https://kirchner.social; "
            "form-action 'none'; script-src 'self' https://kirchner.social 'wasm-unsafe-eval'")
API_CSP = "default-src 'none'; frame-ancestors 'none'; form-action 'none'"
# force_ssl with ssl_options hsts: {preload: true}: Rails' 2-year default plus subdomains.
MASTODON_HSTS = "max-age=63072000; includeSubDomains; preload"


@dataclass
class MastodonSite:
    """Mastodon's web process (behind Traefik) as far as the HTTPS checks look.

    Break it by changing a field: ``hsts=None``, ``headers={"X-Frame-Options": None}``,
    ``foreign_host_status=None`` (no host authorization), or ``replies`` to
    replace a path's answer outright.
    """

    domain: str = DOMAIN
    username: str = "tootcheck"
    version: str = "4.7.2"
    hsts: str | None = MASTODON_HSTS
    headers: dict[str, str | None] = field(default_factory=dict)  # overrides; None drops
    foreign_host_status: int | None = 403  # 403 Rails, 404 Traefik, None: no host check
    replies: dict[str, Reply] = field(default_factory=dict)
    instance_domain: str | None = None  # what /api/v2/instance claims (default: domain)
    requests_seen: list[tuple[str, str]] = field(default_factory=list)  # (host, path)

    def respond(self, path_qs: str, host: str) -> Reply:
        parts = urlsplit(path_qs)
        path = parts.path
        self.requests_seen.append((host, path))
        if self.foreign_host_status is not None and path != "/health" and \
                host.split(":")[0].lower() != self.domain:
            return self._with_headers(Reply(self.foreign_host_status,
                                            {"Content-Type": "text/html; charset=utf-8"}), path)
        reply = self.replies.get(path) or self._route(path, parse_qs(parts.query))
        return self._with_headers(reply, path)

    def _with_headers(self, reply: Reply, path: str) -> Reply:
        headers = dict(MASTODON_DEFAULT_HEADERS)
        headers["Content-Security-Policy"] = API_CSP if path.startswith("/api/") else HTML_CSP
        if self.hsts is not None:
            headers["Strict-Transport-Security"] = self.hsts
        headers.update(reply.headers)
        for name, value in self.headers.items():
            if value is None:
                headers.pop(name, None)
            else:
                headers[name] = value
        return Reply(reply.status, headers, reply.body)

    def _route(self, path: str, query: Mapping[str, list[str]]) -> Reply:
        base = f"https://{self.domain}"
        if path == "/health":
            return Reply(200, {"Content-Type": "text/plain; charset=utf-8"}, b"OK")
        if path == "/api/v2/instance":
            return _json({"domain": self.instance_domain or self.domain, "title": "kirchner.social",
                          "version": self.version, "source_url": "https://github.com/mastodon/mastodon",
                          "configuration": {"urls": {"streaming": f"wss://{self.domain}"}}})
        if path == "/.well-known/webfinger":
            return self._webfinger((query.get("resource") or [""])[0])
        if path == "/.well-known/host-meta":
            xrd = ('<?xml version="1.0" encoding="UTF-8"?>\n'
                   '<XRD xmlns="http://docs.oasis-open.org/ns/xri/xrd-1.0">\n'
                   f'  <Link rel="lrdd" template="{base}/.well-known/webfinger?resource={{uri}}"/>\n'
                   '</XRD>\n')
            return Reply(200, {"Content-Type": "application/xrd+xml; charset=utf-8"}, xrd.encode())
        if path == "/.well-known/nodeinfo":
            return _json({"links": [{"rel": "http://nodeinfo.diaspora.software/ns/schema/2.0",
                                     "href": f"{base}/nodeinfo/2.0"}]})
        if path == "/nodeinfo/2.0":
            return _json({"version": "2.0", "software": {"name": "mastodon", "version": self.version},
                          "protocols": ["activitypub"], "services": {"outbound": [], "inbound": []},
                          "usage": {"users": {"total": 2}, "local_posts": 0},
                          "openRegistrations": False, "metadata": {}})
        if path == "/about":
            return Reply(200, {"Content-Type": "text/html; charset=utf-8"},
                         b"<!DOCTYPE html><html><body>kirchner.social</body></html>")
        return Reply(404, {"Content-Type": "text/html; charset=utf-8"}, b"not found")

    def _webfinger(self, resource: str) -> Reply:
        if not resource:
            return Reply(400)
        username, _, domain = resource.removeprefix("acct:").partition("@")
        if username != self.username or domain not in ("", self.domain):
            return Reply(404)
        base = f"https://{self.domain}"
        jrd = {
            "subject": f"acct:{self.username}@{self.domain}",
            "aliases": [f"{base}/@{self.username}", f"{base}/users/{self.username}"],
            "links": [
                {"rel": "http://webfinger.net/rel/profile-page", "type": "text/html",
                 "href": f"{base}/@{self.username}"},
                {"rel": "self", "type": "application/activity+json",
                 "href": f"{base}/users/{self.username}"},
                {"rel": "http://ostatus.org/schema/1.0/subscribe",
                 "template": f"{base}/authorize_interaction?uri={{uri}}"},
            ],
        }
        return _json(jrd, "application/jrd+json; charset=utf-8")


def _json(doc: object, content_type: str = "application/json; charset=utf-8") -> Reply:
    return Reply(200, {"Content-Type": content_type}, json.dumps(doc).encode())


@dataclass
class RedirectSite:
    """Traefik's ``web`` entrypoint: ``redirectScheme`` to https (permanent: 301).

    ``status=None`` serves the page over plain HTTP instead (no redirect);
    ``location`` overrides where it points (``{path}`` is filled in).
    """

    domain: str = DOMAIN
    status: int | None = 301
    location: str | None = None

    def respond(self, path_qs: str, host: str) -> Reply:
        if self.status is None:
            return Reply(200, {"Content-Type": "text/html"}, b"<html>plain http</html>")
        target = (self.location or "https://{host}{path}").format(host=self.domain, path=path_qs)
        return Reply(self.status, {"Location": target, "Content-Type": "text/plain"},
                     b"Moved Permanently")


# ------------------------------------------------------------------ the server


class _Handler(BaseHTTPRequestHandler):
    server: _SiteServer

    server_name = "tootcheck-peer"

    def version_string(self) -> str:  # the Server header send_response writes
        return self.server_name

    def do_GET(self) -> None:
        reply = self.server.site.respond(self.path, self.headers.get("Host", ""))
        self.server_name = reply.headers.get("Server", "tootcheck-peer")
        self.send_response(reply.status)
        for name, value in reply.headers.items():
            if name.lower() != "server":
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(reply.body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(reply.body)

    def log_message(self, format: str, *args: object) -> None:
        pass


class _SiteServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, site: MastodonSite | RedirectSite, context: ssl.SSLContext | None) -> None:
        self.site = site
        self.context = context
        super().__init__(("127.0.0.1", 0), _Handler)

    def finish_request(self, request: socket.socket, client_address: object) -> None:  # type: ignore[override]
        request.settimeout(5.0)
        if self.context is None:
            self.RequestHandlerClass(request, client_address, self)
            return
        try:  # the handshake runs in the connection's thread, not the accept loop
            tls = self.context.wrap_socket(request, server_side=True)
        except OSError:  # refused versions, bad certificates: the probes expect these
            return
        with contextlib.closing(tls):
            self.RequestHandlerClass(tls, client_address, self)

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # probes that hang up mid-request are expected


class SitePeer:
    """A site served on 127.0.0.1 (TLS when ``context`` is given); stop() ends it."""

    def __init__(self, site: MastodonSite | RedirectSite, context: ssl.SSLContext | None = None) -> None:
        self.site = site
        self._server = _SiteServer(site, context)
        self.port: int = self._server.server_address[1]
        # stop() waits up to one poll interval: 5 ms, as a test starts two peers or more
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.005},
                                        name=f"tls-peer-{self.port}", daemon=True)
        self._thread.start()  # the socket already listens: no readiness wait needed

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
