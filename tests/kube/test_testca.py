"""The run's test root CA, made for real: what a root needs, a leaf it signs verifies with
Python's own TLS stack, the key stays masked, and a reused cluster's CA is checked."""

from __future__ import annotations

import datetime as dt
import ssl

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.kube.fakes import FakeKube
from tests.kube.test_bringup import PHASES, up_to_render
from tootcheck import secretgen
from tootcheck.errors import BadInput
from tootcheck.kube import bringup, objects, testca
from tootcheck.kube.bringup import certificates
from tootcheck.redaction import REDACTOR

NOW = dt.datetime(2026, 12, 4, 12, 0, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def ca() -> testca.TestCA:
    return testca.generate(NOW)


def cert_of(ca: testca.TestCA) -> x509.Certificate:
    return x509.load_pem_x509_certificate(ca.cert_pem.encode())


def test_the_certificate_is_a_root_ca(ca):
    cert = cert_of(ca)
    assert cert.subject == cert.issuer == testca.subject()
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "tootcheck kind test root CA"
    assert [a.value for a in cert.subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)] == [
        "kind e2e", "not for production"]
    basic = cert.extensions.get_extension_for_class(x509.BasicConstraints)
    assert basic.critical and basic.value.ca and basic.value.path_length == 0
    usage = cert.extensions.get_extension_for_class(x509.KeyUsage)
    assert usage.critical and usage.value.key_cert_sign and usage.value.crl_sign
    assert usage.value.digital_signature and not usage.value.key_encipherment
    ski = cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    aki = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    assert aki.key_identifier == ski.digest
    assert isinstance(cert.public_key(), ec.EllipticCurvePublicKey)
    assert cert.public_key().curve.name == "secp256r1"
    assert cert.not_valid_before_utc == NOW - testca.BACKDATE
    assert cert.not_valid_after_utc == NOW + dt.timedelta(days=90)
    cert.verify_directly_issued_by(cert)  # self-signed: the signature checks with its own key


def test_each_run_gets_its_own_ca(ca):
    other = testca.generate(NOW)
    assert other.cert_pem != ca.cert_pem and other.key != ca.key


def leaf_signed_by(ca: testca.TestCA, host: str) -> tuple[bytes, bytes]:
    """A server certificate as cert-manager's CA issuer makes it (PEM cert, PEM key)."""
    ca_key = serialization.load_pem_private_key(ca.key.reveal().encode(), password=None)
    ca_cert = cert_of(ca)
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([])).issuer_name(ca_cert.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=True)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(
                ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value),
                critical=False)
            .sign(ca_key, hashes.SHA256()))
    return (cert.public_bytes(serialization.Encoding.PEM),
            key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()))


def test_a_leaf_it_signs_verifies_strictly_against_it_alone(ca, tmp_path):
    """What the suite does with the run's CA file: trust it, and nothing else, with OpenSSL's
    strict X.509 checks on (which want the root's key usage and identifiers)."""
    import socket
    import threading

    cert_pem, key_pem = leaf_signed_by(ca, "kirchner.social")
    (tmp_path / "leaf.pem").write_bytes(cert_pem + key_pem)
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(tmp_path / "leaf.pem")
    client_ctx = ssl.create_default_context(cadata=ca.cert_pem)
    client_ctx.verify_flags |= ssl.VERIFY_X509_STRICT
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def serve() -> None:
        conn, _ = listener.accept()
        try:
            with server_ctx.wrap_socket(conn, server_side=True) as tls:
                tls.recv(1)
        except (ssl.SSLError, OSError):
            pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as raw, \
                client_ctx.wrap_socket(raw, server_hostname="kirchner.social") as tls:
            assert tls.getpeercert()["subjectAltName"] == (("DNS", "kirchner.social"),)
    finally:
        listener.close()
        thread.join(timeout=10)


def test_the_key_is_masked_and_never_in_the_certificate(ca):
    key_pem = ca.key.reveal()
    assert key_pem.startswith("-----BEGIN PRIVATE KEY-----") and key_pem in REDACTOR
    assert key_pem not in repr(ca) and key_pem not in str(ca)
    assert "PRIVATE KEY" not in ca.cert_pem


def test_stored_and_read_back_it_is_the_same_ca(ca):
    again, new = testca.complete(ca.stored(), NOW + dt.timedelta(days=30))
    assert not new and again == ca
    fresh, new = testca.complete({}, NOW)
    assert new and fresh != ca


@pytest.mark.parametrize(("change", "message"), [
    (lambda s, other: {**s, testca.KEY_KEY: other.key.reveal()}, "does not belong to the certificate"),
    (lambda s, other: {**s, testca.CERT_KEY: "not a certificate"}, "not a PEM certificate"),
    (lambda s, other: {testca.CERT_KEY: s[testca.CERT_KEY]}, "certificate or key missing"),
])
def test_a_broken_stored_ca_is_refused_in_one_line_without_the_key(ca, change, message):
    other = testca.generate(NOW)
    with pytest.raises(BadInput, match=message) as info:
        testca.complete(change(ca.stored(), other), NOW)
    assert "\n" not in str(info.value) and "PRIVATE KEY" not in str(info.value)


def test_a_stored_ca_about_to_expire_is_refused(ca):
    with pytest.raises(BadInput, match=r"stored test CA expires 2027-03-04 12:00 UTC: delete the cluster"):
        testca.complete(ca.stored(), NOW + dt.timedelta(days=89, hours=12))


def test_a_stored_leaf_certificate_is_not_taken_for_a_ca(ca):
    cert_pem, key_pem = leaf_signed_by(ca, "kirchner.social")
    with pytest.raises(BadInput, match="not a CA"):
        testca.load(cert_pem.decode(), key_pem.decode(), dt.datetime.now(dt.UTC))


# ----------------------------------------------------------- in the bring-up


def test_the_bring_up_stores_the_ca_and_never_prints_its_key(tmp_path, kind_bin):
    kube = FakeKube()
    ctx = up_to_render(tmp_path, kind_bin, kube)
    key_pem = ctx.ca.key.reveal()
    stored = objects.decode_data(kube.objects[("Secret", "kube-system", objects.RUN_SECRETS)])
    assert stored[testca.CERT_KEY] == ctx.ca.cert_pem and stored[testca.KEY_KEY] == key_pem
    assert ctx.ca_file.read_text() == ctx.ca.cert_pem  # the certificate only
    assert "PRIVATE KEY" not in ctx.ca_file.read_text()
    printed = "\n".join(ctx.progress.lines) + "\n".join(ctx.timings.notes.values())
    written = "\n".join(p.read_text() for p in (tmp_path / "reports").rglob("*") if p.is_file())
    assert key_pem not in printed and key_pem not in written and "PRIVATE KEY" not in printed


def ready_issuer() -> dict:
    return {"apiVersion": "cert-manager.io/v1", "kind": "ClusterIssuer",
            "metadata": {"name": "kirchner-social-issuer", "generation": 1},
            "status": {"conditions": [{"type": "Ready", "status": "True", "observedGeneration": 1}]}}


def test_issuers_store_the_run_ca_for_the_ca_issuer_and_mastodon_trusts_the_same(tmp_path, kind_bin):
    kube = FakeKube([ready_issuer()])
    ctx = up_to_render(tmp_path, kind_bin, kube, paths=("manifests/infra/issuers", "manifests/overlays/kind"))
    bringup.execute(ctx, [PHASES["issuers"], PHASES["mastodon-secrets"]])
    secret = kube.objects[("Secret", "cert-manager", "tootcheck-root-ca")]
    assert secret["type"] == "kubernetes.io/tls"
    data = objects.decode_data(secret)
    assert data == {"tls.crt": ctx.ca.cert_pem, "tls.key": ctx.ca.key.reveal(), "ca.crt": ctx.ca.cert_pem}
    applied = [(d["kind"], d["metadata"]["name"]) for d in kube.applied]
    # the key pair goes in before the issuer that reads it
    assert applied.index(("Secret", "tootcheck-root-ca")) < applied.index(
        ("ClusterIssuer", "kirchner-social-issuer"))
    configmap = kube.objects[("ConfigMap", "mastodon", objects.CA_CONFIGMAP)]
    assert configmap["data"] == {"ca.crt": ctx.ca.cert_pem}
    line = next(ln for ln in ctx.progress.lines if "] issuers " in ln)
    assert ctx.ca.key.reveal() not in line and "ran: 2 objects applied" in line


def test_a_reused_cluster_skips_the_issuers_only_with_the_same_ca(tmp_path, kind_bin):
    kube = FakeKube([ready_issuer()])
    ctx = up_to_render(tmp_path, kind_bin, kube, paths=("manifests/infra/issuers",))
    bringup.execute(ctx, [PHASES["issuers"]])
    (tmp_path / "clusters").write_text("tootcheck\n")
    again = up_to_render(tmp_path, kind_bin, kube, paths=("manifests/infra/issuers",), reuse_cluster=True)
    assert certificates.done_issuers(again, PHASES["issuers"])
    kube.put(objects.root_ca_secret(testca.generate().cert_pem, "x" * 10))  # someone replaced it
    assert not certificates.done_issuers(again, PHASES["issuers"])


def test_a_cluster_whose_ca_cert_manager_made_is_refused(tmp_path, kind_bin):
    """Reused after the CA became the run's: its certificates were signed by a CA the run
    does not have, so the bring-up stops with one line instead of failing later on TLS."""
    kube = FakeKube([objects.state_configmap({"phase.issuers": "an-older-render"}),
                     objects.run_secrets(secretgen.generate())])
    (tmp_path / "clusters").write_text("tootcheck\n")
    with pytest.raises(bringup.BringUpFailed, match=r"phase secrets failed: kind cluster 'tootcheck' "
                       r"has issuers but no stored test CA .*kind delete cluster --name tootcheck"):
        up_to_render(tmp_path, kind_bin, kube, reuse_cluster=True)
