# -*- test-case-name: tests.store.test_dialect -*-
"""
Tests for `fjmcp.store.dialect`: what each dialect writes for the query
modules (placeholders, upserts, inserted ids, the clock) and SQLite's own
housekeeping (backup, lock), run through the dialect fixture.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fjmcp.store.dialect import SQLITE, Dialect, OnlineBackup, Txn
from fjmcp.store.errors import StoreConstraintError, StoreInUseError
from fjmcp.store.postgres import POSTGRES
from fjmcp.store.store import SyncStore, open_store_sync
from tests.store.support import table_names_in


def _ids_txn(txn: Txn, logins: list[str]) -> list[int]:
    return [
        txn.insert_id("INSERT INTO users (login, created_at) VALUES (?, 0)", (login,))
        for login in logins
    ]


def test_insert_id_gives_each_new_rows_id(memory_store: SyncStore) -> None:
    """`Txn.insert_id` returns the id the database gave each inserted row."""
    ids = memory_store.run(_ids_txn, ["a", "b"])
    assert len(set(ids)) == 2
    rows = memory_store.execute("SELECT id, login FROM users ORDER BY id")
    assert [(i, login) for i, login in rows] == list(zip(ids, ["a", "b"], strict=True))


def _upsert_txn(txn: Txn, granted_at: float) -> None:
    txn.upsert(
        "consents",
        {"user_id": 1, "client_id": "admin-cli", "granted_at": granted_at},
        key=("user_id", "client_id"),
    )


def test_upsert_inserts_then_overwrites(memory_store: SyncStore) -> None:
    """The dialect's upsert inserts a new key and updates an existing one."""
    memory_store.run(_ids_txn, ["a"])
    memory_store.run(_upsert_txn, 1.0)
    memory_store.run(_upsert_txn, 2.0)
    rows = memory_store.execute("SELECT user_id, granted_at FROM consents")
    assert list(rows) == [(1, 2.0)]


def test_upsert_accepts_identifiers_only(dialect: Dialect) -> None:
    """Names spliced into the SQL must be identifiers, never arbitrary text."""
    with pytest.raises(ValueError, match="identifier"):
        dialect.upsert("t; DROP TABLE users", ["a"], ["a"], [])
    with pytest.raises(ValueError, match="identifier"):
        dialect.upsert("t", ["a", "b = 1 --"], ["a"], ["b = 1 --"])


def _now_txn(txn: Txn) -> float:
    return txn.now()


def test_the_database_clock_is_in_epoch_seconds(memory_store: SyncStore) -> None:
    """`Txn.now` reads the database's clock as seconds since the epoch."""
    before = time.time()
    db_now = memory_store.run(_now_txn)
    assert before - 5 <= db_now <= time.time() + 5


def _violate_txn(txn: Txn) -> None:
    txn.execute(
        "INSERT INTO consents (user_id, client_id, granted_at) VALUES (9, 'x', 0)"
    )


def test_driver_errors_leave_as_store_errors(memory_store: SyncStore) -> None:
    """A constraint error of the driver becomes `StoreConstraintError`."""
    with pytest.raises(StoreConstraintError) as caught:
        memory_store.run(_violate_txn)
    assert isinstance(caught.value.__cause__, memory_store.dialect.integrity_error)


def test_sqlite_writes_question_marks_and_can_back_up(tmp_path: Path) -> None:
    """SQLite keeps ``?`` and offers an online backup (``VACUUM INTO``)."""
    assert SQLITE.sql("SELECT ? WHERE ? = 1") == "SELECT ? WHERE ? = 1"
    assert isinstance(SQLITE, OnlineBackup)
    with open_store_sync(str(tmp_path / "s.db")) as store:
        SQLITE.backup_to(store.conn, str(tmp_path / "copy.db"))
    assert "upstream_tokens" in table_names_in(tmp_path / "copy.db")


def test_sqlite_lock_is_the_single_writer_guard(tmp_path: Path) -> None:
    """The SQLite dialect's lock refuses a second holder of one file."""
    path = str(tmp_path / "s.db")
    lock = SQLITE.lock(path)
    try:
        with pytest.raises(StoreInUseError):
            SQLITE.lock(path)
    finally:
        lock.release()


def test_stores_speak_their_dialect(memory_store: SyncStore, dialect: Dialect) -> None:
    """The store under test runs its transactions through the dialect given."""
    assert memory_store.dialect is dialect


def test_postgresql_writes_pyformat_outside_quotes() -> None:
    """
    PostgreSQL's dialect turns ``?`` into ``%s`` and doubles ``%``, but leaves
    both alone inside string literals, quoted names and comments.
    """
    assert POSTGRES.sql("SELECT ? WHERE a LIKE '%?' AND b = ?") == (
        "SELECT %s WHERE a LIKE '%?' AND b = %s"
    )
    assert POSTGRES.sql('SELECT 5 % 2, "we?ird" -- why?\n, ?') == (
        'SELECT 5 %% 2, "we?ird" -- why?\n, %s'
    )
    assert not isinstance(POSTGRES, OnlineBackup)


@given(st.text(alphabet="?%'\" ab-\n/*", max_size=40))
def test_postgresql_placeholders_never_lose_text(text: str) -> None:
    """Whatever the text, conversion only ever rewrites ``?`` and ``%``."""
    converted = POSTGRES.sql(text)
    assert converted.replace("%s", "?").replace("%%", "%") == text or (
        "%s" in text or "%%" in text
    )
