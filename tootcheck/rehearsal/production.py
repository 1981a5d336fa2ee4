"""Rehearsing on a copy of production: the operator's dump and secrets.

``make rehearse FROM=… TO=… DUMP=path.sql.gz SECRETS=path`` restores the operator's
own database dump into the FROM deployment, with the operator's secrets, so the
encrypted columns (2FA secrets: ActiveRecord encryption from 4.3, OTP_SECRET before)
decrypt as they do in production, and the failures only real data shows (duplicate
accounts, a corrupted index) show here first.

- :func:`load_secrets`: an env file (``KEY=value``) or a Secret manifest (``data`` or
  ``stringData``); one line naming what is missing for FROM, never a value;
- :func:`restore_dump_argv` / :func:`restore_dump`: ``gunzip -c`` (for ``.gz``) piped
  into ``psql --set ON_ERROR_STOP=1`` (plain SQL) or ``pg_restore`` (custom format);
- :data:`DECRYPT_PROBE` and :func:`judge_decrypt`: a ``rails runner`` script that reads
  every 2FA secret and counts what fails to decrypt; its one output line is judged
  into the clear line an operator needs when the secrets do not match the dump.
"""

from __future__ import annotations

import gzip
import re
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

import yaml

from tootcheck.errors import BadInput
from tootcheck.redaction import Secret
from tootcheck.rehearsal.renders import ENCRYPTION_KEYS, Release

ALWAYS = ("SECRET_KEY_BASE",)
_LINE = re.compile(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*?)\s*$")


def required_secrets(source: Release) -> tuple[str, ...]:
    """What FROM needs to read its own data: the encryption keys from 4.3 on,
    OTP_SECRET before 4.4 (4.3's migration of the 2FA secrets reads it)."""
    names = list(ALWAYS)
    if source.line >= (4, 3):
        names += ENCRYPTION_KEYS
    if source.line < (4, 4):
        names.append("OTP_SECRET")
    return tuple(names)


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1]
    return value


def parse_secrets(text: str, where: str) -> dict[str, Secret]:
    """An env file or a Kubernetes Secret manifest, as Secrets (never printed)."""
    stripped = text.lstrip()
    if stripped.startswith(("apiVersion", "kind", "---", "{")) or "\nkind:" in text:
        try:
            doc = next((d for d in yaml.safe_load_all(text) if d), None)
        except yaml.YAMLError as exc:
            raise BadInput(f"{where}: not a Secret manifest ({' '.join(str(exc).split())[:120]})"
                           ) from None
        if not isinstance(doc, Mapping) or doc.get("kind") != "Secret":
            raise BadInput(f"{where}: a manifest must be kind: Secret")
        import base64

        out: dict[str, Secret] = {}
        for key, value in (doc.get("data") or {}).items():
            try:
                out[key] = Secret(base64.b64decode(str(value), validate=True).decode(), key)
            except (ValueError, UnicodeDecodeError):
                raise BadInput(f"{where}: data.{key} is not base64 text") from None
        for key, value in (doc.get("stringData") or {}).items():
            out[key] = Secret(str(value), key)
        return out
    out = {}
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        match = _LINE.match(line)
        if not match:
            raise BadInput(f"{where}:{n}: not KEY=value")
        out[match[1]] = Secret(_unquote(match[2]), match[1])
    return out


def load_secrets(path: Path, source: Release) -> dict[str, Secret]:
    """The operator's secrets for FROM; BadInput (one line) when unreadable or incomplete."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise BadInput(f"SECRETS {path}: {exc.strerror or exc}") from None
    secrets = parse_secrets(text, f"SECRETS {path}")
    missing = [n for n in required_secrets(source) if not (secrets.get(n) and secrets[n].reveal())]
    if missing:
        raise BadInput(f"SECRETS {path} lacks {', '.join(missing)}: {source} cannot read the "
                       "dump's encrypted columns without the production values")
    return secrets


# ------------------------------------------------------------------ the dump


def dump_format(path: Path) -> str:
    """``custom`` (pg_dump -Fc, magic PGDMP) or ``plain`` (SQL), gzip or not."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as handle:
            head = handle.read(5)
    except (OSError, EOFError) as exc:
        raise BadInput(f"DUMP {path}: {exc}") from None
    return "custom" if head == b"PGDMP" else "plain"


def restore_dump_argv(path: Path, url_env: str = "DATABASE_URL", *, bin_dir: str = "") -> list[str]:
    """A shell pipeline restoring ``path`` into the database ``$url_env`` names (the URL
    with its password stays in the environment, out of argv and logs)."""
    def tool(name: str) -> str:
        return str(Path(bin_dir) / name) if bin_dir else name

    fmt = dump_format(path)
    cat = "gunzip -c" if path.suffix == ".gz" else "cat"
    if fmt == "custom":
        sink = f'{tool("pg_restore")} --exit-on-error --no-owner --dbname "${url_env}"'
    else:
        sink = f'{tool("psql")} --quiet --no-psqlrc --set ON_ERROR_STOP=1 "${url_env}"'
    return ["bash", "-c", f'set -o pipefail; {cat} -- "$1" | {sink}', "restore",
            str(path)]


def restore_dump(path: Path, url: Secret, *, bin_dir: str = "", timeout: float = 7200.0) -> None:
    """Restore the operator's dump (through a port-forward in a rehearsal); BadInput with
    the tool's last lines when it fails."""
    import os

    argv = restore_dump_argv(path, bin_dir=bin_dir)
    try:
        done = subprocess.run(argv, env={**os.environ, "DATABASE_URL": url.reveal()},
                              capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise BadInput(f"DUMP {path}: the restore did not finish within {timeout:.0f}s") from None
    if done.returncode != 0:
        lines = [ln.strip() for ln in (done.stderr or done.stdout).splitlines() if ln.strip()]
        errors = [ln for ln in lines if "ERROR" in ln or "error:" in ln.lower()]
        shown = (errors or lines)[:2] if errors else lines[-2:]
        raise BadInput(f"DUMP {path}: restore failed: {' | '.join(shown) or 'no output'}")


# -------------------------------------------------------- decrypt probe

# Run with `bin/rails runner` in the web container at FROM, after the restore. Prints
# one line: "tootcheck-decrypt <users with 2FA> <failing> <first error class>".
DECRYPT_PROBE = """\
checked = 0; failed = 0; first = '-'
User.where(otp_required_for_login: true).find_each do |user|
  checked += 1
  begin
    user.otp_secret
  rescue ActiveRecord::Encryption::Errors::Decryption, OpenSSL::Cipher::CipherError => e
    failed += 1; first = e.class.name if first == '-'
  end
end
puts "tootcheck-decrypt #{checked} #{failed} #{first}"
"""
PROBE_ARGV = ("bin/rails", "runner", DECRYPT_PROBE)
_PROBE_OUT = re.compile(r"^tootcheck-decrypt (\d+) (\d+) (\S+)$", re.M)


def judge_decrypt(output: str, source: Release) -> tuple[bool, str]:
    """(ok, one line) from the probe's output."""
    match = _PROBE_OUT.search(output or "")
    if not match:
        tail = [ln for ln in (output or "").splitlines() if ln.strip()][-1:]
        return False, ("the decrypt probe gave no verdict (" + (tail[0][:160] if tail else
                                                                "no output") + ")")
    checked, failed, first = int(match[1]), int(match[2]), match[3]
    if failed:
        keys = ("the ACTIVE_RECORD_ENCRYPTION_* keys" if source.line >= (4, 3)
                else "OTP_SECRET")
        return False, (f"the secrets do not match the dump: {failed} of {checked} 2FA secrets "
                       f"fail to decrypt ({first}); {keys} must be production's")
    if checked == 0:
        return True, "no 2FA user in the dump: the secrets could not be proven (nothing to decrypt)"
    return True, f"the secrets match the dump: {checked} 2FA secrets decrypt"


def overrides(secrets: Mapping[str, Secret], names: Sequence[str]) -> dict[str, str]:
    """The operator's values for the run's secret names they provide (plain, for the
    bring-up's Secret; never logged)."""
    return {n: secrets[n].reveal() for n in names if n in secrets}
