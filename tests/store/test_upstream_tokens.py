# -*- test-case-name: tests.store.test_upstream_tokens -*-
"""Tests for `fjmcp.store.upstream_tokens`: sealed rows, generations, CAS."""

from __future__ import annotations

import pytest

from fjmcp.oauth.keys import KeyRing, SealError
from fjmcp.store.dialect import Dialect
from fjmcp.store.grants import upsert_user_txn
from fjmcp.store.store import SyncStore
from fjmcp.store.upstream_tokens import (
    LEGACY_SCOPES,
    delete_upstream_txn,
    due_tokens,
    due_tokens_txn,
    expiring_upstream_txn,
    get_upstream_txn,
    put_upstream_txn,
    scope_key,
    upstream_aad,
)
from tests.store.support import SyncRunner as _Runner
from tests.store.support import open_memory_store
from tests.store.support import run_sync as _run_sync


def test_put_get_generation_and_cas(dialect: Dialect) -> None:
    """Each put bumps the generation; a stale expected generation writes nothing."""
    ring = KeyRing.generate()
    with open_memory_store(dialect) as store:
        uid = store.run(upsert_user_txn, "alice", 1, 0.0)
        assert store.run(put_upstream_txn, uid, ring.seal, "a1", "r1", 100.0, 1.0) == 1
        row = store.run(get_upstream_txn, "alice")
        assert row is not None and row.generation == 1
        assert (
            ring.open(row.key_id, row.access_sealed, upstream_aad(uid, "access"))
            == b"a1"
        )
        assert row.refresh_sealed is not None
        assert (
            ring.open(row.key_id, row.refresh_sealed, upstream_aad(uid, "refresh"))
            == b"r1"
        )
        assert (
            store.run(put_upstream_txn, uid, ring.seal, "a2", "r2", 200.0, 2.0, 1) == 2
        )
        assert (
            store.run(put_upstream_txn, uid, ring.seal, "a3", "r3", 300.0, 3.0, 1)
            is None
        )
        row2 = store.run(get_upstream_txn, "alice")
        assert row2 is not None and row2.generation == 2 and row2.expires_at == 200.0


def test_sealed_value_is_bound_to_its_row_and_column(dialect: Dialect) -> None:
    """A sealed access token does not open as the refresh column or another user."""
    ring = KeyRing.generate()
    with open_memory_store(dialect) as store:
        uid = store.run(upsert_user_txn, "alice", 1, 0.0)
        store.run(put_upstream_txn, uid, ring.seal, "a1", None, None, 1.0)
        row = store.run(get_upstream_txn, "alice")
        assert row is not None and row.refresh_sealed is None and row.expires_at is None
        with pytest.raises(SealError):
            ring.open(row.key_id, row.access_sealed, upstream_aad(uid, "refresh"))
        with pytest.raises(SealError):
            ring.open(row.key_id, row.access_sealed, upstream_aad(uid + 1, "access"))


def test_expiring_and_delete(dialect: Dialect) -> None:
    """Only refreshable tokens expiring before the bound are listed; delete works."""
    ring = KeyRing.generate()
    with open_memory_store(dialect) as store:
        a = store.run(upsert_user_txn, "alice", 1, 0.0)
        b = store.run(upsert_user_txn, "bob", 2, 0.0)
        c = store.run(upsert_user_txn, "carol", 3, 0.0)
        store.run(put_upstream_txn, a, ring.seal, "a", "r", 50.0, 1.0)
        store.run(put_upstream_txn, b, ring.seal, "b", None, 40.0, 1.0)  # no refresh
        store.run(put_upstream_txn, c, ring.seal, "c", "r", 500.0, 1.0)
        assert store.run(expiring_upstream_txn, 100.0) == [("alice", 1, 50.0)]
        assert store.run(delete_upstream_txn, "alice")
        assert not store.run(delete_upstream_txn, "alice")
        assert store.run(get_upstream_txn, "alice") is None


READ = scope_key(["read:repository", "read:user"])
FULL = scope_key(["write:repository", "read:user", "write:issue"])


def test_scope_key_is_a_set() -> None:
    """Order and repetition do not change a grant's key."""
    assert scope_key(["b", "a", "b"]) == scope_key(["a", "b"]) == "a b"
    assert scope_key([]) == LEGACY_SCOPES


def test_each_grant_of_a_user_has_its_own_token_and_generation(
    dialect: Dialect,
) -> None:
    """A read-only and a full grant of one user are two rows, each with a CAS."""
    ring = KeyRing.generate()
    with open_memory_store(dialect) as store:
        uid = store.run(upsert_user_txn, "alice", 1, 0.0)
        put = put_upstream_txn
        assert store.run(put, uid, ring.seal, "ro", "r1", 10.0, 1.0, None, READ) == 1
        assert store.run(put, uid, ring.seal, "rw", "r2", 20.0, 1.0, None, FULL) == 1
        assert store.run(put, uid, ring.seal, "rw2", "r3", 30.0, 2.0, 1, FULL) == 2
        read = store.run(get_upstream_txn, "alice", READ)
        full = store.run(get_upstream_txn, "alice", FULL)
        assert read is not None and full is not None
        assert (read.generation, read.scopes) == (1, READ)
        assert (full.generation, full.scopes) == (2, FULL)
        opened = ring.open(full.key_id, full.access_sealed, upstream_aad(uid, "access"))
        assert opened == b"rw2"
        due = store.run(due_tokens_txn, 100.0, 0.0)
        assert {(d.user, d.scopes, d.generation) for d in due} == {
            ("alice", READ, 1),
            ("alice", FULL, 2),
        }
        assert store.run(delete_upstream_txn, "alice", READ)
        assert store.run(get_upstream_txn, "alice", READ) is None
        assert store.run(get_upstream_txn, "alice", FULL) is not None
        assert store.run(delete_upstream_txn, "alice")
        assert store.run(get_upstream_txn, "alice", FULL) is None


def test_a_row_without_scopes_is_adopted_by_the_first_grant(dialect: Dialect) -> None:
    """
    A row stored before grants had scopes is found (and re-keyed, still
    opening) by the first grant that reads it; a second grant starts empty.
    """
    ring = KeyRing.generate()
    with open_memory_store(dialect) as store:
        uid = store.run(upsert_user_txn, "alice", 1, 0.0)
        store.run(put_upstream_txn, uid, ring.seal, "old", "r", 10.0, 1.0)
        adopted = store.run(get_upstream_txn, "alice", FULL)
        assert adopted is not None and adopted.scopes == FULL
        assert adopted.generation == 1
        assert store.run(get_upstream_txn, "alice", LEGACY_SCOPES) is None
        assert store.run(get_upstream_txn, "alice", READ) is None
        access = ring.open(
            adopted.key_id, adopted.access_sealed, upstream_aad(uid, "access")
        )
        assert access == b"old"


def test_a_write_adopts_the_old_row_and_continues_its_generation(
    dialect: Dialect,
) -> None:
    """A refresh of an adopted row is CAS'd against the old row's generation."""
    ring = KeyRing.generate()
    with open_memory_store(dialect) as store:
        uid = store.run(upsert_user_txn, "alice", 1, 0.0)
        store.run(put_upstream_txn, uid, ring.seal, "old", "r", 10.0, 1.0)
        put = put_upstream_txn
        assert store.run(put, uid, ring.seal, "new", "r2", 20.0, 2.0, 1, FULL) == 2
        assert store.run(get_upstream_txn, "alice", LEGACY_SCOPES) is None
        row = store.run(get_upstream_txn, "alice", FULL)
        assert row is not None and row.generation == 2


def test_due_tokens_wrapper(memory_store: SyncStore) -> None:
    """`due_tokens` runs `due_tokens_txn` through any transaction runner."""
    ring = KeyRing.generate()
    uid = memory_store.run(upsert_user_txn, "alice", 1, 0.0)
    memory_store.run(put_upstream_txn, uid, ring.seal, "a", "r", 50.0, 1.0, None, FULL)
    due = _run_sync(due_tokens(_Runner(memory_store), 100.0, 0.0))
    assert [(d.user, d.scopes, d.has_live_grant) for d in due] == [
        ("alice", FULL, False)
    ]


def test_a_grant_that_may_not_adopt_leaves_the_old_row(dialect: Dialect) -> None:
    """
    The read-only grant reads and writes without adopting: a token of
    schema 1 (the full scopes') stays for the full-access grant.
    """
    ring = KeyRing.generate()
    with open_memory_store(dialect) as store:
        uid = store.run(upsert_user_txn, "alice", 1, 0.0)
        store.run(put_upstream_txn, uid, ring.seal, "old", "r", 10.0, 1.0)
        assert store.run(get_upstream_txn, "alice", READ, False) is None
        put = put_upstream_txn
        assert store.run(put, uid, ring.seal, "ro", "r2", 20.0, 2.0, None, READ, False)
        assert store.run(get_upstream_txn, "alice", LEGACY_SCOPES) is not None
        adopted = store.run(get_upstream_txn, "alice", FULL)
        assert adopted is not None and adopted.generation == 1


def test_due_tokens_tell_which_consent_modes_are_alive(dialect: Dialect) -> None:
    """
    Each due row says whether the user holds a live broker refresh token of
    a full-access grant and of a read-only one (``mcp:read-only`` in its
    scope), so the refresher keeps each upstream grant alive only for the
    clients that will use it.
    """
    ring = KeyRing.generate()
    with open_memory_store(dialect) as store:
        for user in ("alice", "bob", "carol"):
            uid = store.run(upsert_user_txn, user, None, 0.0)
            for key in (FULL, READ):
                store.run(
                    put_upstream_txn, uid, ring.seal, "a", "r", 50.0, 1.0, None, key
                )
        _refresh_token(store, "alice", "mcp mcp:read-only")
        _refresh_token(store, "bob", "mcp")
        due = store.run(due_tokens_txn, 100.0, 0.0)
        flags = {
            (d.user, d.scopes): (d.has_live_grant, d.live_full, d.live_read_only)
            for d in due
        }
        for key in (FULL, READ):
            assert flags[("alice", key)] == (True, False, True)
            assert flags[("bob", key)] == (True, True, False)
            assert flags[("carol", key)] == (False, False, False)


def _refresh_token(store: SyncStore, login: str, scope: str) -> None:
    """Give ``login`` a live broker refresh token of ``scope`` (a redeemed code)."""
    from fjmcp.store.grants import (
        CodeGrant,
        Mint,
        insert_code_txn,
        redeem_code_txn,
        user_id_txn,
    )

    uid = store.run(user_id_txn, login)
    assert uid is not None
    code = CodeGrant(
        f"{login}-code",
        "admin-cli",
        uid,
        "http://127.0.0.1/cb",
        "x" * 43,
        scope,
        "http://127.0.0.1:8080/mcp",
        f"{login}-family",
        0.0,
        600.0,
    )
    store.run(insert_code_txn, code)
    mint = Mint(f"{login}-at", 3600.0, f"{login}-rt", 86400.0, 0.0)
    outcome = store.run(redeem_code_txn, code.code_hash, lambda c: None, mint)
    assert outcome.status == "ok"
