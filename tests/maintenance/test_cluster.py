# -*- test-case-name: tests.maintenance.test_cluster -*-
"""
Tests for `fjmcp.maintenance.cluster`: another node's revocation or new
Forgejo token, heard through the store, acts on this node's caches and
sessions; a reconnection drops every cache.
"""

from __future__ import annotations

from typing import Any

import pytest
import pytest_twisted
from attrs import define, field
from twisted.internet.defer import Deferred, succeed

from fjmcp.interfaces import UpstreamGrant, UpstreamToken
from fjmcp.maintenance.cluster import REVOKED_ELSEWHERE, ClusterSync
from fjmcp.store.events import StoreEvent
from fjmcp.store.grants import upsert_user_txn
from fjmcp.store.listen import PostgresListener
from fjmcp.store.revocation import revoke_user_txn
from fjmcp.store.store import open_postgres_store
from tests.maintenance.support import FakeSessions
from tests.store.support import ScratchSchema, postgres_skip_reason, postgres_url


@define
class Caches:
    """The bearer cache and the token memory, recording what they were told."""

    calls: list[tuple[str, ...]] = field(factory=list)
    generation: int = 5

    def forget_user(self, user: str) -> int:
        """Bearer: a user's tokens."""
        self.calls.append(("bearer-user", user))
        return 1

    def forget_user_client(self, user: str, client_id: str) -> int:
        """Bearer: one grant's tokens."""
        self.calls.append(("bearer-client", user, client_id))
        return 1

    def flush(self) -> None:
        """Bearer: everything."""
        self.calls.append(("bearer-flush",))

    def forget(self, user: str) -> None:
        """Token memory: one user."""
        self.calls.append(("tokens-forget", user))

    def forget_grant(self, grant: UpstreamGrant) -> None:
        """Token memory: one grant."""
        self.calls.append(("tokens-forget-grant", grant.user, grant.key))

    def forget_all(self) -> None:
        """Token memory: everything."""
        self.calls.append(("tokens-flush",))

    def current(self, grant: UpstreamGrant) -> Deferred[UpstreamToken]:
        """Token memory: read from the store."""
        self.calls.append(("tokens-read", grant.user, grant.key))
        return succeed(
            UpstreamToken(grant.user, "fresh", 9e9, self.generation, grant.scopes)
        )


def _sync() -> tuple[ClusterSync, Caches, FakeSessions]:
    caches, sessions = Caches(), FakeSessions()
    return ClusterSync(caches, caches, sessions), caches, sessions


def test_a_grant_revoked_elsewhere_ends_its_sessions_here() -> None:
    """A grant's revocation drops its cached tokens and ends its sessions."""
    sync, caches, sessions = _sync()
    sync.event(StoreEvent("revoked", "alice", "client-1"))
    assert caches.calls == [("bearer-client", "alice", "client-1")]
    assert sessions.ended_clients == [("alice", "client-1", REVOKED_ELSEWHERE)]


def test_a_user_revoked_elsewhere_is_cut_off_here() -> None:
    """A user-wide revocation drops every cache of the user and their sessions."""
    sync, caches, sessions = _sync()
    sync.event(StoreEvent("revoked", "alice"))
    assert caches.calls == [("bearer-user", "alice"), ("tokens-forget", "alice")]
    assert sessions.ended == [("alice", REVOKED_ELSEWHERE)]


def test_a_token_rotated_elsewhere_respawns_the_children_here() -> None:
    """
    A new Forgejo token of one upstream grant is read from the store and
    handed to the sessions; the user's other grant is left alone.
    """
    sync, caches, sessions = _sync()
    scopes = "read:organization read:repository read:user"
    sync.event(StoreEvent("upstream", "alice", None, 5, scopes))
    assert caches.calls == [
        ("tokens-forget-grant", "alice", scopes),
        ("tokens-read", "alice", scopes),
    ]
    assert [(t.generation, t.grant.key) for t in sessions.rotated] == [(5, scopes)]


def test_a_deleted_token_is_only_forgotten() -> None:
    """Generation 0 (deleted): nothing to read, nothing to respawn."""
    sync, caches, sessions = _sync()
    sync.event(StoreEvent("upstream", "alice", None, 0, ""))
    assert caches.calls == [("tokens-forget-grant", "alice", "")]
    assert sessions.rotated == []


def test_an_event_that_names_no_grant_forgets_the_users_tokens() -> None:
    """An older node's event names no grant: every grant of the user is re-read."""
    sync, caches, sessions = _sync()
    sync.event(StoreEvent("upstream", "alice", None, 3))
    assert caches.calls == [("tokens-forget", "alice")]
    assert sessions.rotated == []


def test_a_reconnection_drops_every_cache() -> None:
    """Notifications may have been lost: the bearer cache and tokens go."""
    sync, caches, _sessions = _sync()
    sync.reconnected()
    assert caches.calls == [("bearer-flush",), ("tokens-flush",)]


@pytest_twisted.ensureDeferred
async def test_a_revocation_on_one_node_ends_sessions_on_the_other() -> None:
    """
    Two nodes on one PostgreSQL: a user revoked in node A's store reaches
    node B's sessions through the notification, within the test's bound.
    """
    base = postgres_url()
    if base is None:
        pytest.skip(postgres_skip_reason())
    from twisted.internet import reactor as running

    reactor: Any = running
    scratch = ScratchSchema.create(base)
    try:
        node_a = await open_postgres_store(reactor, scratch.conninfo, pool_size=1)
        caches, sessions = Caches(), FakeSessions()
        ended: Deferred[None] = Deferred()
        sync_b = ClusterSync(caches, caches, sessions)

        def heard(event: StoreEvent) -> None:
            sync_b.event(event)
            if sessions.ended and not ended.called:
                ended.callback(None)

        listener = PostgresListener(
            reactor, scratch.conninfo, None, heard, sync_b.reconnected
        )
        listener.startService()
        try:
            await listener.when_listening().addTimeout(10, reactor)
            await node_a.run(upsert_user_txn, "alice", 1, 0.0)
            await node_a.run(revoke_user_txn, "alice", 1.0, "operator")
            await ended.addTimeout(2, reactor)
            assert sessions.ended == [("alice", REVOKED_ELSEWHERE)]
        finally:
            listener.stopService()
            await node_a.close()
    finally:
        scratch.drop()
