# -*- test-case-name: tests.store.test_child_uids -*-
"""The child_uids table: one uid per login, one login per uid."""

from __future__ import annotations

import pytest

from fjmcp.store.child_uids import all_child_uids_txn, put_child_uid_txn
from fjmcp.store.errors import StoreConstraintError
from fjmcp.store.store import SyncStore


def test_uids_are_unique_both_ways(memory_store: SyncStore) -> None:
    """A second login cannot take a uid, nor a login a second uid."""
    memory_store.run(put_child_uid_txn, "alice", 200000, 1.0)
    with pytest.raises(StoreConstraintError):
        memory_store.run(put_child_uid_txn, "bob", 200000, 2.0)
    with pytest.raises(StoreConstraintError):
        memory_store.run(put_child_uid_txn, "alice", 200001, 2.0)
    assert memory_store.run(all_child_uids_txn) == {"alice": 200000}
