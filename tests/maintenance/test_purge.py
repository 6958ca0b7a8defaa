# -*- test-case-name: tests.maintenance.test_purge -*-
"""Tests for `fjmcp.maintenance.purge.ExpiredPurger`: it purges on its ticks."""

from __future__ import annotations

from twisted.internet.defer import Deferred
from twisted.internet.task import Clock

from fjmcp.maintenance.purge import ExpiredPurger
from fjmcp.store.store import open_store_sync
from tests.maintenance.support import DeferringStore
from tests.standin.support import result_of

DAY = 24 * 3600.0


def test_purges_idle_registrations_on_each_tick() -> None:
    """
    An idle registration is kept until the first tick after its retention,
    then purged; the tick's counts come back from purge_once too.
    """
    memory_store = open_store_sync(":memory:")
    memory_store.conn.execute(
        "INSERT INTO clients (client_id, kind, auth_method, created_at) "
        "VALUES ('idle', 'dcr', 'none', 0)"
    )
    clock = Clock()
    purger = ExpiredPurger(DeferringStore(memory_store), clock, 3600.0, 30 * DAY)
    purger.startService()
    clock.advance(3600)
    assert memory_store.conn.execute("SELECT count(*) FROM clients").fetchone()[0] == 2
    clock.advance(30 * DAY)
    assert memory_store.conn.execute("SELECT count(*) FROM clients").fetchone()[0] == 1
    assert result_of(purger.stopService()) is None
    counts = result_of(Deferred.fromCoroutine(purger.purge_once()))
    assert counts["clients"] == 0
