# -*- test-case-name: tests.store.test_store -*-
"""
Tests for the store facade on the real reactor and the pool's real thread:
opening (fresh, reopen, upgrade, every failure), transactions, the health
check and closing without leaks; and the synchronous variant.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import stat
import threading
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from twisted.internet.defer import gatherResults

from fjmcp.store.dialect import SQLITE, Txn
from fjmcp.store.errors import StoreConstraintError, StoreError, StoreInUseError
from fjmcp.store.lock import StoreLock
from fjmcp.store.runner import TxnRunner
from fjmcp.store.store import Store, open_store, open_store_sync, run_txn
from tests.store.support import V1, V2, open_fds, recorded, tables, write_migrations


def _reactor() -> Any:
    from twisted.internet import reactor

    return reactor


def _insert_client_txn(cursor: Txn, client_id: str, name: str) -> int:
    return cursor.insert_id(
        "INSERT INTO clients (id, name) VALUES (?, ?)", (client_id, name)
    )


def _client_names_txn(cursor: Txn) -> list[str]:
    rows = cursor.execute("SELECT name FROM clients ORDER BY id").fetchall()
    return [r[0] for r in rows]


def _tables_txn(cursor: Txn) -> set[str]:
    rows = cursor.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table'"
        " AND name NOT LIKE 'sqlite_%'"
    ).fetchall()
    return {r[0] for r in rows}


class RefusedError(Exception):
    """A domain error raised inside a transaction function."""


def _insert_then_refuse_txn(cursor: Txn) -> None:
    cursor.execute("INSERT INTO clients (id, name) VALUES ('c9', 'nine')")
    raise RefusedError("no")


async def _open(path: Path, migrations: Any = None, **kw: Any) -> Store:
    return await open_store(
        _reactor(), str(path), migrations=migrations or _v1(path), **kw
    )


def _v1(path: Path) -> Path:
    return write_migrations(path.parent / "migrations", V1)


# --- opening ----------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_fresh_store_is_created_and_migrated(tmp_path: Path) -> None:
    """
    Opening a store in a missing directory creates the directory (0700) and a
    private file (0600), applies the migrations and records them.
    """
    path = tmp_path / "state" / "deep" / "fjmcp.db"
    store = await _open(path, write_migrations(tmp_path / "m", V2))
    try:
        assert store.path == str(path)
        assert store.schema_version == 2
        assert stat.S_IMODE(os.stat(path.parent).st_mode) == 0o700
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        assert await store.run(_tables_txn) == {
            "schema_migrations",
            "clients",
            "grants",
        }
        mode = await store.run(lambda c: c.execute("PRAGMA journal_mode").fetchone()[0])
        assert mode == "wal"
        fks = await store.run(lambda c: c.execute("PRAGMA foreign_keys").fetchone()[0])
        assert fks == 1
    finally:
        await store.close()


@pytest_twisted.ensureDeferred
async def test_reopening_is_idempotent(tmp_path: Path) -> None:
    """Closing and reopening keeps the data, applies nothing, backs up nothing."""
    path = tmp_path / "fjmcp.db"
    store = await _open(path)
    await store.run(_insert_client_txn, "c1", "one")
    await store.close()
    again = await _open(path)
    try:
        assert await again.run(_client_names_txn) == ["one"]
        assert again.schema_version == 1
    finally:
        await again.close()
    assert list(tmp_path.glob("fjmcp.db.backup-*")) == []
    conn = sqlite3.connect(path)
    try:
        assert recorded(conn) == [(1, "0001_init.sql")]
    finally:
        conn.close()


@pytest_twisted.ensureDeferred
async def test_upgrade_backs_up_the_existing_store(tmp_path: Path) -> None:
    """Opening an existing store with new migrations first writes a backup."""
    path = tmp_path / "fjmcp.db"
    store = await _open(path)
    await store.run(_insert_client_txn, "c1", "one")
    await store.close()
    migrations = write_migrations(tmp_path / "migrations", V2)
    upgraded = await _open(path, migrations)
    try:
        assert upgraded.schema_version == 2
    finally:
        await upgraded.close()
    [backup] = tmp_path.glob("fjmcp.db.backup-*-v1")
    conn = sqlite3.connect(backup)
    try:
        assert tables(conn) == {"schema_migrations", "clients"}
        assert conn.execute("SELECT name FROM clients").fetchall() == [("one",)]
    finally:
        conn.close()


@pytest_twisted.ensureDeferred
async def test_failing_migration_fails_the_open_and_releases_everything(
    tmp_path: Path,
) -> None:
    """A bad migration gives `StoreError` naming it; no lock or handle is left."""
    before = open_fds()
    migrations = write_migrations(
        tmp_path / "m", {**V1, "0002_bad.sql": "CREATE TABLE t (x); SELEC 1;"}
    )
    with pytest.raises(
        StoreError, match=r"migration 0002_bad\.sql failed at statement 2"
    ):
        await _open(tmp_path / "fjmcp.db", migrations)
    assert open_fds() == before
    StoreLock.acquire(str(tmp_path / "fjmcp.db")).release()
    conn = sqlite3.connect(tmp_path / "fjmcp.db")
    try:
        assert "t" not in tables(conn)
        assert recorded(conn) == [(1, "0001_init.sql")]
    finally:
        conn.close()


@pytest_twisted.ensureDeferred
async def test_corrupt_file_gives_a_clear_error(tmp_path: Path) -> None:
    """A file that is not a database is named and explained; nothing leaks."""
    path = tmp_path / "fjmcp.db"
    path.write_bytes(b"this is not an sqlite file, " * 200)
    before = open_fds()
    with pytest.raises(StoreError) as caught:
        await _open(path)
    message = str(caught.value)
    assert str(path) in message
    assert "not an SQLite database" in message
    assert "file is not a database" in message
    assert open_fds() == before
    StoreLock.acquire(str(path)).release()


@pytest_twisted.ensureDeferred
async def test_unwritable_directory_gives_a_clear_error(tmp_path: Path) -> None:
    """A store path below a regular file cannot be created: the error says so."""
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(
        StoreError,
        match=r"store .*/file/sub/fjmcp\.db: cannot create its directory "
        r".*/file/sub: Not a directory",
    ):
        await _open(blocker / "sub" / "fjmcp.db", write_migrations(tmp_path / "m", V1))


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through permissions")
@pytest_twisted.ensureDeferred
async def test_read_only_directory_gives_a_clear_error(tmp_path: Path) -> None:
    """A directory this user cannot write names the file it could not create."""
    locked = tmp_path / "ro"
    locked.mkdir(mode=0o500)
    try:
        with pytest.raises(StoreError, match=r"ro/fjmcp\.db.*Permission denied"):
            await _open(locked / "fjmcp.db")
    finally:
        locked.chmod(0o700)


@pytest_twisted.ensureDeferred
async def test_directory_as_store_path_is_refused(tmp_path: Path) -> None:
    """A store path that is a directory gives a clear error."""
    (tmp_path / "db").mkdir()
    with pytest.raises(StoreError, match=r"is a directory"):
        await _open(tmp_path / "db")


@pytest_twisted.ensureDeferred
async def test_second_daemon_is_refused(tmp_path: Path) -> None:
    """A second open of one store fails with `StoreInUseError`; the first goes on."""
    path = tmp_path / "fjmcp.db"
    store = await _open(path)
    try:
        with pytest.raises(StoreInUseError, match="another fjmcp daemon"):
            await _open(path)
        with pytest.raises(StoreInUseError):
            open_store_sync(str(path), migrations=_v1(path))
        await store.run(_insert_client_txn, "c1", "one")
    finally:
        await store.close()


@pytest_twisted.ensureDeferred
async def test_database_locked_by_another_process_is_reported(tmp_path: Path) -> None:
    """A write lock held outside fjmcp past the busy timeout is named and explained."""
    path = tmp_path / "fjmcp.db"
    await (await _open(path)).close()
    other = sqlite3.connect(path, isolation_level=None)
    try:
        other.execute("BEGIN EXCLUSIVE")
        migrations = write_migrations(tmp_path / "migrations", V2)
        with pytest.raises(StoreError) as caught:
            await _open(path, migrations, busy_timeout=0.05)
        assert str(path) in str(caught.value)
        assert "locked by another process" in str(caught.value)
    finally:
        other.execute("ROLLBACK")
        other.close()
    StoreLock.acquire(str(path)).release()


@pytest_twisted.ensureDeferred
async def test_memory_path_is_refused_for_the_daemon(tmp_path: Path) -> None:
    """The daemon's store must be a file."""
    with pytest.raises(StoreError, match="must name a file"):
        await open_store(_reactor(), ":memory:", migrations=_v1(tmp_path / "x"))


# --- transactions --------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_run_returns_the_result_and_commits(tmp_path: Path) -> None:
    """`Store.run` fires with the function's result; its writes are committed."""
    path = tmp_path / "fjmcp.db"
    store = await _open(path)
    try:
        await store.run(_insert_client_txn, "c1", "one")
        await store.run(_insert_client_txn, client_id="c2", name="two")
        conn = sqlite3.connect(path)
        try:
            assert conn.execute("SELECT count(*) FROM clients").fetchone() == (2,)
        finally:
            conn.close()
    finally:
        await store.close()


@pytest_twisted.ensureDeferred
async def test_run_wraps_sqlite_errors(tmp_path: Path) -> None:
    """SQL errors arrive as `StoreError`, violations as `StoreConstraintError`."""
    path = tmp_path / "fjmcp.db"
    store = await _open(path)
    try:
        with pytest.raises(StoreError, match=rf"store {path}: no such table: nope"):
            await store.run(lambda c: c.execute("SELECT * FROM nope"))
        await store.run(_insert_client_txn, "c1", "one")
        with pytest.raises(StoreConstraintError, match="UNIQUE"):
            await store.run(_insert_client_txn, "c1", "again")
        assert await store.run(_client_names_txn) == ["one"]
    finally:
        await store.close()


@pytest_twisted.ensureDeferred
async def test_domain_errors_roll_back_and_pass_through(tmp_path: Path) -> None:
    """A non-SQL exception is re-raised as is, after rolling the writes back."""
    store = await _open(tmp_path / "fjmcp.db")
    try:
        with pytest.raises(RefusedError):
            await store.run(_insert_then_refuse_txn)
        assert await store.run(_client_names_txn) == []
    finally:
        await store.close()


@pytest_twisted.ensureDeferred
async def test_store_fits_the_query_modules_runner(tmp_path: Path) -> None:
    """`Store` fits `TxnRunner`, the protocol the query modules are typed against."""
    store = await _open(tmp_path / "fjmcp.db")
    runner: TxnRunner = store
    try:
        assert await runner.run(_client_names_txn) == []
    finally:
        await store.close()


# --- health -------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_check_passes_on_a_healthy_store(tmp_path: Path) -> None:
    """The health probe succeeds on an open, intact store."""
    store = await _open(tmp_path / "fjmcp.db")
    try:
        await store.check()  # fails the test if the probe fails
    finally:
        await store.close()


@pytest_twisted.ensureDeferred
async def test_check_fails_when_the_file_is_removed_or_replaced(tmp_path: Path) -> None:
    """
    A store file deleted or swapped under the daemon fails the probe: the
    daemon would otherwise write to a file nobody will open again.
    """
    path = tmp_path / "fjmcp.db"
    store = await _open(path)
    try:
        shutil.copy(path, tmp_path / "copy.db")
        os.replace(tmp_path / "copy.db", path)
        with pytest.raises(StoreError, match="was replaced on disk"):
            await store.check()
        os.unlink(path)
        with pytest.raises(StoreError, match="is gone from disk"):
            await store.check()
    finally:
        await store.close()


# --- closing --------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_close_leaves_no_file_handles_and_frees_the_lock(tmp_path: Path) -> None:
    """
    After close the process holds no descriptor it opened for the store (the
    database, its WAL and shared memory, the lock), the pool's thread has
    ended, and the lock is free.
    """
    path = tmp_path / "fjmcp.db"
    before = open_fds()
    threads = threading.active_count()
    store = await _open(path)
    await store.run(_insert_client_txn, "c1", "one")
    assert any(str(path) in fd for fd in open_fds() - before)
    await store.close()
    assert open_fds() == before
    assert threading.active_count() == threads
    StoreLock.acquire(str(path)).release()


@pytest_twisted.ensureDeferred
async def test_close_waits_for_queued_work_then_refuses_more(tmp_path: Path) -> None:
    """
    Work queued before close completes; run after close fails with
    `StoreError`; a second close waits for the same close.
    """
    store = await _open(tmp_path / "fjmcp.db")
    queued = [store.run(_insert_client_txn, f"c{i}", f"n{i}") for i in range(20)]
    closing = store.close()
    again = store.close()
    await gatherResults(queued)
    await closing
    await again
    with pytest.raises(StoreError, match="is closed"):
        await store.run(_client_names_txn)
    with sqlite3.connect(tmp_path / "fjmcp.db") as conn:
        assert conn.execute("SELECT count(*) FROM clients").fetchone() == (20,)
    conn.close()


# --- synchronous variant -----------------------------------------------------


def test_sync_store_has_the_same_semantics(tmp_path: Path) -> None:
    """
    `open_store_sync` creates, migrates and locks like the daemon, runs the
    same ``_txn`` functions in transactions, and releases all on exit.
    """
    path = tmp_path / "d" / "fjmcp.db"
    before = open_fds()
    with open_store_sync(str(path), migrations=_v1(path)) as store:
        assert store.migration.applied == ("0001_init.sql",)
        assert store.run(_insert_client_txn, "c1", "one") >= 1
        with pytest.raises(StoreConstraintError):
            store.run(_insert_client_txn, "c1", "dup")
        with pytest.raises(RefusedError):
            store.run(_insert_then_refuse_txn)
        assert store.run(_client_names_txn) == ["one"]
        with pytest.raises(StoreInUseError):
            open_store_sync(str(path), migrations=_v1(path))
        assert store.conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    assert open_fds() == before


def test_sync_store_in_memory_uses_the_shipped_schema() -> None:
    """``open_store_sync(":memory:")`` is a migrated private store for unit tests."""
    with open_store_sync(":memory:") as store:
        assert store.migration.version >= 1
        assert "schema_migrations" in tables(store.conn)
        assert store.conn.execute("PRAGMA foreign_keys").fetchone() == (1,)


def test_sync_store_corrupt_file_leaks_nothing(tmp_path: Path) -> None:
    """A corrupt file fails `open_store_sync` clearly, with no handle or lock left."""
    path = tmp_path / "fjmcp.db"
    path.write_bytes(b"garbage" * 1000)
    before = open_fds()
    with pytest.raises(StoreError, match="not an SQLite database"):
        open_store_sync(str(path), migrations=_v1(path))
    assert open_fds() == before


def test_run_txn_on_a_plain_connection() -> None:
    """`run_txn` works on any autocommit connection, e.g. ``:memory:``."""
    conn = sqlite3.connect(":memory:", isolation_level=None)
    try:
        conn.execute("CREATE TABLE clients (id TEXT PRIMARY KEY, name TEXT)")
        run_txn(SQLITE, conn, ":memory:", _insert_client_txn, "c1", "one")
        with pytest.raises(RefusedError):
            run_txn(SQLITE, conn, ":memory:", _insert_then_refuse_txn)
        assert run_txn(SQLITE, conn, ":memory:", _client_names_txn) == ["one"]
        assert not conn.in_transaction
    finally:
        conn.close()
