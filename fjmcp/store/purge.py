# -*- test-case-name: tests.store.test_purge -*-
"""
Deleting what has expired, and the registrations nobody uses any more.

Clients re-register on every connect (Claude.ai, MCP Inspector), so
dynamic registrations pile up. A registration (``kind = 'dcr'``; never an
operator-known, metadata-document or built-in client) with no live token,
unused (or, never used, registered) longer ago than the retention, is
deleted with everything that hangs off it (consents, codes, tokens, logins
in progress: ``ON DELETE CASCADE``). Expired logins in progress, long-dead
codes, expired tokens and kept refresh answers go too.
"""

from __future__ import annotations

from fjmcp.store.grants import purge_expired_txn
from fjmcp.store.runner import Cursor

__all__ = ["purge_txn"]


def purge_txn(cursor: Cursor, now: float, client_retention: float) -> dict[str, int]:
    """Delete expired rows and idle registrations; how many of each."""
    counts = purge_expired_txn(cursor, now)
    cursor.execute("DELETE FROM refresh_replays WHERE expires_at <= ?", (now,))
    counts["refresh_answers"] = cursor.rowcount
    cursor.execute("DELETE FROM account_logins WHERE expires_at <= ?", (now,))
    counts["account_logins"] = cursor.rowcount
    cursor.execute("DELETE FROM client_assertions WHERE expires_at < ?", (now,))
    counts["client_assertions"] = cursor.rowcount
    cursor.execute(
        "DELETE FROM clients WHERE kind = 'dcr' "
        "AND COALESCE(last_used_at, created_at) <= ? "
        "AND NOT EXISTS (SELECT 1 FROM tokens WHERE tokens.client_id = "
        "clients.client_id AND tokens.revoked_at IS NULL AND tokens.expires_at > ?)",
        (now - client_retention, now),
    )
    counts["clients"] = cursor.rowcount
    return counts
