# -*- test-case-name: tests.store.test_revocation -*-
"""Tests for `fjmcp.store.revocation`: revoking a user in one transaction."""

from __future__ import annotations

from fjmcp.oauth.keys import KeyRing
from fjmcp.store.grants import issue_admin_tokens_txn, upsert_user_txn
from fjmcp.store.revocation import revoke_user, revoke_user_txn
from fjmcp.store.store import SyncStore
from fjmcp.store.upstream_tokens import get_upstream_txn, put_upstream_txn
from tests.store.support import SyncRunner, run_sync

AUD = "http://127.0.0.1:8080/mcp"


def _seed(store: SyncStore) -> int:
    ring = KeyRing.generate()
    uid = store.run(upsert_user_txn, "alice", 1, 0.0)
    store.run(
        issue_admin_tokens_txn,
        uid,
        "admin-cli",
        ("h1", "h2"),
        audience=AUD,
        scope="mcp",
        now=1.0,
        expires_at=100.0,
        family_ids=("f1", "f2"),
    )
    store.run(put_upstream_txn, uid, ring.seal, "a", "r", 50.0, 1.0, None, "x")
    store.run(put_upstream_txn, uid, ring.seal, "b", "r", 50.0, 1.0, None, "y")
    return uid


def test_revoking_marks_tokens_and_deletes_every_grant(
    memory_store: SyncStore,
) -> None:
    """Every live token is revoked with the reason, every upstream grant deleted."""
    _seed(memory_store)
    done = memory_store.run(revoke_user_txn, "alice", 5.0, "operator")
    assert done.known and done.upstream_deleted
    assert sorted(done.token_hashes) == ["h1", "h2"]
    reasons = memory_store.execute(
        "SELECT DISTINCT revoked_at, revoked_reason FROM tokens"
    ).fetchall()
    assert reasons == [(5.0, "operator")]
    assert memory_store.run(get_upstream_txn, "alice", "x") is None
    assert memory_store.run(get_upstream_txn, "alice", "y") is None
    again = memory_store.run(revoke_user_txn, "alice", 6.0, "again")
    assert again.known and again.token_hashes == () and not again.upstream_deleted


def test_unknown_users_are_reported_not_created(memory_store: SyncStore) -> None:
    """Revoking a login the store does not know changes nothing."""
    assert not memory_store.run(revoke_user_txn, "nobody", 1.0, "r").known
    assert memory_store.execute("SELECT count(*) FROM users").fetchone() == (0,)


def test_the_async_wrapper_runs_the_same_transaction(memory_store: SyncStore) -> None:
    """`revoke_user` is `revoke_user_txn` through a transaction runner."""
    _seed(memory_store)
    done = run_sync(revoke_user(SyncRunner(memory_store), "alice", 5.0, "r"))
    assert done.known and len(done.token_hashes) == 2
