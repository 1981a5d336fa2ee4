"""Configuration enters once, here: command-line options > environment > defaults.

The pytest plugin builds one frozen :class:`Settings` at configure time and
exposes it as the ``settings`` fixture; :func:`active` returns it for code that
runs outside a fixture. Nothing else in the suite reads ``os.environ``.

Secret-valued settings (tokens, passwords) are read from ``*_FILE`` variables
or plain variables and wrapped in :class:`~tootcheck.redaction.Secret`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

from tootcheck.errors import BadInput
from tootcheck.redaction import Secret

ENV_PREFIX = "TOOTCHECK_"


@dataclass(frozen=True)
class Settings:
    # what to test
    target: str = "none"  # none | kind | live
    mode: str = "gate"  # gate | nightly | rehearsal
    domain: str = "kirchner.social"
    auth_host: str = "auth.kirchner.social"
    oidc_issuer: str = "https://auth.kirchner.social/application/o/mastodon/"
    namespace: str = "mastodon"
    # how to reach it
    base_url: str = ""
    connect_address: str = ""  # pin the host names to this address (kind: 127.0.0.1)
    https_port: int = 443
    http_port: int = 80
    ca_file: Path | None = None
    # make e2e APP=DIR: the operator's own apps/mastodon instead of the reference
    app_dir: Path | None = None
    kubeconfig: Path | None = None
    kube_context: str | None = None
    # kind lifecycle
    cluster_name: str = "tootcheck"
    reuse_cluster: bool = False
    keep_cluster: str = "on-failure"  # always | on-failure | never
    allow_destructive: bool = False
    allow_mutating: tuple[str, ...] = ()
    # no green without evidence: checks (fnmatch patterns) allowed not to run, rerun-only passes
    allow_missing: tuple[str, ...] = ()
    allow_flaky: bool = False
    # accounts and credentials for nightly mode (usernames as on the instance)
    test_username: str = "tootcheck_test"
    second_username: str = "tootcheck_second"
    admin_username: str = "tootcheck_admin"
    test_token: Secret | None = None
    second_token: Secret | None = None
    admin_token: Secret | None = None
    oidc_username: str = ""
    oidc_email: str = ""
    oidc_password: Secret | None = None
    # nightly drift: the git revision the live deployment came from
    revision: str = "HEAD"
    # upgrade rehearsal (tootcheck.rehearsal.plan validates them)
    rehearse_from: str = ""
    rehearse_to: str = ""
    rehearse_chart_from: str = ""  # app-template chart; empty: the pinned version
    rehearse_chart_to: str = ""
    rehearse_allow_migration_restart: bool = False  # a migration passing after a restart is ok
    rehearse_rollback: bool = False  # back up FROM, restore it after TO is verified
    rehearse_dump: Path | None = None  # the operator's dump restored into FROM
    rehearse_secrets: Path | None = None  # its secrets (env file or Secret manifest)
    seed_scale: int = 0  # rehearsal: N times a small instance seeded with rails runner
    # policy and reports
    policy_strict: bool = False
    policy_profile: str = ""  # baseline | hardened; empty: the policy config's
    reports_dir: Path = Path("reports")  # relative to the working directory
    # the suite's own tests: fail instead of skip when a local peer is missing
    strict_peers: bool = False
    extra: Mapping[str, str] = field(default_factory=dict)

    def with_(self, **changes: object) -> Settings:
        return replace(self, **changes)  # type: ignore[arg-type]


_BOOL = {"1": True, "true": True, "yes": True, "on": True, "0": False, "false": False,
         "no": False, "off": False, "": False}
_SECRET_FIELDS = {"test_token", "second_token", "admin_token", "oidc_password"}


def _parse(name: str, raw: str, kind: object) -> object:
    text = raw.strip()
    try:
        if kind is bool or kind == "bool":
            return _BOOL[text.lower()]
        if kind is int or kind == "int":
            return int(text)
    except (KeyError, ValueError):
        raise BadInput(f"{ENV_PREFIX}{name.upper()}={raw!r} is not a valid {kind}") from None
    if kind in ("Path | None", "Path"):
        return Path(text).expanduser() if text else None
    if kind == "tuple[str, ...]":
        return tuple(part.strip() for part in text.split(",") if part.strip())
    return text


def _read_secret(env: Mapping[str, str], name: str) -> Secret | None:
    key = f"{ENV_PREFIX}{name.upper()}"
    path = env.get(f"{key}_FILE")
    if path:
        try:
            value = Path(path).read_text().strip()
        except OSError as exc:
            raise BadInput(f"{key}_FILE={path}: cannot read: {exc.strerror}") from None
        return Secret(value, name)
    found = env.get(key)
    return Secret(found, name) if found else None


def load(
    options: Mapping[str, object] | None = None, env: Mapping[str, str] | None = None
) -> Settings:
    """Build Settings from options (already parsed) over the environment over defaults."""
    env = os.environ if env is None else env
    options = options or {}
    values: dict[str, object] = {}
    for f in fields(Settings):
        if f.name == "extra":
            continue
        if f.name in _SECRET_FIELDS:
            secret = _read_secret(env, f.name)
            if secret is not None:
                values[f.name] = secret
            continue
        raw = env.get(f"{ENV_PREFIX}{f.name.upper()}")
        if raw is not None:
            values[f.name] = _parse(f.name, raw, f.type)
    for key, value in options.items():
        if value is None:
            continue
        if key in _SECRET_FIELDS and isinstance(value, str):
            value = Secret(value, key)
        values[key] = value
    if values.get("target") == "live" and "mode" not in values:
        # The live instance is checked read-only unless the operator names the mode:
        # gate (the default elsewhere) would run the mutating checks against it.
        values["mode"] = "nightly"
    settings = Settings(**values)  # type: ignore[arg-type]
    _validate(settings)
    return settings


def _validate(s: Settings) -> None:
    if s.target not in ("none", "kind", "live"):
        raise BadInput(f"target must be none, kind or live, not {s.target!r}")
    if s.mode not in ("gate", "nightly", "rehearsal"):
        raise BadInput(f"mode must be gate, nightly or rehearsal, not {s.mode!r}")
    if s.keep_cluster not in ("always", "on-failure", "never"):
        raise BadInput(
            f"--tootcheck-keep-cluster must be always, on-failure or never, not {s.keep_cluster!r}")
    if s.base_url and not s.base_url.startswith("https://"):
        raise BadInput(f"base URL must be https://<host>, not {s.base_url!r}")
    if s.app_dir is not None and not (s.app_dir / "kustomization.yaml").is_file():
        raise BadInput(f"app dir {s.app_dir}: no kustomization.yaml (a kustomize directory such "
                       f"as apps/mastodon)")
    if s.ca_file is not None and not s.ca_file.is_file():
        raise BadInput(f"CA file {s.ca_file} does not exist")


_ACTIVE: Settings | None = None


def activate(settings: Settings | None) -> None:
    global _ACTIVE
    _ACTIVE = settings


def current() -> Settings | None:
    """The active settings, or None before any were loaded."""
    return _ACTIVE


def active() -> Settings:
    """The settings of the running session (defaults plus environment outside pytest)."""
    global _ACTIVE
    if _ACTIVE is None:
        _ACTIVE = load()
    return _ACTIVE
