# -*- test-case-name: tests.admin.test_inventory -*-
"""
Tests for ``fjmcp admin users``, ``clients`` and ``sessions``
(`fjmcp.admin.inventory`) and their store queries: counts of live tokens
only, tables for people, and what a command says with no daemon running.
"""

from __future__ import annotations

import io
from pathlib import Path

from twisted.internet.task import Clock

from fjmcp.admin.client import AdminClient
from fjmcp.admin.commands import AdminContext, all_commands, format_table
from fjmcp.admin.inventory import list_clients, list_users
from fjmcp.store.dialect import SQLITE
from fjmcp.store.grants import issue_admin_tokens_txn, upsert_user_txn
from fjmcp.store.inventory import revoke_client_txn
from tests.store.support import SyncRunner, open_memory_store, run_sync

AUD = "http://127.0.0.1:8080/mcp"


def test_users_and_clients_count_only_live_tokens() -> None:
    """Revoked and expired tokens are not counted; sessions come from the
    daemon (None without one)."""
    store = open_memory_store(SQLITE)
    alice = store.run(upsert_user_txn, "alice", 1, 0.0)
    store.run(upsert_user_txn, "bob", 2, 0.0)
    for hashes, expires in ((("h1", "h2"), 100.0), (("h3",), 10.0)):
        store.run(
            issue_admin_tokens_txn,
            alice,
            "admin-cli",
            hashes,
            audience=AUD,
            scope="mcp",
            now=1.0,
            expires_at=expires,
            family_ids=tuple(f"f-{h}" for h in hashes),
        )
    store.conn.execute("UPDATE tokens SET revoked_at = 2 WHERE token_hash = 'h2'")
    runner = SyncRunner(store)
    users = run_sync(list_users(runner, 50.0, {"alice": 3}))
    assert [(u["login"], u["live_tokens"], u["sessions"]) for u in users] == [
        ("alice", 1, 3),
        ("bob", 0, 0),
    ]
    assert run_sync(list_users(runner, 50.0))[0]["sessions"] is None
    clients = {c["client_id"]: c for c in run_sync(list_clients(runner, 50.0))}
    assert clients["admin-cli"]["users"] == 1
    assert clients["admin-cli"]["live_tokens"] == 1
    assert store.run(revoke_client_txn, "nope").known is False
    store.close()


def test_tables_show_dashes_and_utc_times() -> None:
    """A table has a heading row, ``-`` for nothing, and times in UTC."""
    text = format_table(
        [{"login": "alice", "last_login_at": 0.0, "sessions": None}],
        [("login", "USER"), ("last_login_at", "LAST"), ("sessions", "S")],
    )
    assert text.splitlines() == [
        "USER   LAST                 S",
        "alice  1970-01-01 00:00:00  -",
    ]
    assert format_table([], [("a", "A")]) == "(none)"


def test_sessions_without_a_daemon_says_none_is_live(tmp_path: Path) -> None:
    """``sessions`` needs the daemon: without one it says no session is live."""
    out = io.StringIO()
    ctx = AdminContext(
        config=None,
        client=AdminClient(tmp_path / "none.sock"),
        out=out,
        reactor=Clock(),
    )
    command = all_commands()["sessions"]
    assert command.run(ctx, None) == 0  # type: ignore[arg-type]
    assert "no live sessions" in out.getvalue()
