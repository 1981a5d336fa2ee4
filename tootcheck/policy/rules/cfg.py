"""Mastodon configuration (MSTDN-CFG-*), read from each container's merged environment.

Values are known only for ConfigMap entries and literal env values; for Secret
entries only the key's presence is known, and that is all the rules use.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlparse

from tootcheck.model import Severity
from tootcheck.policy.envmerge import MergedEnv
from tootcheck.policy.k8s import WORKLOAD_KINDS, Container, mastodon_containers
from tootcheck.policy.registry import rule
from tootcheck.policy.rules._common import role_in, web_container
from tootcheck.policy.types import Context, Hit, Subject

E, W = Severity.ERROR, Severity.WARN
RAILS = ("web", "sidekiq", "migrate", "mastodon")
MASTODON = (*RAILS, "streaming")
AR_KEYS = ("ACTIVE_RECORD_ENCRYPTION_DETERMINISTIC_KEY",
           "ACTIVE_RECORD_ENCRYPTION_KEY_DERIVATION_SALT", "ACTIVE_RECORD_ENCRYPTION_PRIMARY_KEY")
CONFIG_MD = "mastodon/documentation content/en/admin/config.md"
SSO_MD = "mastodon/documentation content/en/admin/optional/sso.md"


def _set(env: MergedEnv, name: str) -> bool:
    """Defined and not known to be empty (a Secret key counts as set)."""
    var = env.get(name)
    return var is not None and ((var.value is None and var.source in ("secret", "field"))
                                or bool(var.value))


def _env_path(c: Container, env: MergedEnv, name: str) -> tuple[Any, ...]:
    var = env.get(name)
    return var.path if var else c.field("env")


def _version(c: Container) -> tuple[int, ...] | None:
    return c.image.version


@rule("MSTDN-CFG-001", E, "Mastodon containers get every required setting for their version",
      profile="baseline", kinds=WORKLOAD_KINDS, scope="container", applies=role_in(*MASTODON),
      remediation="Provide the missing keys (ConfigMap for plain settings, the Secret for "
                  "secrets); from v4.3 generate ACTIVE_RECORD_ENCRYPTION_* with "
                  "bin/rails db:encryption:init.",
      refs=(CONFIG_MD, "mastodon config/initializers/active_record_encryption.rb (aborts without "
            "the keys from 4.3, mastodon/mastodon#30100)", "mastodon CHANGELOG 4.4.0 "
            "(OTP_SECRET removed, #34743)", "mastodon lib/tasks/db.rake"))
def required_settings(s: Subject, ctx: Context) -> Iterator[Hit]:
    """Rails processes abort or misbehave without LOCAL_DOMAIN, SECRET_KEY_BASE,
    VAPID_PRIVATE_KEY/VAPID_PUBLIC_KEY, the database (DB_HOST, DB_USER, DB_NAME,
    DB_PASS, or DATABASE_URL) and Redis (REDIS_HOST or REDIS_URL); from 4.3 the three
    ACTIVE_RECORD_ENCRYPTION_* keys are mandatory, before 4.4 OTP_SECRET is. The
    streaming server needs the database and Redis settings."""
    c = s.container
    assert c is not None
    env = ctx.env(c)
    version = _version(c)
    required: list[str] = []
    if c.role != "streaming":
        required += ["LOCAL_DOMAIN", "SECRET_KEY_BASE", "VAPID_PRIVATE_KEY", "VAPID_PUBLIC_KEY"]
        if version is None or version[:2] >= (4, 3):
            required += list(AR_KEYS)
        if version is not None and version[:2] < (4, 4):
            required.append("OTP_SECRET")
    if not _set(env, "DATABASE_URL"):
        required += ["DB_HOST", "DB_USER", "DB_NAME", "DB_PASS"]
    if not _set(env, "REDIS_URL"):
        required.append("REDIS_HOST")
    missing = [k for k in required if not _set(env, k)]
    if missing:
        shown = "v" + ".".join(map(str, version)) if version else "unknown version"
        yield Hit(f"{c.role} ({shown}) lacks {', '.join(missing)}", c.field("envFrom"))


def _host_only(value: str) -> bool:
    return bool(re.fullmatch(r"[a-z0-9]([a-z0-9.-]*[a-z0-9])?", value))


@rule("MSTDN-CFG-002", E, "LOCAL_DOMAIN is the bare instance domain; WEB_DOMAIN and the "
      "streaming URL agree with it",
      profile="baseline", kinds=WORKLOAD_KINDS, scope="container", applies=role_in(*RAILS),
      remediation="Set LOCAL_DOMAIN to kirchner.social (no scheme, slash or port) in the "
                  "ConfigMap, leave WEB_DOMAIN unset or a subdomain of it, and "
                  "STREAMING_API_BASE_URL unset or wss://<web host>.",
      refs=(CONFIG_MD + " (LOCAL_DOMAIN cannot be safely changed later)",
            "mastodon config/initializers/1_hosts.rb"))
def local_domain(s: Subject, ctx: Context) -> Iterator[Hit]:
    """LOCAL_DOMAIN becomes part of every account's address and cannot be changed
    once federated; a scheme or port in it breaks the host check and every link. With
    a domain in the policy config, LOCAL_DOMAIN must be it; without, LOCAL_DOMAIN is
    taken as the domain."""
    c = s.container
    assert c is not None
    env = ctx.env(c)
    var = env.get("LOCAL_DOMAIN")
    if var is None:
        return
    if var.from_secret:
        yield Hit(f"LOCAL_DOMAIN is read from Secret {var.ref}, so it cannot be reviewed; "
                  f"keep it in the ConfigMap", var.path)
        return
    local = var.value or ""
    if not _host_only(local):
        yield Hit(f"LOCAL_DOMAIN {local!r} is not a bare host name", var.path)
    elif ctx.config.domain and local != ctx.config.domain:
        yield Hit(f"LOCAL_DOMAIN is {local}, not {ctx.config.domain}", var.path)
    web = env.value("WEB_DOMAIN")
    if web and web != local and not web.endswith("." + local):
        yield Hit(f"WEB_DOMAIN {web} is not {local} or a subdomain of it",
                  _env_path(c, env, "WEB_DOMAIN"))
    streaming = env.value("STREAMING_API_BASE_URL")
    if streaming and streaming.rstrip("/") != f"wss://{web or local}":
        yield Hit(f"STREAMING_API_BASE_URL is {streaming}, not wss://{web or local}",
                  _env_path(c, env, "STREAMING_API_BASE_URL"))


def _oidc_enabled(env: MergedEnv) -> bool:
    return (env.value("OIDC_ENABLED") or "").lower() == "true"


@rule("MSTDN-CFG-003", E, "OIDC settings are consistent",
      profile="baseline", kinds=WORKLOAD_KINDS, scope="container", applies=role_in("web"),
      remediation="With OIDC_ENABLED=true set an https OIDC_ISSUER, OIDC_DISCOVERY=true (or the "
                  "endpoints), OIDC_CLIENT_ID, OIDC_UID_FIELD, an OIDC_SCOPE containing openid, "
                  "OIDC_REDIRECT_URI https://kirchner.social/auth/auth/openid_connect/callback "
                  "and OIDC_CLIENT_SECRET in the Secret.",
      refs=(SSO_MD, "mastodon config/initializers/3_omniauth.rb",
            "goauthentik/authentik website/integrations/services/mastodon"))
def oidc_consistent(s: Subject, ctx: Context) -> Iterator[Hit]:
    """A half-configured OpenID Connect login fails only when someone presses the
    button: the issuer must be https, discovery (or explicit endpoints) must be on,
    the scope must include openid, the callback must be Mastodon's exact
    /auth/auth/openid_connect/callback, and the client secret must be a Secret."""
    c = s.container
    assert c is not None
    env = ctx.env(c)
    if not _oidc_enabled(env):
        return
    def path(name: str) -> tuple[Any, ...]:
        return _env_path(c, env, name)
    issuer = env.value("OIDC_ISSUER")
    if not _set(env, "OIDC_ISSUER"):
        yield Hit("OIDC_ISSUER is not set", path("OIDC_ISSUER"))
    elif issuer is not None and not issuer.startswith("https://"):
        yield Hit(f"OIDC_ISSUER {issuer} is not https", path("OIDC_ISSUER"))
    if (env.value("OIDC_DISCOVERY") or "").lower() != "true":
        missing = [k for k in ("OIDC_AUTH_ENDPOINT", "OIDC_TOKEN_ENDPOINT",
                               "OIDC_USER_INFO_ENDPOINT", "OIDC_JWKS_URI") if not _set(env, k)]
        if missing:
            yield Hit(f"OIDC_DISCOVERY is not true and {', '.join(missing)} not set",
                      path("OIDC_DISCOVERY"))
    for key in ("OIDC_CLIENT_ID", "OIDC_UID_FIELD"):
        if not _set(env, key):
            yield Hit(f"{key} is not set", path(key))
    scope = env.value("OIDC_SCOPE")
    if scope is None and not _set(env, "OIDC_SCOPE"):
        yield Hit("OIDC_SCOPE is not set (it must contain openid)", path("OIDC_SCOPE"))
    elif scope is not None and "openid" not in re.split(r"[,\s]+", scope):
        yield Hit(f"OIDC_SCOPE {scope} does not contain openid", path("OIDC_SCOPE"))
    secret = env.get("OIDC_CLIENT_SECRET")
    if secret is None:
        yield Hit("OIDC_CLIENT_SECRET is not set", path("OIDC_CLIENT_SECRET"))
    elif not secret.from_secret:
        yield Hit(f"OIDC_CLIENT_SECRET comes from {secret.describe()}, not a Secret", secret.path)
    redirect = env.value("OIDC_REDIRECT_URI")
    wanted = ctx.config.oidc_redirect_uri(env.value("WEB_DOMAIN") or
                                          env.value("LOCAL_DOMAIN") or "")
    if redirect is None and not _set(env, "OIDC_REDIRECT_URI"):
        yield Hit(f"OIDC_REDIRECT_URI is not set (must be {wanted})", path("OIDC_REDIRECT_URI"))
    elif redirect is not None and redirect != wanted:
        yield Hit(f"OIDC_REDIRECT_URI is {redirect}, not {wanted}", path("OIDC_REDIRECT_URI"))


@rule("MSTDN-CFG-004", W, "OIDC endpoints are within the instance's domain; OMNIAUTH_ONLY "
      "has a provider",
      profile="baseline", kinds=WORKLOAD_KINDS, scope="container", applies=role_in("web"),
      remediation="Point OIDC_ISSUER and the endpoints at the identity provider under the "
                  "instance's domain (auth.kirchner.social), and set OMNIAUTH_ONLY only with "
                  "OIDC_ENABLED=true.",
      refs=(SSO_MD, CONFIG_MD + " (External authentication)"))
def oidc_domain(s: Subject, ctx: Context) -> Iterator[Hit]:
    """The login provider is part of the deployment (Authentik on auth.kirchner.social);
    an issuer elsewhere hands account access to a third party. OMNIAUTH_ONLY without a
    provider locks everyone out."""
    c = s.container
    assert c is not None
    env = ctx.env(c)
    suffix = ctx.config.oidc_suffix(env.value("LOCAL_DOMAIN") or "")
    if _oidc_enabled(env):
        for key in ("OIDC_ISSUER", "OIDC_AUTH_ENDPOINT", "OIDC_TOKEN_ENDPOINT",
                    "OIDC_USER_INFO_ENDPOINT", "OIDC_JWKS_URI", "OIDC_END_SESSION_ENDPOINT"):
            value = env.value(key)
            if not value:
                continue
            host = urlparse(value).hostname or ""
            if host != suffix and not host.endswith("." + suffix):
                yield Hit(f"{key} host {host or value!r} is outside {suffix}",
                          _env_path(c, env, key))
    if (env.value("OMNIAUTH_ONLY") or "").lower() == "true" and not _oidc_enabled(env) and not \
            any((env.value(k) or "").lower() == "true" for k in ("SAML_ENABLED", "CAS_ENABLED")):
        yield Hit("OMNIAUTH_ONLY=true but no OIDC/SAML/CAS provider is enabled",
                  _env_path(c, env, "OMNIAUTH_ONLY"))


@rule("MSTDN-CFG-005", E, "PORT and SOCKET are per process; BIND listens on the pod",
      profile="baseline", kinds=WORKLOAD_KINDS, scope="container", applies=role_in("web", "streaming"),
      remediation="Remove PORT/SOCKET from the shared ConfigMap and set PORT per container "
                  "(web 3000, streaming 4000); set BIND to 0.0.0.0 or leave it to the image.",
      refs=(CONFIG_MD + " (PORT and SOCKET are process-specific; BIND defaults to 127.0.0.1)",))
def per_process_port(s: Subject, ctx: Context) -> Iterator[Hit]:
    """web and streaming both read PORT: a PORT in a ConfigMap both consume makes one of
    them listen on the other's port, so the Service (and probes) reach the wrong
    process or nothing."""
    c = s.container
    assert c is not None
    env = ctx.env(c)
    other = "streaming" if c.role == "web" else "web"
    wanted = ctx.config.web_port if c.role == "web" else ctx.config.streaming_port
    for key in ("PORT", "SOCKET"):
        var = env.get(key)
        if var is None:
            continue
        if var.via_env_from:
            sharers = [o.name for o in mastodon_containers(ctx.bundle, other,
                                                           namespace=s.obj.namespace,
                                                           any_namespace=False)
                       if (("ConfigMap" if var.source == "configmap" else "Secret"), var.ref)
                       in ctx.env(o).env_from]
            if sharers:
                yield Hit(f"{key} comes from {var.describe()}, which the {other} container "
                          f"{sharers[0]!r} also consumes", var.path)
                continue
        if key == "PORT" and var.value is not None and var.value != str(wanted):
            yield Hit(f"PORT is {var.value}, but the {c.role} container must listen on {wanted}",
                      var.path)
    bind = env.value("BIND")
    if bind is not None and bind not in ("0.0.0.0", "::"):
        yield Hit(f"BIND is {bind}; the {c.role} process would not be reachable from the "
                  f"Service", _env_path(c, env, "BIND"))


@rule("MSTDN-CFG-006", E, "All Mastodon processes consume the same env sources",
      profile="baseline", kinds=WORKLOAD_KINDS, scope="container",
      applies=role_in("sidekiq", "streaming", "migrate", "mastodon"),
      remediation="Give sidekiq, streaming and the migration step the same envFrom "
                  "ConfigMap/Secret list as web.",
      refs=("mastodon/chart templates (one env ConfigMap and Secret for every process)",))
def same_env_sources(s: Subject, ctx: Context) -> Iterator[Hit]:
    """A process that lacks a source runs with a different configuration from web:
    sidekiq without the Secret cannot decrypt, a migration without the ConfigMap
    migrates the wrong database."""
    c = s.container
    assert c is not None
    web = web_container(ctx, s.obj.namespace)
    if web is None:
        return
    mine, theirs = set(ctx.env(c).env_from), set(ctx.env(web).env_from)
    missing = sorted(theirs - mine)
    extra = sorted(mine - theirs)
    if missing:
        yield Hit(f"{c.role} lacks envFrom {', '.join(f'{k} {n}' for k, n in missing)} that web "
                  f"consumes", c.field("envFrom"))
    if extra:
        yield Hit(f"{c.role} consumes envFrom {', '.join(f'{k} {n}' for k, n in extra)} that web "
                  f"does not", c.field("envFrom"))


@rule("MSTDN-CFG-007", E, "ALLOWED_PRIVATE_ADDRESSES is not set in the reference deployment",
      profile="baseline", kinds=WORKLOAD_KINDS, scope="container", applies=role_in(*MASTODON),
      remediation="Remove ALLOWED_PRIVATE_ADDRESSES from the reference manifests; set it only "
                  "in the kind overlay (a source listed under overlay_sources).",
      refs=(CONFIG_MD + " (ALLOWED_PRIVATE_ADDRESSES)",
            "mastodon app/lib/request.rb (private address filtering, SSRF protection)"))
def private_addresses(s: Subject, ctx: Context) -> Iterator[Hit]:
    """ALLOWED_PRIVATE_ADDRESSES lifts Mastodon's protection against requests to private
    networks (server-side request forgery into the cluster); the kind overlay needs it
    to federate inside the test cluster, production never does."""
    c = s.container
    assert c is not None
    env = ctx.env(c)
    var = env.get("ALLOWED_PRIVATE_ADDRESSES")
    if var is None or ctx.config.is_overlay_source(s.obj.source):
        return
    yield Hit(f"ALLOWED_PRIVATE_ADDRESSES is set (by {var.describe()}) in {s.obj.source}, which "
              f"is not an overlay source", var.path)


@rule("MSTDN-CFG-008", E, "SMTP is configured, with the password in a Secret",
      profile="baseline", kinds=WORKLOAD_KINDS, scope="container", applies=role_in("web", "sidekiq"),
      remediation="Set SMTP_SERVER and SMTP_FROM_ADDRESS in the ConfigMap and SMTP_PASSWORD "
                  "only in the Secret.",
      refs=(CONFIG_MD + " (Email)",))
def smtp(s: Subject, ctx: Context) -> Iterator[Hit]:
    """Without SMTP_SERVER and SMTP_FROM_ADDRESS sign-up confirmations and password
    resets are never delivered (sidekiq sends them, web enqueues them); the SMTP
    password is a credential and must come from a Secret."""
    c = s.container
    assert c is not None
    env = ctx.env(c)
    for key in ("SMTP_SERVER", "SMTP_FROM_ADDRESS"):
        if not _set(env, key):
            yield Hit(f"{key} is not set", _env_path(c, env, key))
    password = env.get("SMTP_PASSWORD")
    if password is not None and not password.from_secret:
        yield Hit(f"SMTP_PASSWORD comes from {password.describe()}, not a Secret", password.path)
