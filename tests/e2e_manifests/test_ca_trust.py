"""The kind overlay sets SSL_CERT_FILE to the run's test CA. That must *add* the test CA
without dropping the public roots: OpenSSL's default verify paths are a CA file *and* a CA
directory, and SSL_CERT_FILE only replaces the file (SSL_CERT_DIR, unset in the pod, keeps the
hashed /usr/lib/ssl/certs directory). Shown here with real TLS servers on 127.0.0.1 and the
OpenSSL clients of Python and of Ruby (Mastodon's runtime: Net::HTTP and http.rb verify with
OpenSSL::SSL::SSLContext's default cert store)."""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import trustme

from tests.e2e_manifests.manifests import rendered
from tests.e2e_manifests.test_overlay import CA_ENV, CA_MOUNT
from tootcheck.testing import peer_missing

PY_CLIENT = """
import socket, ssl, sys
ctx = ssl.create_default_context()
for port in map(int, sys.argv[1:]):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
            with ctx.wrap_socket(raw, server_hostname="127.0.0.1"):
                print("trusted")
    except ssl.SSLCertVerificationError:
        print("untrusted")
"""
RUBY_CLIENT = """
require "socket"
require "openssl"
ARGV.each do |port|
  ctx = OpenSSL::SSL::SSLContext.new
  ctx.set_params(verify_mode: OpenSSL::SSL::VERIFY_PEER, verify_hostname: true)
  ssl = OpenSSL::SSL::SSLSocket.new(TCPSocket.new("127.0.0.1", port.to_i), ctx)
  ssl.hostname = "127.0.0.1"
  begin
    ssl.connect
    puts "trusted"
  rescue OpenSSL::SSL::SSLError
    puts "untrusted"
  ensure
    ssl.close
  end
end
"""


@contextmanager
def tls_server(ca: trustme.CA) -> Iterator[int]:
    """A TLS server on 127.0.0.1 with a certificate from ``ca``; yields its port."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert("127.0.0.1").configure_cert(ctx)
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            conn.settimeout(5)
            try:
                with ctx.wrap_socket(conn, server_side=True) as tls:
                    tls.recv(1)  # until the client closes
            except (OSError, ssl.SSLError):
                conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join(timeout=5)
        listener.close()


@pytest.fixture(scope="module")
def cas(tmp_path_factory) -> Iterator[dict]:
    """CA "public" in a hashed CA directory (like /etc/ssl/certs), CA "test" in a file."""
    openssl = shutil.which("openssl")
    if openssl is None:
        peer_missing("openssl", "the openssl command is needed to hash a CA directory")
    public, test = trustme.CA(), trustme.CA()
    root = tmp_path_factory.mktemp("ca-trust")
    directory = root / "certs"
    directory.mkdir()
    public.cert_pem.write_to_path(str(directory / "public.pem"))
    subprocess.run([openssl, "rehash", str(directory)], check=True, capture_output=True, timeout=30)
    test_file = root / "ca.crt"
    test.cert_pem.write_to_path(str(test_file))
    with tls_server(public) as public_port, tls_server(test) as test_port:
        yield {"dir": directory, "file": test_file, "ports": (public_port, test_port)}


def run_client(client: str, env: dict[str, str], ports: tuple[int, int]) -> list[str]:
    if client == "python":
        cmd = [sys.executable, "-c", PY_CLIENT]
    else:
        ruby = shutil.which("ruby")
        if ruby is None:
            peer_missing("ruby", "Ruby's OpenSSL client is Mastodon's (apt: ruby)")
        cmd = [ruby, "-e", RUBY_CLIENT]
    base = {"PATH": "/usr/bin:/bin", "HOME": "/tmp"}
    done = subprocess.run(cmd + [str(p) for p in ports], env={**base, **env}, capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr[-500:]
    return done.stdout.split()


@pytest.mark.parametrize("client", ["python", "ruby"])
def test_ssl_cert_file_adds_the_test_ca_and_keeps_the_ca_directory(cas, client):
    env = {"SSL_CERT_FILE": str(cas["file"]), "SSL_CERT_DIR": str(cas["dir"])}
    assert run_client(client, env, cas["ports"]) == ["trusted", "trusted"]


@pytest.mark.parametrize("client", ["python", "ruby"])
def test_each_source_alone_trusts_only_its_ca(cas, client):
    """Not vacuous: the CA directory alone does not know the test CA, and the test CA file
    alone (with the system directory) does not know the other CA."""
    assert run_client(client, {"SSL_CERT_DIR": str(cas["dir"])}, cas["ports"]) == [
        "trusted", "untrusted"]
    assert run_client(client, {"SSL_CERT_FILE": str(cas["file"])}, cas["ports"]) == [
        "untrusted", "trusted"]


def test_the_overlay_sets_only_ssl_cert_file():
    """SSL_CERT_DIR stays unset in the pod, so the image's CA directory stays in use."""
    assert CA_ENV["name"] == "SSL_CERT_FILE"
    assert CA_ENV["value"].startswith(f"{CA_MOUNT}/")
    (deployment,) = [o for o in rendered("overlay-kind") if o["kind"] == "Deployment"]
    spec = deployment["spec"]["template"]["spec"]
    names = {e["name"] for c in spec["initContainers"] + spec["containers"] for e in c.get("env", [])}
    assert "SSL_CERT_FILE" in names and "SSL_CERT_DIR" not in names
