# -*- test-case-name: tests.maintenance.test_cluster -*-
"""
Acting on what another node changed in the shared store.

A revocation or a new Forgejo token committed on one node reaches the others
as a `StoreEvent` (`fjmcp.store.listen`). `ClusterSync` does there what the
node that made the change did for itself: a revocation drops the user's (or
the grant's) cached bearer tokens and ends the matching sessions; a new
Forgejo token of an upstream grant is read from the store and the children
holding that grant's token are respawned with it. Events from this node come
back too and change nothing a second time (every step is idempotent). After
the listening connection was re-established every cache is dropped, since
events sent meanwhile are lost.
"""

from __future__ import annotations

from typing import Protocol

from attrs import frozen
from twisted.internet.defer import Deferred
from twisted.logger import Logger

from fjmcp.interfaces import ISessionControl, UpstreamGrant, UpstreamToken
from fjmcp.store.events import StoreEvent

__all__ = ["ClusterSync"]

#: The reason sessions ended by another node's revocation are given.
REVOKED_ELSEWHERE = "revoked-on-another-node"


class BearerCache(Protocol):
    """What `ClusterSync` needs of `fjmcp.oauth.bearer.BearerAuthenticator`."""

    def forget_user(self, user: str) -> int:
        """Drop a user's cached tokens."""

    def forget_user_client(self, user: str, client_id: str) -> int:
        """Drop a user's cached tokens of one client."""

    def flush(self) -> None:
        """Drop everything cached."""


class TokenMemory(Protocol):
    """What `ClusterSync` needs of `fjmcp.oauth.upstream_tokens.UpstreamTokens`."""

    def forget(self, user: str) -> None:
        """Drop the cached Forgejo tokens of every grant of the user."""

    def forget_grant(self, grant: UpstreamGrant) -> None:
        """Drop the grant's cached Forgejo token."""

    def forget_all(self) -> None:
        """Drop every cached Forgejo token."""

    def current(self, grant: UpstreamGrant) -> Deferred[UpstreamToken]:
        """The grant's current token (read from the store after a forget)."""


@frozen
class ClusterSync:
    """Applies other nodes' `StoreEvent` to this node's caches and sessions."""

    _bearer: BearerCache
    _tokens: TokenMemory
    _sessions: ISessionControl

    log = Logger()

    def event(self, event: StoreEvent) -> None:
        """One event published by a node (perhaps this one)."""
        if event.kind == "revoked":
            self._revoked(event.user, event.client_id)
        elif event.kind == "upstream":
            self._upstream(event.user, event.scopes, event.generation)

    def reconnected(self) -> None:
        """Events may have been missed: nothing cached is trusted any more."""
        self.log.info("notifications may have been missed: dropping the caches")
        self._bearer.flush()
        self._tokens.forget_all()

    def _revoked(self, user: str, client_id: str | None) -> None:
        if client_id is None:
            self._bearer.forget_user(user)
            self._tokens.forget(user)
            ending = self._sessions.end_user(user, REVOKED_ELSEWHERE)
        else:
            self._bearer.forget_user_client(user, client_id)
            ending = self._sessions.end_user_client(user, client_id, REVOKED_ELSEWHERE)
        ending.addErrback(lambda f: self.log.failure("ending sessions failed", f))

    def _upstream(self, user: str, scopes: str | None, generation: int) -> None:
        if scopes is None:  # an older node's event: any of the user's grants
            self._tokens.forget(user)
            return
        grant = UpstreamGrant(user, scopes.split())
        self._tokens.forget_grant(grant)
        if generation <= 0:
            return
        reading = self._tokens.current(grant)
        reading.addCallback(self._sessions.token_rotated)
        reading.addErrback(
            lambda f: self.log.failure(
                "reading {user}'s new Forgejo token failed", f, user=user
            )
        )
