"""TLS handshakes through the name pins: what a server negotiates and which certificate it serves.

Every handshake verifies the server against an explicit CA (verification is never off) and sends
SNI for the real host name while connecting to the pinned address. Handshakes
run over memory BIOs so the module can tell apart

* the server refusing a protocol version (it answered with an alert or hung up),
* our own OpenSSL being unable to offer it (nothing was ever sent), and
* a certificate that failed verification (the server negotiated, then we refused).

When verification fails, :func:`served_chain` repeats the handshake capped at
TLS 1.2, where the server's Certificate message travels in clear text, and
parses the certificates from the bytes received. The verification still fails;
the certificates are only read for the diagnosis, never trusted.

This module only reports; judging is the job of ``tootcheck.checks.https``.

One module of about 510 lines on purpose: the handshake, the certificate reading and
the test-CA helpers are one client, used together by the HTTPS checks and their tests.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import enum
import functools
import socket
import ssl
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tootcheck.clients.pinning import PinMap
from tootcheck.errors import BadInput

# Lets OpenSSL 3 offer TLS 1.0/1.1 (and their SHA-1 signatures) when probing whether
# a server still accepts them. Only used for probes whose success is a fault.
LEGACY_CIPHERS = "DEFAULT:@SECLEVEL=0"
HANDSHAKE_TIMEOUT_S = 10.0

TLS_VERSIONS: dict[str, ssl.TLSVersion] = {
    "TLS 1.0": ssl.TLSVersion.TLSv1,
    "TLS 1.1": ssl.TLSVersion.TLSv1_1,
    "TLS 1.2": ssl.TLSVersion.TLSv1_2,
    "TLS 1.3": ssl.TLSVersion.TLSv1_3,
}
LEGACY_VERSIONS = ("TLS 1.0", "TLS 1.1")


class Outcome(enum.Enum):
    OK = "ok"  # handshake completed and the certificate verified
    UNVERIFIED = "unverified"  # the server negotiated; its certificate failed verification
    FAILED = "failed"  # the server refused (alert, reset, close or silence) after our hello
    UNREACHABLE = "unreachable"  # no TCP connection
    CLIENT_UNSUPPORTED = "client-unsupported"  # our OpenSSL could not even build a hello


@dataclass(frozen=True)
class Handshake:
    """What one handshake attempt found. ``leaf_der`` is set only when it verified."""

    host: str
    port: int
    address: tuple[str, int]
    outcome: Outcome
    version: str | None = None
    cipher: str | None = None
    leaf_der: bytes | None = None
    verify_code: int | None = None
    verify_message: str = ""
    error: str = ""
    received: bytes = b""

    @property
    def where(self) -> str:
        pinned = "" if self.address == (self.host, self.port) else (
            f" (pinned to {self.address[0]}:{self.address[1]})")
        return f"{self.host}:{self.port}{pinned}"

    @property
    def negotiated(self) -> bool:
        """The server accepted the protocol version (whatever became of the certificate)."""
        return self.outcome in (Outcome.OK, Outcome.UNVERIFIED)

    @property
    def detail(self) -> str:
        if self.outcome is Outcome.UNVERIFIED:
            return f"certificate verify failed: {self.verify_message}"
        return self.error


def client_context(
    ca_file: Path | str | None,
    *,
    version: ssl.TLSVersion | None = None,
    maximum: ssl.TLSVersion | None = None,
    cipher_string: str | None = None,
) -> ssl.SSLContext:
    """A verifying client context trusting ``ca_file`` only (the system store when None).

    ``version`` pins minimum and maximum to one protocol version; ``maximum`` caps it.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # CERT_REQUIRED + check_hostname
    if ca_file is not None:
        context.load_verify_locations(cafile=str(ca_file))
    else:
        context.load_default_certs(ssl.Purpose.SERVER_AUTH)
    with warnings.catch_warnings():  # TLSv1/TLSv1_1 are deprecated: probing them is the point
        warnings.simplefilter("ignore", DeprecationWarning)
        if cipher_string is not None:
            context.set_ciphers(cipher_string)
        if version is not None:
            context.minimum_version = version
            context.maximum_version = version
        elif maximum is not None:
            context.maximum_version = maximum
    return context


def handshake(
    address: tuple[str, int],
    server_name: str,
    port: int,
    context: ssl.SSLContext,
    *,
    timeout: float = HANDSHAKE_TIMEOUT_S,
) -> Handshake:
    """Connect to ``address``, handshake with SNI ``server_name`` and report what happened."""
    def made(**fields: Any) -> Handshake:
        return Handshake(host=server_name, port=port, address=address, **fields)

    deadline = time.monotonic() + timeout
    try:
        sock = socket.create_connection(address, timeout=timeout)
    except OSError as exc:
        return made(outcome=Outcome.UNREACHABLE, error=_os_error(exc))
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = context.wrap_bio(incoming, outgoing, server_hostname=server_name)
    received = bytearray()
    sent = 0
    with contextlib.closing(sock):
        while True:
            try:
                tls.do_handshake()
            except ssl.SSLWantReadError:
                pass
            except ssl.SSLCertVerificationError as exc:
                _flush(sock, outgoing)
                return made(outcome=Outcome.UNVERIFIED, verify_code=exc.verify_code,
                                 verify_message=exc.verify_message or str(exc),
                                 error=_ssl_error(exc), received=bytes(received))
            except ssl.SSLError as exc:
                _flush(sock, outgoing)
                outcome = Outcome.CLIENT_UNSUPPORTED if sent == 0 else Outcome.FAILED
                return made(outcome=outcome, error=_ssl_error(exc),
                                 received=bytes(received))
            else:
                _flush(sock, outgoing)  # TLS 1.3: our Finished is still in the BIO
                cipher = tls.cipher()
                return made(outcome=Outcome.OK, version=tls.version(),
                                 cipher=cipher[0] if cipher else None,
                                 leaf_der=tls.getpeercert(binary_form=True),
                                 received=bytes(received))
            try:
                sent += _flush(sock, outgoing)
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError("timed out")
                sock.settimeout(remaining)
                data = sock.recv(65536)
            except OSError as exc:
                return made(outcome=Outcome.FAILED,
                                 error=f"during the handshake: {_os_error(exc)}",
                                 received=bytes(received))
            if data:
                received += data
                incoming.write(data)
            else:
                incoming.write_eof()


def handshake_to(
    pins: PinMap,
    host: str,
    port: int,
    ca_file: Path | str | None,
    *,
    version: ssl.TLSVersion | None = None,
    maximum: ssl.TLSVersion | None = None,
    cipher_string: str | None = None,
    timeout: float = HANDSHAKE_TIMEOUT_S,
) -> Handshake:
    """Handshake with ``host:port`` at its pinned address, trusting ``ca_file`` only."""
    context = client_context(ca_file, version=version, maximum=maximum,
                             cipher_string=cipher_string)
    return handshake(pins.resolve(host, port), host, port, context, timeout=timeout)


def served_chain(
    pins: PinMap,
    host: str,
    port: int,
    ca_file: Path | str | None,
    *,
    timeout: float = HANDSHAKE_TIMEOUT_S,
) -> tuple[tuple[bytes, ...], Handshake]:
    """The certificates the server sends in a TLS 1.2 handshake (read, not trusted).

    Empty when the server does not speak TLS 1.2 (a TLS 1.3 certificate is encrypted).
    """
    attempt = handshake_to(pins, host, port, ca_file, maximum=ssl.TLSVersion.TLSv1_2,
                           timeout=timeout)
    return parse_server_certificates(attempt.received), attempt


# ------------------------------------------------------------ TLS 1.2 record parsing

_CHANGE_CIPHER_SPEC, _HANDSHAKE = 20, 22
_SERVER_HELLO, _CERTIFICATE = 2, 11
_WIRE_VERSIONS = {b"\x03\x01": "TLSv1", b"\x03\x02": "TLSv1.1", b"\x03\x03": "TLSv1.2"}


def handshake_messages(data: bytes) -> list[tuple[int, bytes]]:
    """(type, body) of the clear-text handshake messages in received TLS records.

    Stops at ChangeCipherSpec, after which records are encrypted, and at the
    first incomplete record or message.

    >>> handshake_messages(b"")
    []
    """
    stream = bytearray()
    offset = 0
    while offset + 5 <= len(data):
        content_type = data[offset]
        length = int.from_bytes(data[offset + 3:offset + 5], "big")
        body = data[offset + 5:offset + 5 + length]
        if len(body) < length:
            break
        offset += 5 + length
        if content_type == _CHANGE_CIPHER_SPEC:
            break
        if content_type == _HANDSHAKE:
            stream += body
    messages: list[tuple[int, bytes]] = []
    offset = 0
    while offset + 4 <= len(stream):
        msg_type = stream[offset]
        length = int.from_bytes(stream[offset + 1:offset + 4], "big")
        message = bytes(stream[offset + 4:offset + 4 + length])
        if len(message) < length:
            break
        offset += 4 + length
        messages.append((msg_type, message))
    return messages


def parse_server_certificates(data: bytes) -> tuple[bytes, ...]:
    """DER certificates from the first clear-text Certificate message; () when none."""
    for msg_type, body in handshake_messages(data):
        if msg_type == _CERTIFICATE:
            return _certificate_list(body)
    return ()


def server_hello_version(data: bytes) -> str | None:
    """The version a TLS 1.0-1.2 ServerHello chose ("TLSv1", "TLSv1.1", "TLSv1.2"), if any.

    A TLS 1.3 ServerHello also says 0x0303 here (the real version is in an extension),
    so only use this to ask "did the server pick this legacy version?".
    """
    for msg_type, body in handshake_messages(data):
        if msg_type == _SERVER_HELLO and len(body) >= 2:
            return _WIRE_VERSIONS.get(body[0:2])
    return None


def _certificate_list(message: bytes) -> tuple[bytes, ...]:
    total = int.from_bytes(message[0:3], "big")
    end = min(3 + total, len(message))
    offset, certs = 3, []
    while offset + 3 <= end:
        length = int.from_bytes(message[offset:offset + 3], "big")
        der = message[offset + 3:offset + 3 + length]
        if len(der) < length:
            break
        certs.append(der)
        offset += 3 + length
    return tuple(certs)


# ------------------------------------------------------------------ certificates


@dataclass(frozen=True)
class CertInfo:
    """The facts about one certificate that checks judge and reports show."""

    der: bytes
    subject: str
    issuer: str
    dns_names: tuple[str, ...]
    ip_addresses: tuple[str, ...]
    not_before: dt.datetime
    not_after: dt.datetime
    sha256: str
    serial: str

    @classmethod
    def from_der(cls, der: bytes) -> CertInfo:
        return cls.from_cert(x509.load_der_x509_certificate(der))

    @classmethod
    def from_cert(cls, cert: x509.Certificate) -> CertInfo:
        try:
            san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
            dns = tuple(san.get_values_for_type(x509.DNSName))
            ips = tuple(str(ip) for ip in san.get_values_for_type(x509.IPAddress))
        except x509.ExtensionNotFound:
            dns, ips = (), ()
        der = cert.public_bytes(serialization.Encoding.DER)
        return cls(
            der=der,
            subject=cert.subject.rfc4514_string() or "(empty)",
            issuer=cert.issuer.rfc4514_string() or "(empty)",
            dns_names=dns,
            ip_addresses=ips,
            not_before=cert.not_valid_before_utc,
            not_after=cert.not_valid_after_utc,
            sha256=cert.fingerprint(hashes.SHA256()).hex(":").upper(),
            serial=format(cert.serial_number, "x"),
        )

    @property
    def certificate(self) -> x509.Certificate:
        return x509.load_der_x509_certificate(self.der)

    def evidence(self) -> dict[str, object]:
        return {
            "subject": self.subject,
            "issuer": self.issuer,
            "san_dns": list(self.dns_names),
            "san_ip": list(self.ip_addresses),
            "not_before": self.not_before.isoformat(),
            "not_after": self.not_after.isoformat(),
            "sha256": self.sha256,
            "serial": self.serial,
        }


def load_pem_certificates(pem: bytes) -> list[x509.Certificate]:
    """Every certificate in a PEM bundle; ValueError when there is none."""
    return x509.load_pem_x509_certificates(pem)


def require_ca(ca_file: Path | str | None) -> None:
    """Refuse, in one line, a CA file that cannot serve as the trust anchor."""
    if ca_file is None:
        return
    try:
        certificates = load_pem_certificates(Path(ca_file).read_bytes())
    except OSError as exc:
        raise BadInput(f"CA file {ca_file}: cannot read it ({exc.strerror or exc})") from None
    except ValueError:
        raise BadInput(f"CA file {ca_file} holds no PEM certificate") from None
    if not any(_is_ca(cert) for cert in certificates):
        raise BadInput(f"CA file {ca_file} holds no CA certificate (basicConstraints CA:TRUE)")


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return cert.issuer == cert.subject  # an old-style self-signed root


# ------------------------------------------------------ can this machine offer it?


def can_offer(version: ssl.TLSVersion, cipher_string: str = LEGACY_CIPHERS) -> tuple[bool, str]:
    """Whether our OpenSSL completes a handshake at ``version`` with ``cipher_string``.

    Runs a verifying client against an in-memory server of our own (a throwaway
    CA and certificate), so a later refusal by the real server can be told apart
    from "this client cannot speak that version at all".
    """
    server = _self_probe_server(version)
    with tempfile.TemporaryDirectory(prefix="tootcheck-tls-probe-") as tmp:
        ca_file = Path(tmp) / "ca.pem"
        ca_file.write_bytes(_self_probe_pki()[0])
        try:
            client = client_context(ca_file, version=version, cipher_string=cipher_string)
        except (ssl.SSLError, ValueError) as exc:
            return False, f"cannot configure the client: {_ssl_error(exc)}"
    c_in, c_out, s_in, s_out = (ssl.MemoryBIO() for _ in range(4))
    client_side = client.wrap_bio(c_in, c_out, server_hostname=_PROBE_NAME)
    server_side = server.wrap_bio(s_in, s_out, server_side=True)
    client_done = server_done = False
    for _ in range(20):  # a handshake takes at most a few flights
        if not client_done:
            try:
                client_side.do_handshake()
                client_done = True
            except ssl.SSLWantReadError:
                pass
            except ssl.SSLError as exc:
                return False, _ssl_error(exc)
        s_in.write(c_out.read())
        if not server_done:
            try:
                server_side.do_handshake()
                server_done = True
            except ssl.SSLWantReadError:
                pass
            except ssl.SSLError as exc:
                return False, f"our own test server refused: {_ssl_error(exc)}"
        c_in.write(s_out.read())
        if client_done and server_done:
            negotiated = client_side.version()
            if negotiated != VERSION_NAMES[version]:
                return False, f"negotiated {negotiated} instead"
            return True, f"negotiated {negotiated} ({(client_side.cipher() or ('?',))[0]})"
    return False, "handshake did not complete"


_PROBE_NAME = "tls-self-probe.tootcheck.invalid"
VERSION_NAMES = {
    ssl.TLSVersion.TLSv1: "TLSv1",
    ssl.TLSVersion.TLSv1_1: "TLSv1.1",
    ssl.TLSVersion.TLSv1_2: "TLSv1.2",
    ssl.TLSVersion.TLSv1_3: "TLSv1.3",
}


@functools.lru_cache(maxsize=1)
def _self_probe_pki() -> tuple[bytes, bytes, bytes]:
    """(CA PEM, leaf PEM, leaf key PEM), made once per process, never written to the repo."""
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "tootcheck self-probe CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False),
                       critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, _PROBE_NAME)]))
        .issuer_name(ca_name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(_PROBE_NAME)]), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    return (
        ca.public_bytes(pem),
        leaf.public_bytes(pem),
        key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()),
    )


def _self_probe_server(version: ssl.TLSVersion) -> ssl.SSLContext:
    _, leaf_pem, key_pem = _self_probe_pki()
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    with tempfile.TemporaryDirectory(prefix="tootcheck-tls-probe-") as tmp:
        cert_file, key_file = Path(tmp) / "leaf.pem", Path(tmp) / "leaf.key"
        cert_file.write_bytes(leaf_pem)
        key_file.touch(mode=0o600)
        key_file.write_bytes(key_pem)
        server.load_cert_chain(cert_file, key_file)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        with contextlib.suppress(ssl.SSLError):
            server.set_ciphers(LEGACY_CIPHERS)
        server.minimum_version = version
        server.maximum_version = version
    return server


# ------------------------------------------------------------------------ helpers


def _flush(sock: socket.socket, outgoing: ssl.MemoryBIO) -> int:
    pending = outgoing.read()
    if pending:
        with contextlib.suppress(OSError):
            sock.sendall(pending)
    return len(pending)


def _ssl_error(exc: BaseException) -> str:
    reason = getattr(exc, "reason", None)
    text = getattr(exc, "verify_message", None) or (exc.args[1] if len(exc.args) > 1 else str(exc))
    text = str(text).split(" (_ssl.c")[0]
    return f"{text} [{reason}]" if reason and str(reason) not in text else text


def _os_error(exc: OSError) -> str:
    if isinstance(exc, TimeoutError | socket.timeout):
        return "timed out"
    return exc.strerror or str(exc) or type(exc).__name__
