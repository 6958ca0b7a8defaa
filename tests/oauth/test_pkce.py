# -*- test-case-name: tests.oauth.test_pkce -*-
"""Tests for `fjmcp.oauth.pkce`."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from fjmcp.oauth import pkce

# RFC 7636, appendix B.
RFC_VERIFIER = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
RFC_CHALLENGE = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"


def test_s256_matches_rfc_7636_example() -> None:
    """s256 gives RFC 7636's appendix B challenge for its verifier."""
    assert pkce.s256(RFC_VERIFIER) == RFC_CHALLENGE
    assert pkce.verify(RFC_VERIFIER, RFC_CHALLENGE)


def test_verify_rejects_other_verifier_and_plain() -> None:
    """A different verifier, or the challenge itself (plain), does not verify."""
    assert not pkce.verify(pkce.new_verifier(), RFC_CHALLENGE)
    assert not pkce.verify(RFC_CHALLENGE, RFC_CHALLENGE)


def test_challenge_shape() -> None:
    """Only 43 base64url characters make a challenge."""
    assert pkce.is_valid_challenge(RFC_CHALLENGE)
    for bad in ["", RFC_CHALLENGE[:-1], RFC_CHALLENGE + "A", "=" * 43, "+" * 43]:
        assert not pkce.is_valid_challenge(bad)


def test_verifier_shape() -> None:
    """Verifiers are 43-128 unreserved characters; fresh ones qualify."""
    assert pkce.is_valid_verifier(pkce.new_verifier())
    assert not pkce.is_valid_verifier("a" * 42)
    assert not pkce.is_valid_verifier("a" * 129)
    assert not pkce.is_valid_verifier("a" * 42 + "!")


@given(st.text(max_size=200), st.text(max_size=60))
def test_verify_never_raises(verifier: str, challenge: str) -> None:
    """verify answers a bool for any text (non-ASCII included)."""
    assert pkce.verify(verifier, challenge) in (True, False)


@given(st.text(alphabet="abcXYZ019-._~", min_size=43, max_size=128))
def test_round_trip(verifier: str) -> None:
    """Any well-formed verifier verifies against its own challenge."""
    challenge = pkce.s256(verifier)
    assert pkce.is_valid_challenge(challenge)
    assert pkce.verify(verifier, challenge)
