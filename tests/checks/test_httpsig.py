"""The suite's signature helpers and the peer program's copy agree on the same inputs.

The fediverse peer (a stock-image program) and ``tootcheck.clients.httpsig`` each
carry the byte-level draft-cavage pieces; a drift between them would let one side
accept what the other refuses.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tootcheck.clients import httpsig
from tootcheck.peers import fediverse_peer as peer

TOKENS = st.text(st.sampled_from("abcdefghijklmnopqrstuvwxyz-"), min_size=1, max_size=12)
VALUES = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=30)
PAIRS = st.lists(st.tuples(st.sampled_from(["Host", "host", "Date", "Digest", "Content-Type", "X-A"]),
                           VALUES), max_size=6)


def both(call):
    """The outcome of ``call`` on each module: a value, or the exception type."""
    out = []
    for module in (httpsig, peer):
        try:
            out.append(call(module))
        except (KeyError, ValueError) as exc:
            out.append(type(exc))
    return out


@settings(max_examples=25, deadline=None)
@given(st.one_of(VALUES, st.builds(lambda k, v: f'{k}="{v}"', TOKENS, VALUES),
                 st.lists(st.tuples(TOKENS, VALUES)).map(
                     lambda ps: ",".join(f'{k}="{v}"' for k, v in ps))))
def test_signature_parsing_agrees(value):
    ours, theirs = both(lambda m: m.parse_signature(value))
    assert ours == theirs


@settings(max_examples=25, deadline=None)
@given(PAIRS, st.lists(st.sampled_from(["(request-target)", "host", "date", "digest", "x-a"]),
                       max_size=5), st.sampled_from(["POST", "get"]), VALUES)
def test_signing_string_agrees(pairs, names, method, target):
    ours, theirs = both(lambda m: m.signing_string(names, method, target, m.Headers(pairs)))
    assert ours == theirs


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=64), st.one_of(st.none(), VALUES,
                                         st.binary(max_size=64).map(peer.body_digest)))
def test_digest_agrees(body, offered):
    pairs = [] if offered is None else [("Digest", offered)]
    assert httpsig.body_digest(body) == peer.body_digest(body)
    ours, theirs = both(lambda m: m.digest_problem(m.Headers(pairs), body))
    assert ours == theirs


@pytest.mark.parametrize("name", ["ACTIVITY_JSON", "AS_CONTEXT", "REQUEST_TARGET"])
def test_constants_agree(name):
    assert getattr(httpsig, name) == getattr(peer, name)


def test_signed_header_names_agree():
    params = {"headers": "(request-target) Host Date"}
    assert httpsig.signed_header_names(params) == peer.signed_header_names(params)
    assert httpsig.signed_header_names({}) == peer.signed_header_names({}) == ["date"]
