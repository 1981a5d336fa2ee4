"""A copy of production: the operator's secrets (env file or Secret manifest), their
dump restored into a real PostgreSQL (plain SQL and custom format, gzip or not), and
the decrypt probe's verdict when the secrets do not match the dump."""

from __future__ import annotations

import base64
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest

from tests.peers.databases import PostgresPeer
from tootcheck.errors import BadInput
from tootcheck.redaction import Secret
from tootcheck.rehearsal import production
from tootcheck.rehearsal.plan import ENCRYPTION_KEYS, v

KEYS = {"SECRET_KEY_BASE": "a" * 128, "OTP_SECRET": "b" * 128,
        **{k: "c" * 32 for k in ENCRYPTION_KEYS}}


def test_env_file_and_secret_manifest_give_the_same_secrets(tmp_path: Path) -> None:
    env = tmp_path / "production.env"
    env.write_text("# .env.production\n" + "\n".join(
        f"export {k}='{val}'" if k == "OTP_SECRET" else f"{k}={val}" for k, val in KEYS.items()))
    manifest = tmp_path / "secret.yaml"
    manifest.write_text("apiVersion: v1\nkind: Secret\nmetadata: {name: mastodon-secrets}\n"
                        "data:\n" + "".join(f"  {k}: {base64.b64encode(val.encode()).decode()}\n"
                                            for k, val in KEYS.items() if k != "OTP_SECRET")
                        + f"stringData:\n  OTP_SECRET: {KEYS['OTP_SECRET']}\n")
    for path in (env, manifest):
        secrets = production.load_secrets(path, v("v4.3.9"))
        assert {k: s.reveal() for k, s in secrets.items()} == KEYS
        assert KEYS["SECRET_KEY_BASE"] not in repr(secrets)


@pytest.mark.parametrize(("source", "missing"), [
    ("v4.2.10", "OTP_SECRET"), ("v4.3.9", "ACTIVE_RECORD_ENCRYPTION_PRIMARY_KEY"),
])
def test_missing_secrets_are_named_in_one_line(tmp_path: Path, source: str, missing: str) -> None:
    path = tmp_path / "s.env"
    path.write_text("\n".join(f"{k}={val}" for k, val in KEYS.items() if k != missing))
    with pytest.raises(BadInput) as refused:
        production.load_secrets(path, v(source))
    assert missing in str(refused.value) and "\n" not in str(refused.value)
    assert KEYS["SECRET_KEY_BASE"] not in str(refused.value)


def test_what_each_from_needs() -> None:
    assert "OTP_SECRET" in production.required_secrets(v("v4.3.0"))
    assert "OTP_SECRET" not in production.required_secrets(v("v4.5.0"))
    assert not set(ENCRYPTION_KEYS) & set(production.required_secrets(v("v4.2.10")))


def test_bad_secret_files(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text("apiVersion: v1\nkind: ConfigMap\ndata: {}\n")
    with pytest.raises(BadInput, match="must be kind: Secret"):
        production.load_secrets(path, v("v4.6.0"))
    path.write_text("not a line\n")
    with pytest.raises(BadInput, match="not KEY=value"):
        production.load_secrets(path, v("v4.6.0"))
    with pytest.raises(BadInput, match=r"SECRETS .*missing"):
        production.load_secrets(tmp_path / "missing", v("v4.6.0"))


@pytest.fixture(scope="module")
def restore_peer(make_postgres: Callable[[], PostgresPeer]) -> PostgresPeer:
    """One PostgreSQL for the restores; each test drops its two databases when done."""
    return make_postgres()


@pytest.fixture
def peer(restore_peer: PostgresPeer) -> Iterator[PostgresPeer]:
    yield restore_peer
    with psycopg.connect(restore_peer.dsn(), autocommit=True) as conn:
        for name in ("production_copy", "mastodon_production"):
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.mark.parametrize("fmt", ["plain.gz", "custom", "plain"])
def test_the_operators_dump_is_restored(peer: PostgresPeer, tmp_path: Path, fmt: str) -> None:
    source = peer.create_database("production_copy")
    with psycopg.connect(source, autocommit=True) as conn:
        conn.execute("CREATE TABLE accounts (id bigint PRIMARY KEY, username text, uri text)")
        conn.execute("INSERT INTO accounts SELECT g, 'user' || g, 'https://x/' || (g % 50) "
                     "FROM generate_series(1, 500) g")  # duplicate uris, as production has
    dump = tmp_path / ("prod.sql.gz" if fmt == "plain.gz" else "prod.dump" if fmt == "custom"
                       else "prod.sql")
    pg_dump = [str(peer.bin_dir / "pg_dump"), "--dbname", source, "--no-owner"]
    if fmt == "custom":
        subprocess.run([*pg_dump, "--format=custom", "--file", str(dump)], check=True, timeout=60)
    else:
        plain = subprocess.run([*pg_dump, "--format=plain"], check=True, capture_output=True,
                               timeout=60).stdout
        if fmt == "plain.gz":
            import gzip
            dump.write_bytes(gzip.compress(plain))
        else:
            dump.write_bytes(plain)
    assert production.dump_format(dump) == ("custom" if fmt == "custom" else "plain")
    target = peer.create_database("mastodon_production")
    production.restore_dump(dump, Secret(target, "url"), bin_dir=str(peer.bin_dir))
    with psycopg.connect(target) as conn:
        assert conn.execute("SELECT count(*), count(DISTINCT uri) FROM accounts").fetchone() == (500, 50)
    with pytest.raises(BadInput, match=r"restore failed: .*already exists"):
        production.restore_dump(dump, Secret(target, "url"),
                                bin_dir=str(peer.bin_dir))


def test_the_url_stays_out_of_argv(tmp_path: Path) -> None:
    dump = tmp_path / "d.sql"
    dump.write_text("SELECT 1;\n")
    argv = production.restore_dump_argv(dump)
    assert argv[0] == "bash" and "$DATABASE_URL" in argv[2] and "psql" in argv[2]


@pytest.mark.parametrize(("output", "source", "ok", "says"), [
    ("tootcheck-decrypt 12 0 -\n", "v4.5.0", True, "12 2FA secrets decrypt"),
    ("warming up\ntootcheck-decrypt 12 3 ActiveRecord::Encryption::Errors::Decryption\n",
     "v4.5.0", False, "3 of 12 2FA secrets fail to decrypt"),
    ("tootcheck-decrypt 4 4 OpenSSL::Cipher::CipherError", "v4.2.10", False, "OTP_SECRET must"),
    ("tootcheck-decrypt 0 0 -", "v4.6.0", True, "could not be proven"),
    ("NameError: uninitialized constant User", "v4.6.0", False, "gave no verdict (NameError"),
])
def test_decrypt_probe_verdicts(output: str, source: str, ok: bool, says: str) -> None:
    verdict, line = production.judge_decrypt(output, v(source))
    assert verdict is ok and says in line and "\n" not in line
    assert production.PROBE_ARGV[:2] == ("bin/rails", "runner")
