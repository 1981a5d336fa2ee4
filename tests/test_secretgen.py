"""Per-run secrets: right formats and lengths, distinct per run, never printed."""

from __future__ import annotations

import base64
import logging
import re

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from py_vapid import Vapid

from tootcheck import secretgen
from tootcheck.errors import BadInput
from tootcheck.redaction import MASK, redact


@pytest.fixture(scope="module")
def run_secrets() -> secretgen.SecretSet:
    return secretgen.generate()


def test_every_spec_is_generated_and_well_formed(run_secrets):
    assert set(run_secrets) == set(secretgen.SPECS)
    for name in run_secrets:
        assert secretgen.format_problem(name, run_secrets[name].reveal()) is None, name


@pytest.mark.parametrize(("name", "pattern"), [
    ("SECRET_KEY_BASE", r"[0-9a-f]{128}"),
    ("OTP_SECRET", r"[0-9a-f]{128}"),
    ("ACTIVE_RECORD_ENCRYPTION_DETERMINISTIC_KEY", r"[A-Za-z0-9]{32}"),
    ("ACTIVE_RECORD_ENCRYPTION_KEY_DERIVATION_SALT", r"[A-Za-z0-9]{32}"),
    ("ACTIVE_RECORD_ENCRYPTION_PRIMARY_KEY", r"[A-Za-z0-9]{32}"),
    ("DB_PASS", r"[A-Za-z0-9]{32}"),
    ("REDIS_PASSWORD", r"[A-Za-z0-9]{32}"),
    ("OIDC_CLIENT_SECRET", r"[A-Za-z0-9]{64}"),
    ("AUTHENTIK_BOOTSTRAP_TOKEN", r"[A-Za-z0-9]{64}"),
])
def test_formats_match_what_mastodon_and_authentik_generate(run_secrets, name, pattern):
    assert re.fullmatch(pattern, run_secrets[name].reveal())


def test_authentik_secret_key_is_60_random_bytes_in_base64(run_secrets):
    raw = base64.b64decode(run_secrets["AUTHENTIK_SECRET_KEY"].reveal(), validate=True)
    assert len(raw) == 60


def test_vapid_pair_is_p256_and_matches(run_secrets):
    private = run_secrets["VAPID_PRIVATE_KEY"].reveal()
    public = run_secrets.vapid_public_key
    # URL-safe base64 with padding, as `rake mastodon:webpush:generate_vapid_key` prints
    assert len(private) == 44 and private.endswith("=") and "+" not in private and "/" not in private
    assert len(public) == 88 and public.endswith("=")
    point = base64.urlsafe_b64decode(public)
    assert len(point) == 65 and point[0] == 4  # uncompressed point
    # an independent implementation (py-vapid, what pywebpush uses) loads the private
    # key, and the public key derived from it is the one we publish
    vapid = Vapid.from_raw(private.rstrip("=").encode())
    derived = vapid.public_key.public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
    assert derived == point
    assert isinstance(vapid.private_key.curve, ec.SECP256R1)


def test_distinct_per_run(run_secrets):
    other = secretgen.generate()
    for name in run_secrets:
        assert run_secrets[name].reveal() != other[name].reveal(), name
    values = [run_secrets[n].reveal() for n in run_secrets]
    assert len(set(values)) == len(values), "two secrets of one run share a value"


def test_repr_str_and_format_never_show_values(run_secrets):
    texts = [repr(run_secrets), str(run_secrets), repr(dict(run_secrets.values)),
             f"{run_secrets['DB_PASS']}", "{}".format(run_secrets["OTP_SECRET"])]
    for name in run_secrets:
        value = run_secrets[name].reveal()
        for text in texts:
            assert value not in text


def test_log_lines_are_redacted(run_secrets, caplog):
    logger = logging.getLogger("tootcheck.test")
    with caplog.at_level(logging.INFO, logger="tootcheck.test"):
        for name in run_secrets:
            logger.info("applying %s=%s", name, run_secrets[name])
    for name in run_secrets:
        assert run_secrets[name].reveal() not in caplog.text
    # even a line that leaked a revealed value is masked by the report writers' redact()
    leaked = f"env SECRET_KEY_BASE={run_secrets['SECRET_KEY_BASE'].reveal()} rest"
    assert redact(leaked) == f"env SECRET_KEY_BASE={MASK} rest"


def test_secret_data_is_base64_of_the_values(run_secrets):
    data = run_secrets.secret_data(secretgen.MASTODON_SECRET_KEYS)
    assert set(data) == set(secretgen.MASTODON_SECRET_KEYS)
    assert secretgen.from_secret_data(data)["DB_PASS"] == run_secrets["DB_PASS"].reveal()


def test_complete_keeps_stored_values_and_fills_gaps(run_secrets):
    stored = {n: run_secrets[n].reveal() for n in ("SECRET_KEY_BASE", "DB_PASS")}
    stored["SOMETHING_OLD"] = "ignored-value"
    merged, generated = secretgen.complete(stored)
    assert merged["SECRET_KEY_BASE"].reveal() == stored["SECRET_KEY_BASE"]
    assert merged["DB_PASS"].reveal() == stored["DB_PASS"]
    assert "SECRET_KEY_BASE" not in generated and "OTP_SECRET" in generated
    assert set(merged) == set(secretgen.SPECS)


def test_complete_keeps_a_stored_vapid_pair(run_secrets):
    stored = {n: run_secrets[n].reveal() for n in ("VAPID_PRIVATE_KEY", "VAPID_PUBLIC_KEY")}
    merged, generated = secretgen.complete(stored)
    assert merged.vapid_public_key == run_secrets.vapid_public_key
    assert "VAPID_PUBLIC_KEY" not in generated


def test_malformed_stored_value_is_bad_input_without_the_value():
    with pytest.raises(BadInput) as info:
        secretgen.complete({"SECRET_KEY_BASE": "short-but-secret-value"})
    assert "SECRET_KEY_BASE: malformed" in str(info.value)
    assert "short-but-secret-value" not in str(info.value)


def test_undecodable_secret_data_is_bad_input():
    with pytest.raises(BadInput, match="DB_PASS"):
        secretgen.from_secret_data({"DB_PASS": "%%%"})
