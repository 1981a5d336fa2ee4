"""HTTPS suite: the served certificate, TLS versions, HTTP semantics, Mastodon's endpoints."""
