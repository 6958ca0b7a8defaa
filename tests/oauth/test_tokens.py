# -*- test-case-name: tests.oauth.test_tokens -*-
"""Tests for `fjmcp.oauth.tokens`."""

from __future__ import annotations

import base64
import hashlib

from fjmcp.oauth import tokens


def test_secrets_have_256_bits_and_differ() -> None:
    """A secret decodes to 32 random bytes; two are never equal."""
    a, b = tokens.new_secret(), tokens.new_secret()
    assert a != b
    assert len(base64.urlsafe_b64decode(a + "=")) == 32


def test_hash_is_sha256_hex() -> None:
    """Secrets are kept as their SHA-256 hex digest; the id is a prefix."""
    digest = tokens.hash_secret("abc")
    assert digest == hashlib.sha256(b"abc").hexdigest()
    assert tokens.token_id(digest) == digest[:12]


def test_expiry_math() -> None:
    """Expiry is issue time plus ttl; expired at and after it; remaining floors."""
    exp = tokens.expires_at(100.0, 60.0)
    assert exp == 160.0
    assert not tokens.is_expired(159.9, exp)
    assert tokens.is_expired(160.0, exp)
    assert not tokens.is_expired(1e12, None)
    assert tokens.remaining(100.5, exp) == 59
    assert tokens.remaining(200.0, exp) == 0


def test_ids_are_distinct() -> None:
    """Client ids and family ids are fresh each time."""
    assert tokens.new_client_id() != tokens.new_client_id()
    assert tokens.new_family_id() != tokens.new_family_id()
