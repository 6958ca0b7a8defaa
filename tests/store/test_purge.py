# -*- test-case-name: tests.store.test_purge -*-
"""
Tests for `fjmcp.store.purge`: idle dynamic registrations without live
tokens go with everything that hangs off them; used ones, ones with a live
token, and operator-known, metadata-document and built-in clients stay.
"""

from __future__ import annotations

import pytest

from fjmcp.store import grants
from fjmcp.store.assertions import spend_assertion_txn
from fjmcp.store.grants import Mint
from fjmcp.store.purge import purge_txn
from fjmcp.store.store import SyncStore

DAY = 24 * 3600.0
RETENTION = 30 * DAY
NOW = 100 * DAY


@pytest.fixture
def store(memory_store: SyncStore) -> SyncStore:
    """The store of one dialect (see tests/store/conftest.py)."""
    return memory_store


def _client(
    store: SyncStore, client_id: str, kind: str = "dcr", *, used: float | None = None
) -> None:
    store.execute(
        "INSERT INTO clients (client_id, kind, auth_method, created_at, last_used_at) "
        "VALUES (?, ?, 'none', ?, ?)",
        (client_id, kind, 1.0, used),
    )


def _token(store: SyncStore, client_id: str, expires_at: float, name: str) -> None:
    uid = store.run(grants.upsert_user_txn, "alice", 1, 1.0)
    store.run(grants.record_consent_txn, uid, client_id, 1.0)
    store.run(
        grants.issue_admin_tokens_txn,
        uid,
        client_id,
        (name,),
        audience="aud",
        scope="mcp",
        now=1.0,
        expires_at=expires_at,
        family_ids=("fam-" + name,),
    )


def _ids(store: SyncStore) -> set[str]:
    return {r[0] for r in store.execute("SELECT client_id FROM clients")}


def test_idle_registrations_go_and_the_rest_stay(store: SyncStore) -> None:
    """
    Only a dcr client unused past the retention and without a live token is
    purged, with its consents and tokens; known, cimd and built-in stay.
    """
    _client(store, "idle")
    _client(store, "idle-expired-token")
    _token(store, "idle-expired-token", NOW - 1, "t1")
    _client(store, "recent", used=NOW - DAY)
    _client(store, "live-token")
    _token(store, "live-token", NOW + DAY, "t2")
    _client(store, "known", "known")
    _client(store, "cimd", "cimd")
    counts = store.run(purge_txn, NOW, RETENTION)
    assert counts["clients"] == 2
    assert _ids(store) == {"recent", "live-token", "known", "cimd", "admin-cli"}
    consents = {r[0] for r in store.execute("SELECT client_id FROM consents")}
    assert consents == {"live-token"}


def test_expired_rows_go(store: SyncStore) -> None:
    """
    Expired tokens, kept refresh answers, account logins and spent client
    assertions are deleted; an assertion that could still be replayed stays.
    """
    _client(store, "c", used=NOW)
    store.run(spend_assertion_txn, "c", "old-jti", NOW - 1, NOW - 2)
    store.run(spend_assertion_txn, "c", "live-jti", NOW + 60, NOW - 2)
    _token(store, "c", NOW - 1, "old")
    store.execute(
        "INSERT INTO refresh_replays VALUES ('r', 'c', 'k', ?, 1, ?)",
        (b"\x00", NOW - 1),
    )
    store.execute(
        "INSERT INTO account_logins VALUES ('s', 'b', 'k', ?, 1, ?, NULL)",
        (b"\x00", NOW - 1),
    )
    counts = store.run(purge_txn, NOW, RETENTION)
    assert (counts["tokens"], counts["refresh_answers"], counts["account_logins"]) == (
        1,
        1,
        1,
    )
    assert counts["client_assertions"] == 1
    left = {r[0] for r in store.execute("SELECT jti_hash FROM client_assertions")}
    assert left == {"live-jti"}
    assert store.run(purge_txn, NOW, RETENTION)["tokens"] == 0


def test_refresh_answer_kept_with_its_rotation(store: SyncStore) -> None:
    """A refresh that keeps its answer stores it; the purge drops it after."""
    _client(store, "c", used=NOW)
    uid = store.run(grants.upsert_user_txn, "alice", 1, 1.0)
    store.run(
        grants.insert_code_txn,
        grants.CodeGrant("code", "c", uid, "u", "x" * 43, "mcp", "aud", "f", 1.0, 9.0),
    )
    first = Mint("a1", NOW + 10, "r1", NOW + 100, 2.0)
    store.run(grants.redeem_code_txn, "code", lambda c: None, first)
    keep = grants.SealedAnswer("k", b"sealed", 40.0)
    second = Mint("a2", NOW + 10, "r2", NOW + 100, 3.0)
    assert store.run(grants.refresh_txn, "r1", "c", second, keep).status == "ok"
    retry = store.run(grants.refresh_txn, "r1", "c", Mint("a3", 1, "r3", 1, 4.0))
    assert retry.status == "retried" and retry.answer == keep
    late = store.run(grants.refresh_txn, "r1", "c", Mint("a4", 1, "r4", 1, 41.0))
    assert late.status == "reused"
