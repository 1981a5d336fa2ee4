"""The suite's Mastodon accounts and their API tokens: commands and parsers (pure).

Accounts are created with ``tootctl accounts create USERNAME --email E --confirmed
--approve`` (the admin with ``--role Owner``) in the web container
(``lib/mastodon/cli/accounts.rb``). Mastodon has no OAuth password grant
(``config/initializers/doorkeeper.rb``: ``grant_flows authorization_code
client_credentials``), so tokens are minted with ``bin/rails runner``: one
``Doorkeeper::Application`` named ``tootcheck`` and one
``Doorkeeper::AccessToken`` per account, created the way
``AppSignUpService#create_access_token!`` does. Usernames avoid Mastodon's
reserved names (``config/settings.yml`` reserves ``admin``, ``owner``, ...).

Output is parsed here and never echoed: tootctl prints the generated password,
the runner prints the tokens; both become :class:`Secret` at once.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from tootcheck.redaction import Secret, redact

APP_NAME = "tootcheck"
APP_SCOPES = "read write follow push admin:read admin:write"
USER_SCOPES = "read write follow push"
TOKEN_MARKER = "TOOTCHECK_TOKEN"
_USERNAME = re.compile(r"[a-z0-9_]{1,30}")
_TOKEN = re.compile(r"[A-Za-z0-9_-]{20,}")


@dataclass(frozen=True)
class AccountSpec:
    role: str  # test | second | admin
    username: str
    email: str
    owner: bool = False

    @property
    def scopes(self) -> str:
        return APP_SCOPES if self.owner else USER_SCOPES


def account_specs(domain: str) -> list[AccountSpec]:
    """The three accounts the live suites use. Emails use the instance domain,
    which resolves inside the cluster (CoreDNS rewrite), so Mastodon's
    EmailMxValidator finds an address for it."""
    return [
        AccountSpec("test", "tootcheck_test", f"tootcheck_test@{domain}"),
        AccountSpec("second", "tootcheck_second", f"tootcheck_second@{domain}"),
        AccountSpec("admin", "tootcheck_admin", f"tootcheck_admin@{domain}", owner=True),
    ]


def check_username(username: str) -> str:
    if not _USERNAME.fullmatch(username):
        raise ValueError(f"not a Mastodon username: {username!r}")
    return username


def tootctl_create(spec: AccountSpec) -> list[str]:
    """argv for the web container (WORKDIR /opt/mastodon, bin/ on PATH)."""
    argv = ["tootctl", "accounts", "create", check_username(spec.username), "--email", spec.email,
            "--confirmed", "--approve"]
    if spec.owner:
        argv += ["--role", "Owner"]
    return argv


# Ruby run by `bin/rails runner`; usernames arrive in ARGV (runner replaces ARGV
# with the arguments after the code), each as "username:scopes-with-plus". An argument
# "contact=<email>" sets the instance's contact e-mail first: Mastodon signs Web Push
# with sub=mailto:<contact e-mail>, which is empty by default (webpush.delivery checks it).
MINT_SCRIPT = f"""
app = Doorkeeper::Application.find_or_create_by!(name: '{APP_NAME}') do |a|
  a.redirect_uri = Doorkeeper.configuration.native_redirect_uri
  a.scopes = '{APP_SCOPES}'
end
ARGV.each do |arg|
  if arg.start_with?('contact=')
    Setting.site_contact_email = arg.delete_prefix('contact=')
    next
  end
  username, scopes = arg.split(':', 2)
  user = Account.find_local!(username).user
  token = Doorkeeper::AccessToken.create!(application: app, resource_owner_id: user.id,
                                          scopes: scopes.tr('+', ' '), expires_in: nil,
                                          use_refresh_token: false)
  puts "{TOKEN_MARKER} #{{username}} #{{token.token}}"
end
""".strip()


def mint_tokens_argv(specs: list[AccountSpec], contact_email: str | None = None) -> list[str]:
    args = [f"{check_username(s.username)}:{s.scopes.replace(' ', '+')}" for s in specs]
    if contact_email:
        if not re.fullmatch(r"[^@\s]+@[A-Za-z0-9.-]+", contact_email):
            raise ValueError(f"not an e-mail address: {contact_email!r}")
        args.insert(0, f"contact={contact_email}")
    return ["bin/rails", "runner", MINT_SCRIPT, *args]


@dataclass(frozen=True)
class CreateOutcome:
    created: bool
    exists: bool
    password: Secret | None
    problem: str = ""


def parse_create(username: str, rc: int | None, stdout: str, stderr: str) -> CreateOutcome:
    """Read tootctl's answer. The generated password is wrapped at once."""
    password = None
    for line in stdout.splitlines():
        if line.strip().startswith("New password:"):
            password = Secret(line.split(":", 1)[1].strip(), f"password:{username}")
    if rc == 0 and password is not None:
        return CreateOutcome(True, False, password)
    text = f"{stdout}\n{stderr}"
    if re.search(r"(already been taken|is currently in use)", text, re.IGNORECASE):
        return CreateOutcome(False, True, None)
    last = next((ln.strip() for ln in reversed(text.splitlines()) if ln.strip()), f"exit {rc}")
    return CreateOutcome(False, False, None, redact(last)[:200])


def parse_tokens(stdout: str, expected: list[str]) -> tuple[dict[str, Secret], list[str]]:
    """Tokens by username from the runner's marker lines, and the usernames missing.
    Nothing else of the output is kept."""
    tokens: dict[str, Secret] = {}
    for line in stdout.splitlines():
        parts = line.strip().split()
        if len(parts) == 3 and parts[0] == TOKEN_MARKER and _TOKEN.fullmatch(parts[2]):
            tokens[parts[1]] = Secret(parts[2], f"token:{parts[1]}")
    return tokens, [u for u in expected if u not in tokens]


def stored_accounts(data: Mapping[str, str]) -> dict[str, dict[str, str]]:
    """The ``tootcheck-accounts`` Secret's decoded data, by role: ``<role>.<field>``."""
    out: dict[str, dict[str, str]] = {}
    for key, value in data.items():
        role, _, field = key.partition(".")
        if field:
            out.setdefault(role, {})[field] = value
    return out
