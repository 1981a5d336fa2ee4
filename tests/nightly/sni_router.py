"""One HTTPS port for several hosts: TLS passthrough routed by the ClientHello's
server name, like a Traefik entrypoint with ``HostSNI`` TCP routers.

The live target pins every host (``kirchner.social`` and ``auth.kirchner.social``) to
one ``--connect-address``/``--https-port``, as production does with one Traefik; this
router puts the OIDC peers, each a TLS server of its own, behind that one port. It
never terminates TLS: the client verifies each peer's own certificate.
"""

from __future__ import annotations

import contextlib
import select
import socket
import struct
import threading
from collections.abc import Mapping

TICK_S = 0.2
HELLO_TIMEOUT_S = 5.0
MAX_RECORD = 16384 + 2048


def server_name(record: bytes) -> str | None:
    """The SNI host name of a TLS ClientHello record, or None (malformed, no SNI)."""
    try:
        if record[0] != 0x16 or record[5] != 0x01:  # handshake record, ClientHello
            return None
        at = 5 + 4 + 2 + 32  # record header, handshake header, version, random
        at += 1 + record[at]  # session id
        (suites,) = struct.unpack_from("!H", record, at)
        at += 2 + suites
        at += 1 + record[at]  # compression methods
        (ext_total,) = struct.unpack_from("!H", record, at)
        at += 2
        end = at + ext_total
        while at + 4 <= end:
            kind, length = struct.unpack_from("!HH", record, at)
            at += 4
            if kind == 0:  # server_name: list length, type 0 (host_name), name length, name
                name_type, name_length = struct.unpack_from("!BH", record, at + 2)
                if name_type == 0:
                    return record[at + 5:at + 5 + name_length].decode("ascii").lower()
            at += length
    except (IndexError, struct.error, UnicodeDecodeError):
        return None
    return None


class SniRouter:
    """Listens on 127.0.0.1; each connection goes to ``routes[sni]`` (host, port)."""

    def __init__(self, routes: Mapping[str, tuple[str, int]]) -> None:
        self.routes = {name.lower(): backend for name, backend in routes.items()}
        self._stop = threading.Event()
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(32)
        self._listener.settimeout(TICK_S)
        self.port: int = self._listener.getsockname()[1]
        self.routed: list[str] = []
        self._threads: list[threading.Thread] = []
        self._spawn(self._accept_loop)

    def _spawn(self, target, *args) -> None:  # type: ignore[no-untyped-def]
        thread = threading.Thread(target=target, args=args, daemon=True,
                                  name=f"sni-router-{self.port}")
        self._threads.append(thread)
        thread.start()

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self._spawn(self._serve, client)

    def _hello(self, client: socket.socket) -> bytes:
        client.settimeout(HELLO_TIMEOUT_S)
        data = b""
        while len(data) < 5 or len(data) < 5 + struct.unpack_from("!H", data, 3)[0]:
            chunk = client.recv(MAX_RECORD)
            if not chunk or len(data) > MAX_RECORD:
                break
            data += chunk
        return data

    def _serve(self, client: socket.socket) -> None:
        upstream = None
        try:
            hello = self._hello(client)
            name = server_name(hello)
            backend = self.routes.get(name or "")
            if backend is None:
                return  # no route: close, as Traefik does for an unknown HostSNI
            self.routed.append(name or "")
            upstream = socket.create_connection(backend, timeout=HELLO_TIMEOUT_S)
            upstream.sendall(hello)
            self._pump(client, upstream)
        except OSError:
            return
        finally:
            for sock in (client, upstream):
                if sock is not None:
                    with contextlib.suppress(OSError):
                        sock.close()

    def _pump(self, client: socket.socket, upstream: socket.socket) -> None:
        peer = {client: upstream, upstream: client}
        reading = [client, upstream]
        while reading and not self._stop.is_set():
            ready, _, _ = select.select(reading, [], [], TICK_S)
            for sock in ready:
                data = sock.recv(65536)
                if not data:
                    reading.remove(sock)
                    with contextlib.suppress(OSError):
                        peer[sock].shutdown(socket.SHUT_WR)
                    continue
                peer[sock].sendall(data)

    def stop(self) -> None:
        self._stop.set()
        with contextlib.suppress(OSError):
            self._listener.close()
        for thread in self._threads:
            thread.join(timeout=2)
