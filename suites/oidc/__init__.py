"""The OIDC suite: Mastodon's login through Authentik, against a target."""
