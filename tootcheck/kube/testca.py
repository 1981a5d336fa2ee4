"""The run's test root CA, made here instead of by cert-manager.

The kind cluster's CA ClusterIssuer ``kirchner-social-issuer`` signs the test
certificates with this CA; the suite and Mastodon's pods trust it (only Mastodon mounts
it: ``manifests/overlays/kind/patches/tootcheck-ca.yaml``).
Making it in Python (rather than with a self-signed issuer and a CA Certificate)
means it exists before the cluster does: Mastodon's inputs (ConfigMap
``tootcheck-ca``) do not wait for cert-manager.

* ECDSA P-256, subject O=tootcheck, OU="kind e2e", OU="not for production",
  CN "tootcheck kind test root CA", valid :data:`VALIDITY` (what the
  cert-manager Certificate had: ``duration: 2160h``), one hour back-dated for
  clock skew between host and node.
* Extensions as a root CA needs them, all that strict verifiers (OpenSSL's
  ``X509_V_FLAG_X509_STRICT``) ask for: BasicConstraints CA (critical, path
  length 0: it signs only leaves), KeyUsage keyCertSign + cRLSign +
  digitalSignature (critical), SubjectKeyIdentifier, AuthorityKeyIdentifier.
* The private key is PKCS#8 PEM, held in a :class:`~tootcheck.redaction.Secret`
  from the moment it exists (masked in any output). It is stored with the
  run's secrets (``kube-system/tootcheck-run-secrets``) so a reused cluster
  keeps its CA, and as Secret ``cert-manager/tootcheck-root-ca`` for the issuer.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tootcheck.errors import BadInput
from tootcheck.redaction import Secret

COMMON_NAME = "tootcheck kind test root CA"
ORGANIZATION = "tootcheck"
UNITS = ("kind e2e", "not for production")
VALIDITY = dt.timedelta(days=90)
BACKDATE = dt.timedelta(hours=1)
# A reused cluster's CA must outlive the run: closer to expiry, it is refused.
MIN_REMAINING = dt.timedelta(days=1)
# Keys in the run's secrets (kube-system/tootcheck-run-secrets).
CERT_KEY = "TEST_CA_CRT"
KEY_KEY = "TEST_CA_KEY"


@dataclass(frozen=True)
class TestCA:
    """The CA certificate (public, PEM) and its private key (PEM, masked)."""

    __test__ = False  # not a pytest test class

    cert_pem: str
    key: Secret

    def stored(self) -> dict[str, str]:
        """Plain values for the run's secrets."""
        return {CERT_KEY: self.cert_pem, KEY_KEY: self.key.reveal()}


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def subject() -> x509.Name:
    return x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORGANIZATION),
        *(x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, unit) for unit in UNITS),
        x509.NameAttribute(NameOID.COMMON_NAME, COMMON_NAME),
    ])


def generate(now: dt.datetime | None = None) -> TestCA:
    """A fresh root CA."""
    now = now or _now()
    key = ec.generate_private_key(ec.SECP256R1())
    public = key.public_key()
    name = subject()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name).public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE).not_valid_after(now + VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(
            digital_signature=True, content_commitment=False, key_encipherment=False,
            data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
            encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(public), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    return TestCA(cert.public_bytes(serialization.Encoding.PEM).decode(), Secret(key_pem, "test CA key"))


def load(cert_pem: str, key_pem: str, now: dt.datetime | None = None) -> TestCA:
    """A stored CA, checked: a CA certificate, its key, not about to expire.
    Raises :class:`BadInput` (one line; never quotes the key)."""
    key_secret = Secret(key_pem, "test CA key")  # registered before anything can print it
    try:
        cert = x509.load_pem_x509_certificate(cert_pem.encode())
        key = serialization.load_pem_private_key(key_secret.reveal().encode(), password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):  # TypeError: the key wants a password
        raise BadInput("stored test CA: not a PEM certificate and private key; delete the "
                       "cluster or fix kube-system/tootcheck-run-secrets") from None
    try:
        is_ca = cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        is_ca = False
    if not is_ca:
        raise BadInput("stored test CA: the certificate is not a CA; delete the cluster")
    if key.public_key() != cert.public_key():
        raise BadInput("stored test CA: the private key does not belong to the certificate; "
                       "delete the cluster")
    remaining = cert.not_valid_after_utc - (now or _now())
    if remaining < MIN_REMAINING:
        raise BadInput(f"stored test CA expires {cert.not_valid_after_utc:%Y-%m-%d %H:%M} UTC: "
                       "delete the cluster to get a new one")
    return TestCA(cert_pem, key_secret)


def complete(stored: Mapping[str, str], now: dt.datetime | None = None) -> tuple[TestCA, bool]:
    """The CA kept in the run's secrets (a reused cluster), or a new one; and whether it is new."""
    if CERT_KEY in stored or KEY_KEY in stored:
        if CERT_KEY not in stored or KEY_KEY not in stored:
            raise BadInput("stored test CA: certificate or key missing; delete the cluster")
        return load(stored[CERT_KEY], stored[KEY_KEY], now), False
    return generate(now), True
