# -*- test-case-name: tests.store.test_child_uids -*-
"""
Per-user child uids: which uid of ``child_uid_range`` each login holds.

The table's two unique keys are the guarantee that no uid is ever given to
two users; the broker keeps the rows in memory (one broker owns a store) and
writes each new one as it gives it out.
"""

from __future__ import annotations

from fjmcp.store.runner import Cursor

__all__ = ["all_child_uids_txn", "put_child_uid_txn"]


def all_child_uids_txn(cursor: Cursor) -> dict[str, int]:
    """Every login's uid."""
    rows = cursor.execute("SELECT login, uid FROM child_uids").fetchall()
    return {str(login): int(uid) for login, uid in rows}


def put_child_uid_txn(cursor: Cursor, login: str, uid: int, now: float) -> None:
    """Record ``login``'s uid; the store raises `StoreConstraintError` if
    either is taken."""
    cursor.execute(
        "INSERT INTO child_uids (login, uid, allocated_at) VALUES (?, ?, ?)",
        (login, uid, now),
    )
