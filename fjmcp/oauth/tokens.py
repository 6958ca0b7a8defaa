# -*- test-case-name: tests.oauth.test_tokens -*-
"""
Broker secrets: opaque random strings, stored only as SHA-256 digests.

Access and refresh tokens, authorization codes, client secrets, state
values and cookie nonces are all 256-bit random strings. They carry no
meaning (no JWT): the store is the only authority, and a digest of a
256-bit secret cannot be reversed or guessed, so a plain SHA-256 (no salt,
no slow hash) is the right way to keep them. A token's *id* (a digest
prefix) is what logs and identities show. Expiry math takes the time as an
argument: the caller reads its injected clock.
"""

from __future__ import annotations

import hashlib
import secrets
from typing import Final

__all__ = [
    "TOKEN_BYTES",
    "expires_at",
    "hash_secret",
    "is_expired",
    "new_client_id",
    "new_family_id",
    "new_secret",
    "remaining",
    "token_id",
]

TOKEN_BYTES: Final = 32
"""256 bits of randomness per secret."""
TOKEN_ID_CHARS: Final = 12


def new_secret() -> str:
    """A fresh opaque secret: 256 random bits, base64url (43 characters)."""
    return secrets.token_urlsafe(TOKEN_BYTES)


def hash_secret(secret: str) -> str:
    """The SHA-256 hex digest under which ``secret`` is stored and looked up."""
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


def token_id(secret_hash: str) -> str:
    """A non-secret id for logs: the first characters of the digest."""
    return secret_hash[:TOKEN_ID_CHARS]


def new_client_id() -> str:
    """A client id for a dynamic registration (not a secret; 128 bits)."""
    return "fjc_" + secrets.token_urlsafe(16)


def new_family_id() -> str:
    """The id of a token family (everything minted from one code)."""
    return secrets.token_hex(16)


def expires_at(now: float, ttl: float) -> float:
    """The absolute expiry of something issued at ``now`` that lives ``ttl``."""
    return now + ttl


def is_expired(now: float, expiry: float | None) -> bool:
    """Whether ``expiry`` has passed at ``now`` (``None`` never expires)."""
    return expiry is not None and now >= expiry


def remaining(now: float, expiry: float) -> int:
    """Whole seconds left until ``expiry`` (``expires_in``), never negative."""
    return max(0, int(expiry - now))
