# -*- test-case-name: tests.oauth.test_pkce -*-
"""
PKCE (RFC 7636), S256 only, as OAuth 2.1 and the MCP spec require.

Pure functions, so that hypothesis can hit them: a challenge is exactly 43
characters of unpadded base64url (a SHA-256 digest), a verifier 43 to 128
unreserved characters. ``plain`` is never accepted: with it an intercepted
authorization request gives the verifier away.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from typing import Final

__all__ = [
    "CHALLENGE_LENGTH",
    "is_valid_challenge",
    "is_valid_verifier",
    "new_verifier",
    "s256",
    "verify",
]

CHALLENGE_LENGTH: Final = 43
_CHALLENGE: Final = re.compile(r"[A-Za-z0-9_-]{43}")
_VERIFIER: Final = re.compile(r"[A-Za-z0-9._~-]{43,128}")


def s256(verifier: str) -> str:
    """The S256 challenge of ``verifier``: unpadded base64url of its SHA-256."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def is_valid_challenge(challenge: str) -> bool:
    """Whether ``challenge`` can be an S256 challenge (43 base64url chars)."""
    return _CHALLENGE.fullmatch(challenge) is not None


def is_valid_verifier(verifier: str) -> bool:
    """Whether ``verifier`` has RFC 7636's shape (43-128 unreserved chars)."""
    return _VERIFIER.fullmatch(verifier) is not None


def verify(verifier: str, challenge: str) -> bool:
    """
    Whether ``verifier`` answers ``challenge`` (S256), compared in constant
    time. A malformed verifier never matches.
    """
    if not is_valid_verifier(verifier):
        return False
    return hmac.compare_digest(s256(verifier), challenge)


def new_verifier() -> str:
    """A fresh verifier with 384 bits of randomness (64 characters)."""
    return secrets.token_urlsafe(48)
