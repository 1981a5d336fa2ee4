"""The SNI router the OIDC nightly run uses: real TLS handshakes routed by server name,
an unknown name refused, malformed ClientHellos ignored."""

from __future__ import annotations

import socket
import ssl
import threading
from collections.abc import Iterator

import pytest
import trustme

from tests.nightly.sni_router import SniRouter, server_name


class EchoTLS:
    """A TLS server that answers each connection with its own name."""

    def __init__(self, ca: trustme.CA, name: str) -> None:
        self.name = name
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert(name).configure_cert(self.context)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(5)
        self.port = self.listener.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        try:
            raw, _ = self.listener.accept()
            with self.context.wrap_socket(raw, server_side=True) as tls:
                tls.sendall(self.name.encode())
        except OSError:
            return

    def stop(self) -> None:
        self.listener.close()
        self.thread.join(timeout=5)


@pytest.fixture
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def servers(ca: trustme.CA) -> Iterator[dict[str, EchoTLS]]:
    started = {name: EchoTLS(ca, name) for name in ("kirchner.social", "auth.kirchner.social")}
    yield started
    for server in started.values():
        server.stop()


def hello_through(router: SniRouter, ca: trustme.CA, name: str) -> bytes:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    with socket.create_connection(("127.0.0.1", router.port), timeout=5) as raw, \
            context.wrap_socket(raw, server_hostname=name) as tls:
        return tls.recv(100)


def test_routes_by_server_name(ca: trustme.CA, servers: dict[str, EchoTLS]) -> None:
    router = SniRouter({name: ("127.0.0.1", s.port) for name, s in servers.items()})
    try:
        assert hello_through(router, ca, "auth.kirchner.social") == b"auth.kirchner.social"
        assert hello_through(router, ca, "kirchner.social") == b"kirchner.social"
        with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
            hello_through(router, ca, "other.example")
        assert router.routed == ["auth.kirchner.social", "kirchner.social"]
    finally:
        router.stop()


@pytest.mark.parametrize("data", [b"", b"\x16\x03\x01\x00", b"GET / HTTP/1.1\r\n\r\n",
                                  b"\x16\x03\x01\x00\x05\x01\x00\x00\x01\x03"])
def test_malformed_hellos_have_no_name(data: bytes) -> None:
    assert server_name(data) is None
