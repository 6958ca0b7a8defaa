# -*- test-case-name: tests.oauth.test_refresh_replay -*-
"""
The answers of refreshes, sealed for the reuse grace.

A client that lost the answer to a refresh (a dropped connection, a crash
after the request) retries with the refresh token it still holds. Within
``refresh_reuse_grace`` it gets the very same answer again instead of a
revoked grant; two concurrent refreshes of one token get the identical pair
the same way. The answer holds live tokens, so it is kept sealed (AES-GCM
with the token key ring, bound to the spent token's digest) in the store,
where a restarted process or another node finds it too.
"""

from __future__ import annotations

import json
from typing import Any

from attrs import frozen

from fjmcp.oauth.keys import SealError, SealingKeys
from fjmcp.store.grants import SealedAnswer

__all__ = ["RefreshAnswers"]


def replay_aad(refresh_hash: str) -> bytes:
    """The associated data of a kept refresh answer: bound to its token."""
    return b"fjmcp/refresh-answer/" + refresh_hash.encode("ascii")


@frozen
class RefreshAnswers:
    """Seals a refresh's answer for its grace, and opens it for a retry."""

    _keys: SealingKeys
    grace: float
    """Seconds a spent refresh token still gets its answer (0: never)."""

    def seal(
        self, refresh_hash: str, answer: dict[str, Any], now: float
    ) -> SealedAnswer | None:
        """``answer`` sealed until the grace ends (``None`` without a grace)."""
        if self.grace <= 0:
            return None
        key_id, sealed = self._keys.seal(
            json.dumps(answer, sort_keys=True).encode("utf-8"),
            replay_aad(refresh_hash),
        )
        return SealedAnswer(key_id, sealed, now + self.grace)

    def open(self, refresh_hash: str, kept: SealedAnswer) -> dict[str, Any] | None:
        """The kept answer, or ``None`` if it does not open (a retired key)."""
        try:
            plain = self._keys.open(kept.key_id, kept.sealed, replay_aad(refresh_hash))
        except SealError:
            return None
        answer = json.loads(plain)
        return answer if isinstance(answer, dict) else None
