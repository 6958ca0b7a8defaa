# -*- test-case-name: tests.oauth.test_fanout -*-
"""
Telling the rest of the broker that a grant's tokens were revoked.

A revocation (``/oauth/revoke``, a replayed code, a reused refresh token)
is committed in the store first; then the bearer cache forgets the tokens
at once (so ``/mcp`` refuses them without waiting for the cache to expire)
and the sessions of that user and client end.
"""

from __future__ import annotations

from typing import Protocol

from attrs import frozen
from twisted.internet.defer import Deferred
from twisted.logger import Logger

from fjmcp.store.grants import Grant

__all__ = ["ClientSessions", "RevocationFanout", "RevocationListener", "TokenForgetter"]


class TokenForgetter(Protocol):
    """What the fan-out needs of `fjmcp.oauth.bearer.BearerAuthenticator`."""

    def forget_tokens(self, token_hashes: tuple[str, ...] | list[str]) -> None:
        """Several tokens (by digest) were revoked."""


class ClientSessions(Protocol):
    """What the fan-out needs of the sessions (`fjmcp.interfaces.ISessionControl`)."""

    def end_user_client(self, user: str, client_id: str, reason: str) -> Deferred[None]:
        """End the sessions of one user through one client."""


class RevocationListener(Protocol):
    """What the endpoints need of `RevocationFanout` (tests record instead)."""

    def revoked(
        self, grant: Grant | None, hashes: tuple[str, ...], reason: str
    ) -> None:
        """``hashes`` of ``grant`` were revoked in the store for ``reason``."""


@frozen
class RevocationFanout:
    """Forget revoked tokens in the bearer cache and end their sessions."""

    _bearer: TokenForgetter
    _sessions: ClientSessions

    log = Logger()

    def revoked(
        self, grant: Grant | None, hashes: tuple[str, ...], reason: str
    ) -> None:
        """``hashes`` of ``grant`` were revoked in the store for ``reason``."""
        if hashes:
            self._bearer.forget_tokens(hashes)
        if grant is None:
            return
        self.log.info(
            "tokens of {user} via {client_id} revoked ({reason}); {count} token(s)",
            user=grant.user,
            client_id=grant.client_id,
            reason=reason,
            count=len(hashes),
        )
        d: Deferred[None] = Deferred.fromCoroutine(self._end_sessions(grant, reason))
        d.addErrback(lambda f: self.log.failure("ending sessions failed", f))

    async def _end_sessions(self, grant: Grant, reason: str) -> None:
        await self._sessions.end_user_client(grant.user, grant.client_id, reason)
