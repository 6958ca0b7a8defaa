# -*- test-case-name: tests.store.test_nodes -*-
"""
The nodes sharing a store, so that two never run with one ``node_id``.

Session ids start with the node id and the balancer routes on it: two nodes
with one id would receive each other's sessions. At start a node claims its
id (`claim_node_txn`); while it runs it renews the claim (`seen_node_txn`);
at a clean stop it gives it back (`release_node_txn`). A claim held by a
live node is refused: on another host, one renewed within ``stale_after``
seconds by the database's clock; on this host, one whose process still
runs. A node killed outright is thus replaced at once on its own host, and
after ``stale_after`` from another.
"""

from __future__ import annotations

from collections.abc import Callable

from fjmcp.store.runner import Cursor

__all__ = ["claim_node_txn", "release_node_txn", "seen_node_txn"]


def claim_node_txn(
    cursor: Cursor,
    node_id: str,
    host: str,
    pid: int,
    stale_after: float,
    alive: Callable[[int], bool],
) -> str | None:
    """
    Claim ``node_id`` for this process (``host``, ``pid``); ``None`` when
    it is ours now, else why not (another live node holds it).
    """
    now = cursor.now()
    row = cursor.execute(
        "SELECT host, pid, seen_at FROM nodes WHERE node_id = ?", (node_id,)
    ).fetchone()
    if row is not None:
        held_host, held_pid, seen_at = str(row[0]), int(row[1]), float(row[2])
        if held_host == host:
            if held_pid != pid and alive(held_pid):
                return (
                    f"node_id {node_id!r} is in use by process {held_pid} on this "
                    "host; give each node its own node_id"
                )
        elif now - seen_at < stale_after:
            return (
                f"node_id {node_id!r} is in use by a node on {held_host} (seen "
                f"{max(now - seen_at, 0.0):.0f}s ago); give each node its own "
                f"node_id, or wait {stale_after:g}s after that node stopped"
            )
    cursor.upsert(
        "nodes",
        {
            "node_id": node_id,
            "host": host,
            "pid": pid,
            "started_at": now,
            "seen_at": now,
        },
        key=("node_id",),
    )
    return None


def seen_node_txn(cursor: Cursor, node_id: str, host: str, pid: int) -> bool:
    """Renew this process's claim; whether it still held it."""
    cursor.execute(
        f"UPDATE nodes SET seen_at = {cursor.dialect.now_sql} "  # noqa: S608
        "WHERE node_id = ? AND host = ? AND pid = ?",
        (node_id, host, pid),
    )
    return cursor.rowcount == 1


def release_node_txn(cursor: Cursor, node_id: str, host: str, pid: int) -> None:
    """Give the claim back at a clean stop."""
    cursor.execute(
        "DELETE FROM nodes WHERE node_id = ? AND host = ? AND pid = ?",
        (node_id, host, pid),
    )
