# -*- test-case-name: tests.store.test_copy -*-
"""
Tests for `fjmcp.store.copy` and ``fjmcp admin copy-store``'s core: every
row moves between engines in one target transaction, sealed rows stay
sealed and open with the key, and a non-empty target is refused.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from fjmcp.admin.storage import copy_store
from fjmcp.oauth.keys import KeyRing, SealError
from fjmcp.store.clients import ClientRecord, get_client_txn, insert_client_txn
from fjmcp.store.copy import TABLES, read_rows_txn
from fjmcp.store.dialect import SQLITE, Dialect
from fjmcp.store.errors import StoreError
from fjmcp.store.grants import (
    issue_admin_tokens_txn,
    lookup_access_txn,
    upsert_user_txn,
)
from fjmcp.store.postgres import POSTGRES
from fjmcp.store.store import SyncStore
from fjmcp.store.upstream_tokens import get_upstream_txn, put_upstream_txn, upstream_aad
from tests.store.support import open_memory_store

NOW = 1_767_323_045.0

#: (from, to) pairs: both directions between the engines, and each to itself.
PAIRS = [(SQLITE, POSTGRES), (POSTGRES, SQLITE), (SQLITE, SQLITE)]


def _seed(store: SyncStore, keys: KeyRing) -> int:
    for login in ("alice", "bob"):
        store.run(upsert_user_txn, login, None, NOW)
    uid = store.run(upsert_user_txn, "carol", 7, NOW)
    store.run(
        insert_client_txn,
        ClientRecord(
            client_id="fjc_1",
            kind="dcr",
            auth_method="none",
            grant_types=("authorization_code", "refresh_token"),
            redirect_uris=("http://127.0.0.1/cb",),
            client_name="App",
            metadata={"client_name": "App"},
            secret_hash=None,
            created_at=NOW,
        ),
    )
    store.run(
        issue_admin_tokens_txn,
        uid,
        "admin-cli",
        ("carol-admin",),
        audience="http://127.0.0.1/mcp",
        scope="mcp",
        now=NOW,
        expires_at=NOW + 3600,
        family_ids=("carol-fam",),
    )
    store.run(
        put_upstream_txn, uid, keys.seal, "fj-access", "fj-refresh", NOW + 60, NOW
    )
    return uid


@pytest.fixture(params=PAIRS, ids=lambda pair: f"{pair[0].name}-to-{pair[1].name}")
def pair(request: pytest.FixtureRequest) -> Iterator[tuple[SyncStore, SyncStore]]:
    """A fresh source and target store on the engines of one pair."""
    source_dialect, target_dialect = request.param
    source = open_memory_store(source_dialect)
    try:
        target = open_memory_store(target_dialect)
    except BaseException:
        source.close()
        raise
    yield source, target
    source.close()
    target.close()


def test_every_row_is_copied_and_opens_on_the_target(
    pair: tuple[SyncStore, SyncStore],
) -> None:
    """
    Every table's rows arrive unchanged (ids included, so that the seals
    bound to them open), a sealed row was opened before the commit, and the
    target hands out new ids after the copied ones.
    """
    source, target = pair
    keys = KeyRing.generate()
    uid = _seed(source, keys)
    result = copy_store(source, target, keys)
    assert result["sealed_row_opened"] is True
    assert result["rows"]["users"] == 3 and result["rows"]["upstream_tokens"] == 1
    assert target.run(read_rows_txn) == source.run(read_rows_txn)
    sealed = target.run(get_upstream_txn, "carol")
    assert sealed is not None and sealed.user_id == uid
    opened = keys.open(sealed.key_id, sealed.access_sealed, upstream_aad(uid, "access"))
    assert opened == b"fj-access"
    record = target.run(lookup_access_txn, "carol-admin")
    assert record is not None and not record.revoked
    assert target.run(get_client_txn, "fjc_1") is not None
    newcomer = target.run(upsert_user_txn, "dave", None, NOW)
    assert newcomer > uid


def test_a_key_that_does_not_open_leaves_the_target_empty(
    pair: tuple[SyncStore, SyncStore],
) -> None:
    """With another key file, the check before the commit fails: nothing lands."""
    source, target = pair
    _seed(source, KeyRing.generate())
    with pytest.raises(SealError):
        copy_store(source, target, KeyRing.generate())
    assert all(
        not rows for t, rows in target.run(read_rows_txn).items() if t != "clients"
    )
    assert target.run(get_client_txn, "admin-cli") is not None


def test_a_non_empty_target_is_refused(pair: tuple[SyncStore, SyncStore]) -> None:
    """A target that already holds a user is refused and left as it was."""
    source, target = pair
    keys = KeyRing.generate()
    _seed(source, keys)
    target.run(upsert_user_txn, "zed", None, NOW)
    before = target.run(read_rows_txn)
    with pytest.raises(StoreError, match="not empty"):
        copy_store(source, target, keys)
    assert target.run(read_rows_txn) == before


def test_the_copy_knows_every_table(dialect: Dialect) -> None:
    """`TABLES` lists every table of the shipped schema, on every engine."""
    with open_memory_store(dialect) as store:
        if dialect is SQLITE:
            sql = (
                "SELECT name FROM sqlite_master WHERE type = 'table' "
                "AND name NOT LIKE 'sqlite_%'"
            )
        else:
            sql = (
                "SELECT table_name FROM information_schema.tables "
                "WHERE table_schema = current_schema()"
            )
        names = {row[0] for row in store.execute(sql).fetchall()}
    assert names - {"schema_migrations", "nodes"} == set(TABLES)


def test_an_empty_source_copies_nothing_and_opens_nothing(
    pair: tuple[SyncStore, SyncStore],
) -> None:
    """A fresh source gives a fresh target; there is no seal to open."""
    source, target = pair
    result = copy_store(source, target, KeyRing.generate())
    assert result["sealed_row_opened"] is False
    assert set(result["rows"]) == set(TABLES)
