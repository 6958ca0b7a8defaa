# -*- test-case-name: tests.store.test_assertions -*-
"""
Client assertion ids (``jti``, RFC 7523 §3) spent, so each is accepted once.

One insert decides: the first request with a ``jti`` stores it, a second
(on this node or another sharing the store) finds the row and is refused.
Expired rows are swept in the same transaction, so the table holds only
assertions that could still be replayed.
"""

from __future__ import annotations

from fjmcp.store.runner import Cursor, TxnRunner

__all__ = ["spend_assertion", "spend_assertion_txn"]


def spend_assertion_txn(
    cursor: Cursor, client_id: str, jti_hash: str, expires_at: float, now: float
) -> bool:
    """
    Record that ``client_id`` used the assertion ``jti_hash``; ``False`` if
    it was used before (and has not expired since).
    """
    cursor.execute("DELETE FROM client_assertions WHERE expires_at < ?", (now,))
    cursor.execute(
        "INSERT INTO client_assertions (client_id, jti_hash, expires_at) "
        "VALUES (?, ?, ?) ON CONFLICT (client_id, jti_hash) DO NOTHING",
        (client_id, jti_hash, expires_at),
    )
    return cursor.rowcount == 1


async def spend_assertion(
    store: TxnRunner, client_id: str, jti_hash: str, expires_at: float, now: float
) -> bool:
    """Async wrapper of `spend_assertion_txn`."""
    return await store.run(spend_assertion_txn, client_id, jti_hash, expires_at, now)
