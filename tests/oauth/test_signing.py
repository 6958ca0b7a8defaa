# -*- test-case-name: tests.oauth.test_signing -*-
"""Tests for `fjmcp.oauth.signing`: signed, expiring browser-held values."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from fjmcp.oauth.signing import mac, sign, unsign

KEY = b"k" * 32


def test_round_trip_and_expiry() -> None:
    """A value opens with its key and purpose until it expires."""
    value = sign(KEY, "user", {"u": "alice"}, 100.0)
    assert unsign(KEY, "user", value, 99.9) == {"u": "alice"}
    assert unsign(KEY, "user", value, 100.0) is None


def test_purpose_key_and_tampering() -> None:
    """Another purpose, another key, or any change is refused."""
    value = sign(KEY, "user", {"u": "alice"}, 100.0)
    assert unsign(KEY, "consent", value, 0.0) is None
    assert unsign(b"o" * 32, "user", value, 0.0) is None
    body, _, sig = value.partition(".")
    assert unsign(KEY, "user", body + "A." + sig, 0.0) is None
    assert unsign(KEY, "user", body + "." + sig[:-1] + "A", 0.0) is None
    assert unsign(KEY, "user", body, 0.0) is None


def test_mac_is_unambiguous() -> None:
    """Parts are length-prefixed: ('ab','c') and ('a','bc') differ."""
    assert mac(KEY, "ab", "c") != mac(KEY, "a", "bc")


@given(st.text(max_size=300))
def test_any_text_is_just_invalid(value: str) -> None:
    """Any text is either a valid value or None, never an exception."""
    assert unsign(KEY, "user", value, 0.0) is None
