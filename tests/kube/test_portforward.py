"""The port-forward relay, proven locally: real TCP on 127.0.0.1 and socket pairs
shaped like the kubernetes client's port-forward sockets."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator

import pytest

from tootcheck.kube.portforward import Relay
from tootcheck.waiting import wait_until


class EchoServer:
    """Upper-cases what it receives; answers "bye" after the client's EOF."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.settimeout(0.5)
        self.port = self.sock.getsockname()[1]
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _loop(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except (TimeoutError, OSError):
                continue
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    @staticmethod
    def _handle(conn: socket.socket) -> None:
        with conn:
            conn.settimeout(10)
            try:
                while data := conn.recv(4096):
                    conn.sendall(data.upper())
                conn.sendall(b"bye")
            except OSError:
                pass

    def close(self) -> None:
        self.stop.set()
        self.sock.close()
        self.thread.join(timeout=5)


@pytest.fixture
def echo() -> Iterator[EchoServer]:
    server = EchoServer()
    yield server
    server.close()


def connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    return sock


def recv_exactly(sock: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            break
        buf += chunk
    return buf


def test_bytes_flow_both_ways_and_eof_half_closes(echo):
    with Relay(lambda: socket.create_connection(("127.0.0.1", echo.port), timeout=10)) as relay:
        assert relay.port != echo.port
        with contextlib.closing(connect(relay.port)) as client:
            client.sendall(b"hello")
            assert recv_exactly(client, 5) == b"HELLO"
            client.shutdown(socket.SHUT_WR)  # our EOF reaches the server ...
            assert recv_exactly(client, 3) == b"bye"  # ... which can still answer
            assert client.recv(10) == b""
        assert relay.accepted == 1


def test_concurrent_connections_get_their_own_upstream(echo):
    dials = []

    def dial():
        dials.append(1)
        return socket.create_connection(("127.0.0.1", echo.port), timeout=10)

    with Relay(dial) as relay:
        clients = [connect(relay.port) for _ in range(3)]
        for i, client in enumerate(clients):
            client.sendall(f"c{i}".encode())
        for i, client in enumerate(clients):
            assert recv_exactly(client, 2) == f"C{i}".encode()
        assert wait_until(lambda: relay.active == 3, what="3 active relays", timeout=10, interval=0.05)
        for client in clients:
            client.close()
        wait_until(lambda: relay.active == 0, what="relays closed", timeout=10, interval=0.05)
    assert len(dials) == 3 and relay.accepted == 3


def test_failed_dial_closes_only_that_connection_and_is_recorded():
    def dial():
        raise ConnectionRefusedError("pod port 6379 refused")

    with Relay(dial) as relay, contextlib.closing(connect(relay.port)) as client:
        client.settimeout(10)
        assert client.recv(10) == b""  # closed by the relay
        wait_until(lambda: relay.errors, what="dial error recorded", timeout=10, interval=0.05)
    assert relay.errors == ["dial failed: ConnectionRefusedError: pod port 6379 refused"]


class ForwardSocket:
    """Shaped like kubernetes.stream.ws_client.PortForward._Port._Socket: a wrapper
    around one end of a socket pair, forwarding attributes."""

    def __init__(self, sock: socket.socket) -> None:
        self._socket = sock

    def __getattr__(self, name):
        return getattr(self._socket, name)


def test_relay_works_with_port_forward_style_sockets():
    stop = threading.Event()
    workers = []

    def dial():
        ours, theirs = socket.socketpair()

        def remote() -> None:  # stands in for the pod's port
            with theirs:
                while not stop.is_set() and (data := theirs.recv(4096)):
                    theirs.sendall(b"pong:" + data)

        thread = threading.Thread(target=remote, daemon=True)
        thread.start()
        workers.append(thread)
        return ForwardSocket(ours)

    with Relay(dial) as relay, contextlib.closing(connect(relay.port)) as client:
        client.sendall(b"ping")
        assert recv_exactly(client, 9) == b"pong:ping"
    stop.set()
    for thread in workers:
        thread.join(timeout=5)


def test_stop_closes_listener_and_open_connections(echo):
    relay = Relay(lambda: socket.create_connection(("127.0.0.1", echo.port), timeout=10))
    port = relay.start()
    client = connect(port)
    client.sendall(b"x")
    assert recv_exactly(client, 1) == b"X"
    relay.stop()
    client.settimeout(10)
    assert client.recv(10) == b""
    client.close()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    assert all(not t.is_alive() for t in relay._threads)
