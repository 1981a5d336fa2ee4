"""Port-forward to a pod: the kubernetes client's portforward plus a local TCP relay.

``port_forward(target, pod_selector, remote_port)`` is a context manager yielding
a port on 127.0.0.1; every connection to it is relayed over a fresh Kubernetes
port-forward stream to ``remote_port`` of a Ready pod matching the selector. The
relay (:class:`Relay`) knows nothing of Kubernetes: it takes a ``dial()`` that
returns a connected socket-like object, so it is tested locally against plain
TCP servers and socket pairs.
"""

from __future__ import annotations

import contextlib
import select
import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any

from tootcheck.kube.pods import kube_for, ready_pod
from tootcheck.target import Target
from tootcheck.waiting import wait_until

CHUNK = 65536
TICK_S = 0.5  # how often idle threads look at the stop flag
STOP_TIMEOUT_S = 10.0

Dial = Callable[[], Any]  # returns an object with recv/sendall/shutdown/close/fileno


class Relay:
    """A local listener whose connections are piped to upstreams from ``dial``."""

    def __init__(self, dial: Dial, host: str = "127.0.0.1", port: int = 0) -> None:
        self._dial = dial
        self._address = (host, port)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None
        self._threads: list[threading.Thread] = []
        self._open: set[Any] = set()
        self.accepted = 0
        self.active = 0
        self.errors: list[str] = []

    @property
    def port(self) -> int:
        assert self._listener is not None, "relay not started"
        return int(self._listener.getsockname()[1])

    def start(self) -> int:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(self._address)
        listener.listen(16)
        listener.settimeout(TICK_S)
        self._listener = listener
        self._spawn(self._accept_loop, "relay-accept")
        return self.port

    def stop(self) -> None:
        self._stop.set()
        with self._lock:
            for sock in list(self._open):
                with contextlib.suppress(OSError):
                    sock.close()
        if self._listener is not None:
            with contextlib.suppress(OSError):
                self._listener.shutdown(socket.SHUT_RDWR)  # wakes a blocked accept (Linux)
            with contextlib.suppress(OSError):
                self._listener.close()
        for thread in list(self._threads):
            thread.join(timeout=STOP_TIMEOUT_S)

    def __enter__(self) -> Relay:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- internals

    def _spawn(self, target: Callable[..., None], name: str, *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _track(self, *socks: Any) -> None:
        with self._lock:
            self._open.update(socks)

    def _untrack(self, *socks: Any) -> None:
        with self._lock:
            for sock in socks:
                self._open.discard(sock)
                with contextlib.suppress(OSError):
                    sock.close()

    def _accept_loop(self) -> None:
        assert self._listener is not None
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return  # listener closed by stop()
            with self._lock:
                self.accepted += 1
                self.active += 1
            self._spawn(self._serve, f"relay-conn-{self.accepted}", client)

    def _serve(self, client: socket.socket) -> None:
        upstream = None
        try:
            try:
                upstream = self._dial()
            except Exception as exc:  # a failed dial closes this connection only
                with self._lock:
                    self.errors.append(f"dial failed: {type(exc).__name__}: {exc}")
                return
            self._track(client, upstream)
            self._pump(client, upstream)
        finally:
            self._untrack(*(s for s in (client, upstream) if s is not None))
            with self._lock:
                self.active -= 1

    def _pump(self, client: socket.socket, upstream: Any) -> None:
        """Copy bytes both ways; a side's EOF half-closes the other; ends when both
        directions are done or the relay stops."""
        peer = {client: upstream, upstream: client}
        reading = [client, upstream]
        while reading and not self._stop.is_set():
            try:
                ready, _, _ = select.select(reading, [], [], TICK_S)
            except (OSError, ValueError):
                return
            for sock in ready:
                try:
                    data = sock.recv(CHUNK)
                except OSError:
                    return
                other = peer[sock]
                if not data:
                    reading.remove(sock)
                    with contextlib.suppress(OSError):
                        other.shutdown(socket.SHUT_WR)
                    continue
                try:
                    other.sendall(data)
                except OSError:
                    return


def dial_pod(kube: Any, namespace: str, pod: str, remote_port: int) -> Dial:
    """A dialer opening one Kubernetes port-forward stream per connection."""
    from kubernetes.stream import portforward

    def dial() -> Any:
        forward = portforward(kube.core.connect_get_namespaced_pod_portforward, pod, namespace,
                              ports=str(remote_port))
        sock = forward.socket(remote_port)
        sock._forward = forward  # keep the websocket (and its proxy thread) alive
        return sock

    return dial


@contextlib.contextmanager
def port_forward(target: Target, pod_selector: str, remote_port: int, *,
                 ready_timeout: float = 30.0) -> Iterator[int]:
    """Yield a local port on 127.0.0.1 forwarded to ``remote_port`` of a Ready pod
    matching ``pod_selector`` in the target's namespace."""
    kube = kube_for(target)
    pod = ready_pod(kube, target.namespace, pod_selector)
    dial = dial_pod(kube, target.namespace, pod, remote_port)
    # one bounded dial up front, so a refused stream fails here and not in the test
    first = wait_until(lambda: dial(), what=f"port-forward to {pod}:{remote_port}",
                       timeout=ready_timeout, interval=1.0, retry_on=(Exception,))
    if first is not None:
        with contextlib.suppress(OSError):
            first.close()
    relay = Relay(dial)
    port = relay.start()
    try:
        yield port
    finally:
        relay.stop()
