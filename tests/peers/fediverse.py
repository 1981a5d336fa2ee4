"""The in-cluster fediverse peer, run here as it runs in the pod: ``python fediverse_peer.py``.

The program file is executed as a script in a child process (no tootcheck import path),
on 127.0.0.1 with free ports and a TLS certificate from a local test CA, so what the
self-tests prove is the file the ConfigMap carries. ``stop()`` ends it by its handle.
"""

from __future__ import annotations

import json
import queue
import subprocess
import sys
import threading
from pathlib import Path

from tootcheck.clients.activitypub import PeerAdmin
from tootcheck.clients.pinning import PinMap
from tootcheck.peers import fediverse_peer
from tootcheck.waiting import Poll, wait_until

PROGRAM = Path(fediverse_peer.__file__)
PUBLIC_HOST = "fedi.peer.test"


class FediversePeer:
    def __init__(self, cert: Path, key: Path, host: str = PUBLIC_HOST) -> None:
        self.host = host
        self.public_url = f"https://{host}"
        self.process = subprocess.Popen(
            [sys.executable, "-I", str(PROGRAM), "--public-url", self.public_url,
             "--bind", "127.0.0.1", "--port", "0", "--admin-port", "0",
             "--tls-cert", str(cert), "--tls-key", str(key)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        self._lines: queue.Queue[str] = queue.Queue()
        self._stderr: list[str] = []
        threading.Thread(target=self._pump, args=(self.process.stdout, self._lines.put), daemon=True).start()
        threading.Thread(target=self._pump, args=(self.process.stderr, self._stderr.append),
                         daemon=True).start()
        try:
            announced = wait_until(self._announced, what="the fediverse peer to listen",
                                   timeout="peer-start", interval=0.05)
        except BaseException:
            self.stop()  # a peer that never announced itself is not left running
            raise
        assert announced is not None
        self.public_port = int(announced["public_port"])
        self.admin_port = int(announced["admin_port"])
        self.admin = PeerAdmin(f"http://127.0.0.1:{self.admin_port}")

    @staticmethod
    def _pump(stream, sink) -> None:
        for line in stream:
            sink(line)

    def _announced(self) -> Poll[dict]:
        if self.process.poll() is not None:
            raise RuntimeError(f"peer exited {self.process.returncode}: {''.join(self._stderr)[-500:]}")
        try:
            return Poll(True, json.loads(self._lines.get_nowait()))
        except queue.Empty:
            return Poll(False, state="no announcement yet")

    @property
    def pins(self) -> PinMap:
        """Reach https://<host> (port 443) at the peer's public port."""
        return PinMap({(self.host, 443): ("127.0.0.1", self.public_port)})

    @property
    def log(self) -> str:
        return "".join(self._stderr)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
