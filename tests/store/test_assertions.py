# -*- test-case-name: tests.store.test_assertions -*-
"""Tests for `fjmcp.store.assertions`: each assertion id is spent once."""

from __future__ import annotations

from fjmcp.store.assertions import spend_assertion_txn
from fjmcp.store.store import SyncStore


def test_an_assertion_id_is_accepted_once_until_it_expires(
    memory_store: SyncStore,
) -> None:
    """The first use wins; a replay fails; once expired the row is swept."""
    store = memory_store
    assert store.run(spend_assertion_txn, "c", "j1", 100.0, 10.0) is True
    assert store.run(spend_assertion_txn, "c", "j1", 100.0, 20.0) is False
    assert store.run(spend_assertion_txn, "other", "j1", 100.0, 20.0) is True
    assert store.run(spend_assertion_txn, "c", "j2", 50.0, 30.0) is True
    store.run(spend_assertion_txn, "c", "j3", 500.0, 200.0)
    rows = store.execute(
        "SELECT client_id, jti_hash FROM client_assertions ORDER BY jti_hash"
    )
    assert [tuple(r) for r in rows] == [("c", "j3")]
