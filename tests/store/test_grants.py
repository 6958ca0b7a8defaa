# -*- test-case-name: tests.store.test_grants -*-
"""
Tests for `fjmcp.store.grants` on a migrated in-memory store: users,
consents, logins in progress, single-use codes, refresh rotation and
family revocation.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fjmcp.oauth.tokens import hash_secret, new_secret
from fjmcp.store import grants
from fjmcp.store.dialect import Dialect
from fjmcp.store.grants import CodeGrant, Mint, PendingAuthorization
from fjmcp.store.store import SyncStore
from tests.store.support import open_memory_store

AUD = "http://127.0.0.1:8080/mcp"


@pytest.fixture
def store(memory_store: SyncStore) -> SyncStore:
    """The store of one dialect (see tests/store/conftest.py)."""
    return memory_store


def _client(store: SyncStore, client_id: str = "c1") -> None:
    store.execute(
        "INSERT INTO clients (client_id, kind, auth_method, created_at) "
        "VALUES (?, 'dcr', 'none', 0)",
        (client_id,),
    )


def _code(store: SyncStore, user_id: int, client_id: str = "c1", **kw: object) -> str:
    code = new_secret()
    values: dict[str, object] = {
        "code_hash": hash_secret(code),
        "client_id": client_id,
        "user_id": user_id,
        "redirect_uri": "https://app.example/cb",
        "code_challenge": "x" * 43,
        "scope": "mcp",
        "resource": AUD,
        "family_id": "fam-" + code[:8],
        "created_at": 100.0,
        "expires_at": 700.0,
    }
    values.update(kw)
    store.run(grants.insert_code_txn, CodeGrant(**values))  # type: ignore[arg-type]
    return code


def _mint(now: float = 200.0, refresh: bool = True) -> tuple[Mint, str, str | None]:
    access = new_secret()
    rt = new_secret() if refresh else None
    mint = Mint(
        hash_secret(access),
        now + 3600,
        hash_secret(rt) if rt else None,
        now + 86400 if rt else None,
        now,
    )
    return mint, access, rt


def _live(store: SyncStore, family_id: str) -> int:
    row = store.execute(
        "SELECT count(*) FROM tokens WHERE family_id = ? AND revoked_at IS NULL",
        (family_id,),
    ).fetchone()
    return int(row[0])


def _ok(code: CodeGrant) -> str | None:
    return None


# --- users and consents ------------------------------------------------------------


def test_upsert_user_creates_then_finds(dialect: Dialect) -> None:
    """A login gets one row; the same Forgejo id finds it again."""
    with open_memory_store(dialect) as store:
        uid = store.run(grants.upsert_user_txn, "alice", 7, 1.0)
        assert store.run(grants.upsert_user_txn, "alice", 7, 2.0) == uid
        assert store.run(grants.user_id_txn, "alice") == uid
        assert store.run(grants.user_id_txn, "nobody") is None


def test_upsert_user_follows_a_rename(store: SyncStore) -> None:
    """A renamed Forgejo account keeps its row; a stale holder of the login moves."""
    uid = store.run(grants.upsert_user_txn, "alice", 7, 1.0)
    assert store.run(grants.upsert_user_txn, "alicia", 7, 2.0) == uid
    assert store.run(grants.user_id_txn, "alicia") == uid
    # Another account now takes the old login "alicia": a new row, old renamed.
    other = store.run(grants.upsert_user_txn, "alicia", 8, 3.0)
    assert other != uid
    assert store.run(grants.user_id_txn, "alicia") == other


def test_admin_user_is_claimed_by_first_login(store: SyncStore) -> None:
    """A row made by issue-token (no Forgejo id) is claimed at the first login."""
    uid = store.run(grants.upsert_user_txn, "bob", None, 1.0)
    assert store.run(grants.upsert_user_txn, "bob", None, 2.0) == uid
    assert store.run(grants.upsert_user_txn, "bob", 9, 3.0) == uid


def test_consent_is_per_user_and_client(store: SyncStore) -> None:
    """Consent recorded for (alice, c1) says nothing about c2 or bob."""
    _client(store)
    _client(store, "c2")
    alice = store.run(grants.upsert_user_txn, "alice", 1, 1.0)
    store.run(grants.upsert_user_txn, "bob", 2, 1.0)
    store.run(grants.record_consent_txn, alice, "c1", 5.0)
    store.run(grants.record_consent_txn, alice, "c1", 6.0)  # idempotent
    assert store.run(grants.has_consent_txn, "alice", "c1")
    assert not store.run(grants.has_consent_txn, "alice", "c2")
    assert not store.run(grants.has_consent_txn, "bob", "c1")


def test_the_consent_mode_is_stored_read_and_changed(store: SyncStore) -> None:
    """
    The mode is kept with the consent ('full' unless chosen); changing it
    revokes every live token of that grant only, and names their digests.
    """
    _client(store)
    _client(store, "c2")
    alice = store.run(grants.upsert_user_txn, "alice", 1, 1.0)
    store.run(grants.record_consent_txn, alice, "c1", 5.0)
    assert store.run(grants.consent_mode_txn, "alice", "c1") == "full"
    store.run(grants.record_consent_txn, alice, "c1", 6.0, "read-only")
    assert store.run(grants.consent_mode_txn, "alice", "c1") == "read-only"
    assert store.run(grants.consent_mode_txn, "alice", "c2") is None
    family, access, rt = _family(store)
    store.run(grants.record_consent_txn, alice, "c2", 5.0)
    other, _, _ = _family(store, client_id="c2")
    grant, hashes = store.run(
        grants.change_consent_mode_txn, "alice", "c1", "full", 300.0
    )
    assert grant is not None and (grant.user, grant.client_id) == ("alice", "c1")
    assert rt is not None
    assert sorted(hashes) == sorted([hash_secret(access), hash_secret(rt)])
    assert store.run(grants.consent_mode_txn, "alice", "c1") == "full"
    assert _live(store, family) == 0 and _live(store, other) == 2
    assert store.run(grants.change_consent_mode_txn, "bob", "c1", "full", 300.0) == (
        None,
        (),
    )


# --- pending authorizations -----------------------------------------------------------


def _pending(state_hash: str, expires_at: float = 700.0) -> PendingAuthorization:
    return PendingAuthorization(
        state_hash=state_hash,
        browser_hash="b" * 64,
        client_id="c1",
        redirect_uri="https://app.example/cb",
        client_state="xyz",
        code_challenge="x" * 43,
        scope="mcp",
        resource=AUD,
        consent_user=None,
        key_id="k1",
        verifier_sealed=b"sealed",
        created_at=100.0,
        expires_at=expires_at,
    )


def test_pending_is_taken_once(store: SyncStore) -> None:
    """A login in progress is returned once, then never again."""
    _client(store)
    store.run(grants.insert_pending_txn, _pending("s1"))
    taken = store.run(grants.take_pending_txn, "s1", 200.0)
    assert taken is not None and taken.client_state == "xyz"
    assert taken.verifier_sealed == b"sealed"
    assert store.run(grants.take_pending_txn, "s1", 200.0) is None
    assert store.run(grants.take_pending_txn, "unknown", 200.0) is None


def test_pending_expired_is_refused_and_dropped(store: SyncStore) -> None:
    """An expired login is not returned, and is gone afterwards."""
    _client(store)
    store.run(grants.insert_pending_txn, _pending("s1", expires_at=150.0))
    assert store.run(grants.take_pending_txn, "s1", 150.0) is None
    count = store.execute("SELECT count(*) FROM pending_authorizations")
    assert count.fetchone()[0] == 0


# --- codes ---------------------------------------------------------------------------


def test_code_redeemed_once_and_replay_revokes(store: SyncStore) -> None:
    """The first redemption mints tokens; a replay fails and revokes them."""
    _client(store)
    uid = store.run(grants.upsert_user_txn, "alice", 1, 1.0)
    code = _code(store, uid)
    mint, _, _ = _mint()
    first = store.run(grants.redeem_code_txn, hash_secret(code), _ok, mint)
    assert first.status == "ok"
    assert first.grant is not None and first.grant.user == "alice"
    family = first.grant.family_id
    assert _live(store, family) == 2
    second = store.run(grants.redeem_code_txn, hash_secret(code), _ok, _mint()[0])
    assert second.status == "replayed"
    assert set(second.revoked) == {mint.access_hash, mint.refresh_hash}
    assert _live(store, family) == 0


def test_code_expired_unknown_and_rejected(store: SyncStore) -> None:
    """Stale, unknown and mismatching redemptions mint nothing; codes are spent."""
    _client(store)
    uid = store.run(grants.upsert_user_txn, "alice", 1, 1.0)
    stale = _code(store, uid, expires_at=150.0)
    outcome = store.run(grants.redeem_code_txn, hash_secret(stale), _ok, _mint()[0])
    assert outcome.status == "expired"
    unknown = store.run(grants.redeem_code_txn, "0" * 64, _ok, _mint()[0])
    assert unknown.status == "unknown"
    code = _code(store, uid)
    rejected = store.run(
        grants.redeem_code_txn, hash_secret(code), lambda c: "bad verifier", _mint()[0]
    )
    assert (rejected.status, rejected.reason) == ("rejected", "bad verifier")
    # Spent: even a correct second attempt is a replay.
    again = store.run(grants.redeem_code_txn, hash_secret(code), _ok, _mint()[0])
    assert again.status == "replayed"
    assert store.execute("SELECT count(*) FROM tokens").fetchone()[0] == 0


def test_check_sees_the_code_binding(store: SyncStore) -> None:
    """The check callable receives the stored binding (client, redirect, PKCE)."""
    _client(store)
    uid = store.run(grants.upsert_user_txn, "alice", 1, 1.0)
    code = _code(store, uid)
    seen: list[CodeGrant] = []

    def check(c: CodeGrant) -> str | None:
        seen.append(c)
        return None

    store.run(grants.redeem_code_txn, hash_secret(code), check, _mint(refresh=False)[0])
    assert seen[0].client_id == "c1"
    assert seen[0].redirect_uri == "https://app.example/cb"
    assert seen[0].code_challenge == "x" * 43


# --- refresh -------------------------------------------------------------------------


def _family(store: SyncStore, client_id: str = "c1") -> tuple[str, str, str]:
    uid = store.run(grants.upsert_user_txn, "alice", 1, 1.0)
    code = _code(store, uid, client_id=client_id)
    mint, access, rt = _mint()
    outcome = store.run(grants.redeem_code_txn, hash_secret(code), _ok, mint)
    assert outcome.grant is not None and rt is not None
    return outcome.grant.family_id, access, rt


def test_refresh_rotates_and_reuse_revokes_family(store: SyncStore) -> None:
    """Each refresh spends its token; reusing a spent one revokes the family."""
    _client(store)
    family, _, rt1 = _family(store)
    mint2, _, rt2 = _mint(300.0)
    assert store.run(grants.refresh_txn, hash_secret(rt1), "c1", mint2).status == "ok"
    assert _live(store, family) == 4  # rt1 spent but not revoked
    mint3, _, _ = _mint(400.0)
    reused = store.run(grants.refresh_txn, hash_secret(rt1), "c1", mint3)
    assert reused.status == "reused"
    assert mint2.access_hash in reused.revoked
    assert _live(store, family) == 0
    assert rt2 is not None
    after = store.run(grants.refresh_txn, hash_secret(rt2), "c1", _mint(500.0)[0])
    assert after.status == "revoked"


def test_refresh_of_another_clients_token_changes_nothing(store: SyncStore) -> None:
    """A refresh token presented by another client is refused, family intact."""
    _client(store)
    _client(store, "c2")
    family, _, rt = _family(store)
    outcome = store.run(grants.refresh_txn, hash_secret(rt), "c2", _mint(300.0)[0])
    assert outcome.status == "foreign"
    assert _live(store, family) == 2
    again = store.run(grants.refresh_txn, hash_secret(rt), "c1", _mint(301.0)[0])
    assert again.status == "ok"


def test_refresh_expired_and_unknown(store: SyncStore) -> None:
    """An expired refresh token and an unknown one are refused."""
    _client(store)
    _, access, rt = _family(store)
    late = _mint(200.0 + 86400)[0]
    assert (
        store.run(grants.refresh_txn, hash_secret(rt), "c1", late).status == "expired"
    )
    assert store.run(grants.refresh_txn, "0" * 64, "c1", late).status == "unknown"
    # An access token is not a refresh token.
    outcome = store.run(grants.refresh_txn, hash_secret(access), "c1", late)
    assert outcome.status == "unknown"


# --- revocation and lookup ----------------------------------------------------------


def test_revoke_token_revokes_family_for_owner_only(store: SyncStore) -> None:
    """RFC 7009: the owner revokes the family; others and unknown change nothing."""
    _client(store)
    _client(store, "c2")
    family, access, _ = _family(store)
    now = 300.0
    assert store.run(grants.revoke_token_txn, "0" * 64, "c1", now).status == "unknown"
    foreign = store.run(grants.revoke_token_txn, hash_secret(access), "c2", now)
    assert foreign.status == "foreign"
    assert _live(store, family) == 2
    done = store.run(grants.revoke_token_txn, hash_secret(access), "c1", now)
    assert done.status == "ok" and len(done.revoked) == 2
    record = store.run(grants.lookup_access_txn, hash_secret(access))
    assert record is not None and record.revoked


def test_lookup_access(store: SyncStore) -> None:
    """lookup_access finds access tokens with user, client, audience and scope."""
    _client(store)
    _, access, rt = _family(store)
    record = store.run(grants.lookup_access_txn, hash_secret(access))
    assert record is not None
    assert (record.user, record.client_id, record.audience, record.scope) == (
        "alice",
        "c1",
        AUD,
        "mcp",
    )
    assert not record.revoked
    assert store.run(grants.lookup_access_txn, hash_secret(rt)) is None


def test_admin_tokens_and_purge(store: SyncStore) -> None:
    """Admin tokens are separate families; purge drops expired rows."""
    uid = store.run(grants.upsert_user_txn, "alice", None, 1.0)
    hashes = (hash_secret("t1"), hash_secret("t2"))
    store.run(
        grants.issue_admin_tokens_txn,
        uid,
        "admin-cli",
        hashes,
        audience=AUD,
        scope="mcp",
        now=10.0,
        expires_at=20.0,
        family_ids=("f1", "f2"),
    )
    assert store.run(grants.lookup_access_txn, hashes[0]) is not None
    counts = store.run(grants.purge_expired_txn, 30.0)
    assert counts["tokens"] == 2


def test_raw_rows_hold_digests_only(store: SyncStore) -> None:
    """No plaintext code, access or refresh token is found in any stored row."""
    _client(store)
    uid = store.run(grants.upsert_user_txn, "alice", 1, 1.0)
    code = _code(store, uid)
    mint, access, rt = _mint()
    store.run(grants.redeem_code_txn, hash_secret(code), _ok, mint)
    dump = b"".join(
        str(row).encode()
        for table in ("auth_codes", "tokens")
        for row in store.execute(f"SELECT * FROM {table}")  # noqa: S608
    )
    assert rt is not None
    for secret in (code, access, rt):
        assert secret.encode() not in dump


def test_lookups_never_fail_on_odd_input(memory_store: SyncStore) -> None:
    """Any text as digest or client id gives an outcome, never an error."""

    @given(st.text(max_size=100), st.text(max_size=100))
    def check(digest: str, client_id: str) -> None:
        _odd_input_on(memory_store, digest, client_id)

    check()


def _odd_input_on(store: SyncStore, digest: str, client_id: str) -> None:
    assert store.run(grants.lookup_access_txn, digest) is None
    mint = _mint()[0]
    assert store.run(grants.refresh_txn, digest, client_id, mint).status == "unknown"
    assert store.run(grants.take_pending_txn, digest, 0.0) is None
