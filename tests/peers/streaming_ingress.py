"""TLS termination and path routing on one port, like the Traefik Ingress of the reference
deployment (``/api/v1/streaming`` to the streaming server, ``/`` to REST)."""

from __future__ import annotations

import asyncio
import contextlib
import ssl

from tests.peers.streaming_broker import STOP_TIMEOUT_S


class Ingress:
    """TLS termination and path routing on one port, like the Traefik Ingress.

    Routes by the first request of each connection (path prefix, element-wise);
    forwards plain HTTP with ``Connection: close`` so one connection carries
    one request, and pipes WebSocket upgrades through untouched.
    """

    def __init__(self, server_ssl: ssl.SSLContext, routes: dict[str, tuple[str, int]]) -> None:
        self.server_ssl = server_ssl
        self.routes = dict(sorted(routes.items(), key=lambda kv: -len(kv[0])))
        self.port = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0,
                                                  ssl=self.server_ssl)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=STOP_TIMEOUT_S)
        if self._server is not None:
            await self._server.wait_closed()

    def route(self, path: str) -> tuple[str, int] | None:
        for prefix, backend in self.routes.items():
            if prefix == "/" or path == prefix or path.startswith(prefix.rstrip("/") + "/"):
                return backend
        return None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        backend_writer: asyncio.StreamWriter | None = None
        try:
            try:
                async with asyncio.timeout(10):
                    head = await reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError,
                    ConnectionError, ssl.SSLError):
                return
            request_line, *lines = head[:-4].split(b"\r\n")
            parts = request_line.split(b" ")
            path = parts[1].split(b"?", 1)[0].decode("latin-1") if len(parts) == 3 else ""
            backend = self.route(path)
            if backend is None:
                writer.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n"
                             b"Connection: close\r\n\r\n")
                return
            if not any(line.lower().startswith(b"upgrade:") for line in lines):
                lines = [line for line in lines if not line.lower().startswith(b"connection:")]
                lines.append(b"Connection: close")
            try:
                backend_reader, backend_writer = await asyncio.open_connection(*backend)
            except OSError:
                writer.write(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n"
                             b"Connection: close\r\n\r\n")
                return
            backend_writer.write(b"\r\n".join([request_line, *lines]) + b"\r\n\r\n")
            upstream = asyncio.create_task(self._pipe(reader, backend_writer, half_close=True))
            await self._pipe(backend_reader, writer, half_close=False)
            upstream.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await upstream
        finally:
            for stream_writer in (backend_writer, writer):
                if stream_writer is not None:
                    stream_writer.close()
            self._tasks.discard(task)

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                    *, half_close: bool) -> None:
        try:
            while chunk := await reader.read(65536):
                writer.write(chunk)
                await writer.drain()
            if half_close and writer.can_write_eof():
                writer.write_eof()
        except (ConnectionError, ssl.SSLError, OSError):
            return
