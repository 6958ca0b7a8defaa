# -*- test-case-name: tests.maintenance.test_node -*-
"""Tests for `fjmcp.maintenance.node`: claim, renewal and release of a node id."""

from __future__ import annotations

import os

from twisted.internet.defer import Deferred
from twisted.internet.task import Clock

from fjmcp.maintenance.node import RENEW_INTERVAL, NodePresence, pid_alive
from fjmcp.store.nodes import claim_node_txn
from tests.oauth.support import MemoryStore
from tests.standin.support import result_of


def test_claim_renew_release() -> None:
    """
    A node claims its id, renews it every interval while it runs, and gives
    it back when it stops: then another host may take the id at once.
    """
    store = MemoryStore()
    clock = Clock()
    presence = NodePresence(store, clock, "node-a", "host-1", os.getpid())
    try:
        assert result_of(Deferred.fromCoroutine(presence.claim())) is None
        presence.startService()
        runs = store.runs
        clock.advance(RENEW_INTERVAL)
        assert store.runs == runs + 1
        other = store.sync.run(claim_node_txn, "node-a", "host-2", 1, 3600.0, pid_alive)
        assert other is not None
        result_of(presence.stopService())
        again = store.sync.run(claim_node_txn, "node-a", "host-2", 1, 3600.0, pid_alive)
        assert again is None
    finally:
        store.close()


def test_pid_alive_knows_this_process() -> None:
    """This process runs; a pid beyond the kernel's range does not."""
    assert pid_alive(os.getpid())
    assert not pid_alive(2**22 + 12345)
