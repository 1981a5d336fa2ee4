"""Name pinning: reach ``https://kirchner.social`` at another address without /etc/hosts.

The suite talks to the kind cluster through the host's port mapping (say
127.0.0.1:8443) while every URL, Host header, SNI name and cookie keeps the real
host name. :class:`PinMap` is the pure mapping; :func:`pinned_session` builds a
``requests`` session whose connections consult it, and
:meth:`PinMap.websocket_kwargs` does the same for ``websockets``.

Trust is explicit and per session: the session verifies against the given CA
bundle only, ignores environment proxies and CA variables, and never turns
verification off.
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import NewConnectionError
from urllib3.util import connection as urllib3_connection

DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}


@dataclass(frozen=True)
class PinMap:
    """Maps ``(host, port)`` to the ``(address, port)`` to connect to.

    A pin for port ``None`` applies to every port of that host, keeping the port.

    >>> pins = PinMap({("kirchner.social", 443): ("127.0.0.1", 8443)})
    >>> pins.resolve("kirchner.social", 443)
    ('127.0.0.1', 8443)
    >>> pins.resolve("example.org", 443)
    ('example.org', 443)
    """

    pins: Mapping[tuple[str, int | None], tuple[str, int]] = field(default_factory=dict)

    def resolve(self, host: str, port: int) -> tuple[str, int]:
        host = host.rstrip(".").lower()
        if (host, port) in self.pins:
            return self.pins[(host, port)]
        if (host, None) in self.pins:
            return (self.pins[(host, None)][0], port)
        return (host, port)

    def is_pinned(self, host: str) -> bool:
        host = host.rstrip(".").lower()
        return any(h == host for h, _ in self.pins)

    def websocket_kwargs(self, uri: str) -> dict[str, object]:
        """Keyword arguments for ``websockets.connect`` that connect to the pinned
        address while the URI (Host header) and SNI keep the real name."""
        parts = urlsplit(uri)
        real_port = parts.port or DEFAULT_PORTS[parts.scheme]
        address, port = self.resolve(parts.hostname or "", real_port)
        if (address, port) == (parts.hostname, real_port):
            return {}
        kwargs: dict[str, object] = {"host": address, "port": port}
        if parts.scheme == "wss":
            kwargs["server_hostname"] = parts.hostname
        return kwargs

    @classmethod
    def for_hosts(
        cls, hosts: list[str], address: str, https_port: int = 443, http_port: int = 80
    ) -> PinMap:
        pins: dict[tuple[str, int | None], tuple[str, int]] = {}
        for host in hosts:
            pins[(host.lower(), 443)] = (address, https_port)
            pins[(host.lower(), 80)] = (address, http_port)
        return cls(pins)


def _connect(conn: HTTPConnection, pins: PinMap) -> socket.socket:
    address, port = pins.resolve(conn.host, conn.port or 0)
    try:
        return urllib3_connection.create_connection(
            (address, port),
            conn.timeout,
            source_address=conn.source_address,
            socket_options=conn.socket_options,
        )
    except OSError as exc:
        where = f"{conn.host}:{conn.port}"
        if (address, port) != (conn.host, conn.port):
            where += f" (pinned to {address}:{port})"
        raise NewConnectionError(conn, f"cannot connect to {where}: {exc}") from exc


def _pool_classes(pins: PinMap) -> dict[str, type]:
    class PinnedHTTPConnection(HTTPConnection):
        def _new_conn(self) -> socket.socket:
            return _connect(self, pins)

    class PinnedHTTPSConnection(HTTPSConnection):
        def _new_conn(self) -> socket.socket:
            return _connect(self, pins)

    class PinnedHTTPPool(HTTPConnectionPool):
        ConnectionCls = PinnedHTTPConnection

    class PinnedHTTPSPool(HTTPSConnectionPool):
        ConnectionCls = PinnedHTTPSConnection

    return {"http": PinnedHTTPPool, "https": PinnedHTTPSPool}


class PinnedAdapter(HTTPAdapter):
    """A requests adapter whose connections go where the :class:`PinMap` says."""

    def __init__(self, pins: PinMap, **kwargs: object) -> None:
        self._pins = pins
        super().__init__(**kwargs)  # type: ignore[arg-type]

    def init_poolmanager(self, *args: object, **kwargs: object) -> None:
        super().init_poolmanager(*args, **kwargs)  # type: ignore[arg-type]
        self.poolmanager.pool_classes_by_scheme = _pool_classes(self._pins)


def pinned_session(
    pins: PinMap | None = None,
    ca_file: Path | str | None = None,
    *,
    user_agent: str = "tootcheck",
) -> requests.Session:
    """A session that trusts ``ca_file`` only (or the system store when None),
    ignores proxy and CA environment variables, and honours ``pins``."""
    session = requests.Session()
    session.trust_env = False
    session.verify = str(ca_file) if ca_file else True
    session.headers["User-Agent"] = user_agent
    adapter = PinnedAdapter(pins or PinMap())
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def client_ssl_context(
    ca_file: Path | str | None = None,
    *,
    minimum: ssl.TLSVersion | None = None,
    maximum: ssl.TLSVersion | None = None,
) -> ssl.SSLContext:
    """A verifying client context trusting ``ca_file`` only (system store when None)."""
    context = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
    if minimum is not None:
        context.minimum_version = minimum
    if maximum is not None:
        context.maximum_version = maximum
    return context
