# -*- test-case-name: tests.store.test_nodes -*-
"""Tests for `fjmcp.store.nodes`: one live node per node id."""

from __future__ import annotations

from fjmcp.store.nodes import claim_node_txn, release_node_txn, seen_node_txn
from fjmcp.store.store import SyncStore

STALE = 30.0


def _alive(pid: int) -> bool:
    return pid == 200


def test_a_live_node_keeps_its_id(memory_store: SyncStore) -> None:
    """
    A second claim of a held id is refused: from another host while the
    holder was seen recently, from this host while the holder's process
    runs; the holder itself may claim again.
    """
    claim = claim_node_txn
    assert memory_store.run(claim, "node-a", "h1", 200, STALE, _alive) is None
    refused = memory_store.run(claim, "node-a", "h2", 300, STALE, _alive)
    assert refused is not None and "in use by a node on h1" in refused
    refused = memory_store.run(claim, "node-a", "h1", 201, STALE, _alive)
    assert refused is not None and "process 200" in refused
    assert memory_store.run(claim, "node-a", "h1", 200, STALE, _alive) is None
    assert memory_store.run(claim, "node-b", "h2", 300, STALE, _alive) is None


def test_a_dead_or_stale_holder_is_replaced(memory_store: SyncStore) -> None:
    """
    A holder whose process died on this host is replaced at once; one on
    another host once it was not seen for ``stale_after`` seconds.
    """
    claim = claim_node_txn
    assert memory_store.run(claim, "node-a", "h1", 999, STALE, _alive) is None
    assert memory_store.run(claim, "node-a", "h1", 200, STALE, _alive) is None
    assert memory_store.run(claim, "node-a", "h2", 300, -1.0, _alive) is None


def test_seen_and_release_touch_only_the_holder(memory_store: SyncStore) -> None:
    """Renewing and releasing work for the holder alone."""
    assert memory_store.run(claim_node_txn, "n", "h1", 200, STALE, _alive) is None
    assert memory_store.run(seen_node_txn, "n", "h1", 200)
    assert not memory_store.run(seen_node_txn, "n", "h2", 200)
    memory_store.run(release_node_txn, "n", "h2", 200)
    assert memory_store.run(claim_node_txn, "n", "h2", 1, STALE, _alive) is not None
    memory_store.run(release_node_txn, "n", "h1", 200)
    assert memory_store.run(claim_node_txn, "n", "h2", 1, STALE, _alive) is None
