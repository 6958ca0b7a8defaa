# -*- test-case-name: tests.store.test_refresh_lease -*-
"""
Tests for the refresh lease of a Forgejo grant (`claim_refresh_lease_txn`):
one node at a time, by the database's clock, ended by the new token.
"""

from __future__ import annotations

from fjmcp.oauth.keys import KeyRing
from fjmcp.store.grants import upsert_user_txn
from fjmcp.store.store import SyncStore
from fjmcp.store.upstream_tokens import (
    claim_refresh_lease_txn,
    put_upstream_txn,
    release_refresh_lease_txn,
)

GRANT = "read:user"


def _stored(store: SyncStore) -> int:
    ring = KeyRing.generate()
    uid = store.run(upsert_user_txn, "alice", 1, 0.0)
    store.run(put_upstream_txn, uid, ring.seal, "a1", "r1", 100.0, 1.0, scopes=GRANT)
    return uid


def test_one_node_holds_the_lease_until_it_lapses(memory_store: SyncStore) -> None:
    """
    The first node takes the lease; a second is refused while it runs,
    takes it once it lapsed (by the database's clock); the holder may renew.
    """
    _stored(memory_store)
    claim = claim_refresh_lease_txn
    assert memory_store.run(claim, "alice", GRANT, "node-a", 1, 60.0)
    assert not memory_store.run(claim, "alice", GRANT, "node-b", 1, 60.0)
    assert memory_store.run(claim, "alice", GRANT, "node-a", 1, -1.0)
    assert memory_store.run(claim, "alice", GRANT, "node-b", 1, 60.0)
    assert not memory_store.run(claim, "alice", GRANT, "node-a", 1, 60.0)


def test_a_lease_needs_the_generation_it_refreshes(memory_store: SyncStore) -> None:
    """A node that read an older generation gets no lease: it refreshes nothing."""
    _stored(memory_store)
    assert not memory_store.run(
        claim_refresh_lease_txn, "alice", GRANT, "node-a", 0, 60.0
    )
    assert not memory_store.run(
        claim_refresh_lease_txn, "nobody", GRANT, "node-a", 1, 60.0
    )


def test_storing_the_new_token_or_releasing_ends_the_lease(
    memory_store: SyncStore,
) -> None:
    """
    The new token ends the lease (the next generation is free to refresh);
    a release ends only the releasing node's own lease.
    """
    uid = _stored(memory_store)
    claim = claim_refresh_lease_txn
    assert memory_store.run(claim, "alice", GRANT, "node-a", 1, 60.0)
    memory_store.run(release_refresh_lease_txn, "alice", GRANT, "node-b")
    assert not memory_store.run(claim, "alice", GRANT, "node-b", 1, 60.0)
    memory_store.run(release_refresh_lease_txn, "alice", GRANT, "node-a")
    assert memory_store.run(claim, "alice", GRANT, "node-b", 1, 60.0)
    ring = KeyRing.generate()
    memory_store.run(
        put_upstream_txn, uid, ring.seal, "a2", "r2", 200.0, 2.0, scopes=GRANT
    )
    assert memory_store.run(claim, "alice", GRANT, "node-a", 2, 60.0)
