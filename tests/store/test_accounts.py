# -*- test-case-name: tests.store.test_accounts -*-
"""
Tests for `fjmcp.store.accounts`: the account page's logins (bound to a
browser, single use), the user's connections, and revoking one or all.
"""

from __future__ import annotations

import pytest

from fjmcp.store import accounts, grants
from fjmcp.store.accounts import AccountLogin
from fjmcp.store.store import SyncStore


@pytest.fixture
def store(memory_store: SyncStore) -> SyncStore:
    """The store of one dialect (see tests/store/conftest.py)."""
    return memory_store


def _grant(store: SyncStore, user: str, client_id: str, token: str) -> None:
    store.execute(
        "INSERT INTO clients (client_id, kind, auth_method, client_name, "
        "created_at) VALUES (?, 'dcr', 'none', ?, 0) ON CONFLICT DO NOTHING",
        (client_id, client_id.upper()),
    )
    uid = store.run(grants.upsert_user_txn, user, hash(user) % 1000, 1.0)
    store.run(grants.record_consent_txn, uid, client_id, 5.0)
    store.run(
        grants.issue_admin_tokens_txn,
        uid,
        client_id,
        (token,),
        audience="aud",
        scope="mcp",
        now=6.0,
        expires_at=100.0,
        family_ids=("fam-" + token,),
    )


def test_account_login_is_bound_and_single_use(store: SyncStore) -> None:
    """Another browser takes nothing; the right one takes it once; expiry ends it."""
    store.run(
        accounts.insert_account_login_txn,
        AccountLogin("s", "b", "k", b"v", 1.0, 10.0),
    )
    assert store.run(accounts.take_account_login_txn, "s", "x", 2.0) == (
        "browser",
        None,
    )
    status, login = store.run(accounts.take_account_login_txn, "s", "b", 2.0)
    assert status == "ok" and login is not None and login.verifier_sealed == b"v"
    assert store.run(accounts.take_account_login_txn, "s", "b", 3.0)[0] == "taken"
    assert store.run(accounts.take_account_login_txn, "s", "b", 10.0)[0] == "unknown"
    assert store.run(accounts.take_account_login_txn, "?", "b", 3.0)[0] == "unknown"


def test_connections_and_revoking_one(store: SyncStore) -> None:
    """A user's connections are theirs only; revoking one spares the rest."""
    _grant(store, "alice", "c1", "t1")
    _grant(store, "alice", "c2", "t2")
    _grant(store, "bob", "c1", "t3")
    listed = store.run(accounts.connections_txn, "alice", 10.0)
    assert sorted(c.client_id for c in listed) == ["c1", "c2"]
    assert {c.live_tokens for c in listed} == {1}
    assert {c.mode for c in listed} == {"full"}
    assert listed[0].client_name in ("C1", "C2") and listed[0].last_used_at == 6.0
    revoked = store.run(accounts.revoke_connection_txn, "alice", "c1", 11.0)
    assert revoked is not None and revoked.hashes == ("t1",)
    assert [
        c.client_id for c in store.run(accounts.connections_txn, "alice", 12.0)
    ] == ["c2"]
    bobs = store.run(grants.lookup_access_txn, "t3")
    assert bobs is not None and bobs.revoked is False
    assert store.run(accounts.revoke_connection_txn, "alice", "c1", 12.0) is None
    assert store.run(accounts.revoke_connection_txn, "nobody", "c1", 12.0) is None
    assert store.run(accounts.connections_txn, "nobody", 12.0) == []


def test_connections_show_the_consent_mode(store: SyncStore) -> None:
    """Each connection carries the consent mode its grant was given."""
    _grant(store, "alice", "c1", "t1")
    _grant(store, "alice", "c2", "t2")
    store.run(grants.change_consent_mode_txn, "alice", "c2", "read-only", 7.0)
    listed = store.run(accounts.connections_txn, "alice", 10.0)
    assert {c.client_id: c.mode for c in listed} == {"c1": "full", "c2": "read-only"}


def test_revoke_all(store: SyncStore) -> None:
    """Revoking all ends every connection of the user."""
    _grant(store, "alice", "c1", "t1")
    _grant(store, "alice", "c2", "t2")
    done = store.run(accounts.revoke_all_connections_txn, "alice", 10.0)
    assert sorted(r.client_id for r in done) == ["c1", "c2"]
    assert store.run(accounts.connections_txn, "alice", 11.0) == []
