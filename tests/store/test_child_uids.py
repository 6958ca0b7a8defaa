# -*- test-case-name: tests.store.test_child_uids -*-
"""The child_uids table: one uid per login, one login per uid."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from fjmcp.store.child_uids import all_child_uids_txn, put_child_uid_txn
from fjmcp.store.migrate import migrate


def test_uids_are_unique_both_ways(tmp_path: Path) -> None:
    """A second login cannot take a uid, nor a login a second uid."""
    conn = sqlite3.connect(tmp_path / "s.sqlite3", isolation_level=None)
    migrate(conn)
    cur = conn.cursor()
    put_child_uid_txn(cur, "alice", 200000, 1.0)
    with pytest.raises(sqlite3.IntegrityError):
        put_child_uid_txn(cur, "bob", 200000, 2.0)
    with pytest.raises(sqlite3.IntegrityError):
        put_child_uid_txn(cur, "alice", 200001, 2.0)
    assert all_child_uids_txn(cur) == {"alice": 200000}
