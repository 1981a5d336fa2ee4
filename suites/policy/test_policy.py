"""The offline policy gate: every rule of the catalogue over every committed render in
manifests/rendered/*.yaml, with the settings and waivers of tootcheck.toml.

``tootcheck.hooks.policy`` turns the declaration below into one test per rule and
subject, e.g. ``MSTDN-SEC-002[Deployment/mastodon/mastodon:sidekiq]``; rules that
match nothing and waived findings are skipped with the reason, never passed.
"""

from tootcheck.policy.gate import RENDERED_DIR, PolicyGate

test_policy = PolicyGate(renders=RENDERED_DIR)
