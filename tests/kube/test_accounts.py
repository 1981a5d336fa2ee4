"""Account and token commands, and the parsers that keep their output secret."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from tootcheck.kube import accounts
from tootcheck.redaction import MASK, redact
from tootcheck.testing import peer_missing


def specs():
    return accounts.account_specs("kirchner.social")


def test_specs_avoid_reserved_usernames():
    # config/settings.yml reserved_usernames in Mastodon
    reserved = {"abuse", "account", "accounts", "admin", "administration", "administrator",
                "admins", "help", "helpdesk", "instance", "mod", "moderator", "moderators", "mods",
                "owner", "root", "security", "server", "staff", "support", "webmaster"}
    names = {s.username for s in specs()}
    assert not names & reserved
    assert [s.role for s in specs()] == ["test", "second", "admin"]


def test_tootctl_create_commands():
    test, _second, admin = specs()
    assert accounts.tootctl_create(test) == [
        "tootctl", "accounts", "create", "tootcheck_test", "--email", "tootcheck_test@kirchner.social",
        "--confirmed", "--approve"]
    assert accounts.tootctl_create(admin)[-2:] == ["--role", "Owner"]


def test_bad_username_refused():
    with pytest.raises(ValueError):
        accounts.tootctl_create(accounts.AccountSpec("x", "Bad Name; rm -rf", "x@y"))


def test_mint_argv_sets_the_contact_email_first():
    argv = accounts.mint_tokens_argv(specs(), "admin@kirchner.social")
    assert argv[3] == "contact=admin@kirchner.social"
    with pytest.raises(ValueError, match="not an e-mail"):
        accounts.mint_tokens_argv(specs(), "x; rm -rf /")


def test_mint_argv_passes_usernames_and_scopes_as_arguments():
    argv = accounts.mint_tokens_argv(specs())
    assert argv[:2] == ["bin/rails", "runner"]
    assert "Doorkeeper::AccessToken.create!" in argv[2] and "Doorkeeper::Application" in argv[2]
    assert argv[3:] == ["tootcheck_test:read+write+follow+push",
                        "tootcheck_second:read+write+follow+push",
                        "tootcheck_admin:read+write+follow+push+admin:read+admin:write"]


RUBY_STUBS = r"""
module Doorkeeper
  Config = Struct.new(:native_redirect_uri)
  def self.configuration = Config.new('urn:ietf:wg:oauth:2.0:oob')
  class Application
    attr_accessor :name, :redirect_uri, :scopes
    def self.find_or_create_by!(name:)
      app = new
      app.name = name
      yield app
      $stderr.puts "app #{app.name} #{app.redirect_uri} #{app.scopes}"
      app
    end
  end
  class AccessToken
    attr_reader :token
    def self.create!(application:, resource_owner_id:, scopes:, expires_in:, use_refresh_token:)
      $stderr.puts "token for #{resource_owner_id} scopes=#{scopes} expires=#{expires_in.inspect}"
      t = new
      t.instance_variable_set(:@token, "tok#{resource_owner_id}" + "x" * 40)
      t
    end
  end
end
module Setting
  def self.site_contact_email=(value)
    $stderr.puts "contact #{value}"
  end
end
User = Struct.new(:id)
Account = Struct.new(:user) do
  def self.find_local!(username) = new(User.new(username.sub('tootcheck_', '')))
end
puts "I, [boot] some Rails log line"
"""


def test_mint_script_runs_against_stub_models():
    if shutil.which("ruby") is None:  # Debian's ruby comes with ruby-sidekiq (scripts/install-peers)
        peer_missing("ruby", "no ruby to run the runner script")
    argv = accounts.mint_tokens_argv(specs(), "admin@kirchner.social")
    done = subprocess.run(["ruby", "-e", RUBY_STUBS, "-e", argv[2], *argv[3:]],
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    assert "app tootcheck urn:ietf:wg:oauth:2.0:oob read write follow push admin:read admin:write" \
        in done.stderr
    assert "token for admin scopes=read write follow push admin:read admin:write expires=nil" \
        in done.stderr
    assert "contact admin@kirchner.social" in done.stderr
    tokens, missing = accounts.parse_tokens(done.stdout, [s.username for s in specs()])
    assert missing == []
    assert tokens["tootcheck_second"].reveal() == "toksecond" + "x" * 40


def test_parse_create_success_wraps_the_password():
    out = accounts.parse_create("tootcheck_test", 0, "OK\nNew password: 3f1c9a0e5b7d2c4a\n", "")
    assert out.created and out.password is not None
    assert out.password.reveal() == "3f1c9a0e5b7d2c4a"
    assert "3f1c9a0e5b7d2c4a" not in repr(out)
    assert redact("leaked 3f1c9a0e5b7d2c4a") == f"leaked {MASK}"


def test_parse_create_existing_account():
    out = accounts.parse_create("tootcheck_test", 1, "Failure/Error: username\n"
                                "    Username has already been taken\n", "")
    assert out.exists and not out.created


def test_parse_create_other_failure_is_one_line():
    out = accounts.parse_create("tootcheck_admin", 1, "", "Cannot find user role with that name\n")
    assert not out.created and not out.exists
    assert out.problem == "Cannot find user role with that name"


def test_parse_tokens_ignores_noise_and_reports_missing():
    stdout = ("W, [2026-11-27] deprecation\n"
              "TOOTCHECK_TOKEN tootcheck_test AbCdEfGhIjKlMnOpQrStUvWxYz0123456789_-abcde\n"
              "TOOTCHECK_TOKEN tootcheck_second short\n")
    tokens, missing = accounts.parse_tokens(stdout, ["tootcheck_test", "tootcheck_second"])
    assert list(tokens) == ["tootcheck_test"] and missing == ["tootcheck_second"]
    assert "AbCdEf" not in repr(tokens)


def test_stored_accounts():
    data = {"test.username": "tootcheck_test", "test.token": "t", "admin.username": "tootcheck_admin"}
    assert accounts.stored_accounts(data) == {
        "test": {"username": "tootcheck_test", "token": "t"}, "admin": {"username": "tootcheck_admin"}}
