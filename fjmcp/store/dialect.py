# -*- test-case-name: tests.store.test_dialect -*-
"""
What differs between database engines, in one small object per engine.

The query modules are written once, in portable SQL with ``?`` placeholders,
against a `Txn` (a DB-API cursor plus the engine's `Dialect`). The dialect
turns the placeholders into the driver's style, builds upserts, inserts a
row and hands back its id, names the database's clock, and owns the
engine's housekeeping: connection set-up (SQLite's PRAGMAs), the
single-writer guard (SQLite's ``flock``), the migration transaction and its
checks, and an online backup where the engine can take one from inside
(SQLite's ``VACUUM INTO``). A second engine (PostgreSQL with psycopg 3:
``%s`` placeholders, ``RETURNING``, ``now()``, advisory locks) is one more
class here and its own migrations, not a second copy of every query.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any, Final, Protocol, runtime_checkable

from attrs import frozen

from fjmcp.store.lock import StoreLock

__all__ = [
    "SQLITE",
    "BUSY_TIMEOUT_SECONDS",
    "DBAPICursor",
    "Dialect",
    "MigrationDialect",
    "OnlineBackup",
    "SqliteDialect",
    "Txn",
]

#: How long a statement waits for another process's lock before failing.
BUSY_TIMEOUT_SECONDS: Final = 5.0


class DBAPICursor(Protocol):
    """The part of a PEP 249 cursor the query modules use."""

    @property
    def rowcount(self) -> int:
        """Rows changed by the last statement."""

    def execute(self, sql: str, parameters: Any = ..., /) -> Any:
        """Run one statement."""

    def fetchone(self) -> Any:
        """The next row, or ``None``."""

    def fetchall(self) -> list[Any]:
        """The remaining rows."""

    def close(self) -> None:
        """Release the cursor."""


class DBAPIConnection(Protocol):
    """The part of a PEP 249 connection the store uses."""

    def cursor(self) -> Any:
        """A new cursor."""

    def close(self) -> None:
        """Close the connection."""


@runtime_checkable
class OnlineBackup(Protocol):
    """An engine that copies a live database to a file from inside (optional)."""

    def backup_to(self, conn: Any, target: str) -> None:
        """Write a consistent copy of the database on ``conn`` to ``target``."""


class Dialect(Protocol):
    """One database engine as the store sees it."""

    @property
    def name(self) -> str:
        """A short name for messages and parametrised tests (``sqlite``)."""

    @property
    def error(self) -> type[Exception]:
        """The driver's base error (PEP 249 ``Error``)."""

    @property
    def integrity_error(self) -> type[Exception]:
        """The driver's constraint error (PEP 249 ``IntegrityError``)."""

    @property
    def now_sql(self) -> str:
        """An SQL expression for the database's clock, in epoch seconds."""

    def sql(self, text: str) -> str:
        """``text`` written with ``?`` placeholders, in the driver's style."""

    def parameters(self, params: Sequence[Any]) -> tuple[Any, ...]:
        """``params`` as the engine can take them."""

    def upsert(
        self,
        table: str,
        columns: Sequence[str],
        key: Sequence[str],
        update: Sequence[str],
    ) -> str:
        """
        An insert of ``columns`` into ``table`` (``?`` placeholders) that
        overwrites ``update`` when a row with the same ``key`` exists.
        """

    def insert_returning_id(
        self, cursor: DBAPICursor, sql: str, params: Sequence[Any], column: str
    ) -> int:
        """Run the insert ``sql`` (``?`` placeholders); the new row's ``column``."""

    def reset_ids(self, cursor: DBAPICursor, table: str, column: str) -> None:
        """After rows were inserted with explicit ids: new ids come after them."""

    def notify(self, cursor: DBAPICursor, payload: str) -> None:
        """Tell the other nodes ``payload`` when this transaction commits."""

    def begin(self, cursor: DBAPICursor) -> None:
        """Open the transaction of one transaction function."""

    def commit(self, cursor: DBAPICursor) -> None:
        """Commit it."""

    def rollback(self, conn: Any) -> None:
        """Roll back whatever is open on ``conn`` (quietly: an error is pending)."""

    def check(self, cursor: DBAPICursor) -> None:
        """The health probe: the schema answers and the engine finds no damage."""


class MigrationDialect(Protocol):
    """
    What `fjmcp.store.migrate.migrate` needs of an engine, on a raw
    connection: autocommit, the lock that keeps two migrators apart, the
    migration transaction and the checks around it.
    """

    @property
    def name(self) -> str:
        """The engine's name; it also names its migrations (`migrations_for`)."""

    @property
    def error(self) -> type[Exception]:
        """The driver's base error."""

    def describe(self, conn: Any) -> str:
        """The database on ``conn`` for messages (never a password)."""

    def in_transaction(self, conn: Any) -> bool:
        """Whether a transaction is open on ``conn``."""

    def enter_autocommit(self, conn: Any) -> object:
        """Put ``conn`` in autocommit mode; what `leave_autocommit` restores."""

    def leave_autocommit(self, conn: Any, saved: object) -> None:
        """Restore the mode `enter_autocommit` replaced."""

    def lock_migrations(self, conn: Any) -> None:
        """Wait until this connection alone migrates the database."""

    def unlock_migrations(self, conn: Any) -> None:
        """Let the next migrator in."""

    def execute(self, conn: Any, sql: str, params: Sequence[Any] = ()) -> Any:
        """Run one statement with ``?`` placeholders; its cursor."""

    def execute_script(self, conn: Any, statement: str) -> None:
        """Run one statement of a migration file, as written (no parameters)."""

    def has_tables(self, conn: Any) -> bool:
        """Whether the database holds anything yet."""

    def begin_migration(self, conn: Any) -> None:
        """Open the transaction of one migration file."""

    def foreign_keys(self, conn: Any, enabled: bool | None = None) -> bool:
        """Whether foreign keys were switched on; switch them if asked."""

    def foreign_key_violations(self, conn: Any) -> list[tuple[Any, ...]]:
        """Rows breaking a foreign key after a migration file ran."""


def _check_names(*names: str) -> None:
    """Table and column names are spliced into SQL: identifiers only."""
    for name in names:
        if not name.isidentifier():
            raise ValueError(f"not an SQL identifier: {name!r}")


@frozen
class SqliteDialect:
    """
    SQLite through the standard library's ``sqlite3``: ``?`` placeholders,
    ``lastrowid``, explicit ``BEGIN``/``COMMIT`` on an autocommit connection,
    WAL and foreign keys by PRAGMA, ``flock`` against a second daemon and
    ``VACUUM INTO`` for the backup before a migration.
    """

    name: str = "sqlite"
    error: type[Exception] = sqlite3.Error
    integrity_error: type[Exception] = sqlite3.IntegrityError
    now_sql: str = "(julianday('now') - 2440587.5) * 86400.0"

    # --- queries ------------------------------------------------------------------

    def sql(self, text: str) -> str:
        """SQLite speaks ``?`` already."""
        return text

    def parameters(self, params: Sequence[Any]) -> tuple[Any, ...]:
        """SQLite takes any text."""
        return tuple(params)

    def upsert(
        self,
        table: str,
        columns: Sequence[str],
        key: Sequence[str],
        update: Sequence[str],
    ) -> str:
        """``INSERT ... ON CONFLICT (key) DO UPDATE SET col = excluded.col``."""
        _check_names(table, *columns, *key, *update)
        marks = ", ".join("?" for _ in columns)
        sets = ", ".join(f"{c} = excluded.{c}" for c in update)
        return (
            f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks}) "  # noqa: S608
            f"ON CONFLICT ({', '.join(key)}) DO UPDATE SET {sets}"
        )

    def insert_returning_id(
        self, cursor: DBAPICursor, sql: str, params: Sequence[Any], column: str
    ) -> int:
        """The rowid SQLite gives the inserted row (``column`` is its alias)."""
        cursor.execute(self.sql(sql), params)
        return int(getattr(cursor, "lastrowid", None) or 0)

    def reset_ids(self, cursor: DBAPICursor, table: str, column: str) -> None:
        """Nothing: SQLite's next rowid follows the largest one by itself."""

    def notify(self, cursor: DBAPICursor, payload: str) -> None:
        """Nothing: one SQLite store has one node, which told itself already."""

    # --- transactions -------------------------------------------------------------

    def begin(self, cursor: DBAPICursor) -> None:
        """``BEGIN`` (the connection is in autocommit mode)."""
        cursor.execute("BEGIN")

    def commit(self, cursor: DBAPICursor) -> None:
        """``COMMIT``."""
        cursor.execute("COMMIT")

    def rollback(self, conn: Any) -> None:
        """``ROLLBACK`` if a transaction is open; a failure is swallowed."""
        if conn.in_transaction:
            try:
                conn.execute("ROLLBACK")
            except sqlite3.Error:  # the original error matters more
                pass

    # --- connections --------------------------------------------------------------

    def connect(
        self, path: str, *, busy_timeout: float = BUSY_TIMEOUT_SECONDS
    ) -> sqlite3.Connection:
        """A configured connection to the database file ``path``."""
        conn = sqlite3.connect(path, timeout=busy_timeout)
        self.configure(conn, busy_timeout=busy_timeout)
        return conn

    def configure(
        self, conn: sqlite3.Connection, *, busy_timeout: float = BUSY_TIMEOUT_SECONDS
    ) -> None:
        """
        Set fjmcp's PRAGMAs on a new connection: busy timeout, foreign keys,
        WAL, and put it in autocommit mode (``isolation_level = None``).

        The busy timeout comes first so that switching to WAL waits for a
        lock held elsewhere. A file that cannot be used fails here (for
        instance ``file is not a database``); the connection is then closed
        before the error propagates, so a failed open leaks no file handle.
        """
        try:
            # Autocommit: fjmcp issues BEGIN/COMMIT itself (see `begin`), so
            # reads and writes of one transaction function share one
            # transaction, and migrations can run DDL in one.
            conn.isolation_level = None
            conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
            conn.execute("PRAGMA foreign_keys = ON")
            row = conn.execute("PRAGMA journal_mode = WAL").fetchone()
            mode = str(row[0]).lower() if row else ""
            # An in-memory database reports "memory"; it has no journal to share.
            if mode not in ("wal", "memory"):
                raise sqlite3.OperationalError(
                    f"cannot switch to WAL journal mode (journal_mode is {mode!r})"
                )
        except BaseException:
            conn.close()
            raise

    def lock(self, path: str) -> StoreLock:
        """One daemon per file: the ``flock`` on ``<path>.lock``."""
        return StoreLock.acquire(path)

    def check(self, cursor: DBAPICursor) -> None:
        """The health probe's integrity check (``PRAGMA quick_check``)."""
        cursor.execute("SELECT count(*) FROM schema_migrations")
        cursor.execute("PRAGMA quick_check")
        rows = cursor.fetchall()
        if rows != [("ok",)]:
            problems = "; ".join(str(r[0]) for r in rows[:3])
            raise sqlite3.DatabaseError(f"quick_check failed: {problems}")

    # --- migrations ---------------------------------------------------------------

    def describe(self, conn: Any) -> str:
        """SQLite's connection does not know its file: the caller names it."""
        return "(in memory)"

    def in_transaction(self, conn: Any) -> bool:
        """``sqlite3.Connection.in_transaction``."""
        return bool(conn.in_transaction)

    def enter_autocommit(self, conn: Any) -> object:
        """``isolation_level = None``; the previous level is returned."""
        saved = conn.isolation_level
        conn.isolation_level = None
        return saved

    def leave_autocommit(self, conn: Any, saved: object) -> None:
        """Put the isolation level back."""
        conn.isolation_level = saved

    def lock_migrations(self, conn: Any) -> None:
        """Nothing: the store's ``flock`` keeps a second daemon out already."""

    def unlock_migrations(self, conn: Any) -> None:
        """Nothing (see `lock_migrations`)."""

    def execute(self, conn: Any, sql: str, params: Sequence[Any] = ()) -> Any:
        """``conn.execute``: SQLite speaks ``?``."""
        return conn.execute(sql, tuple(params))

    def execute_script(self, conn: Any, statement: str) -> None:
        """``conn.execute`` without parameters."""
        conn.execute(statement)

    def has_tables(self, conn: Any) -> bool:
        """Whether the database holds anything yet."""
        row = conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        return bool(row[0])

    def begin_migration(self, conn: Any) -> None:
        """``BEGIN IMMEDIATE``: take the write lock before reading the schema."""
        conn.execute("BEGIN IMMEDIATE")

    def foreign_keys(self, conn: Any, enabled: bool | None = None) -> bool:
        """
        Whether foreign keys were enforced; switch them when ``enabled`` is
        given (off while a migration rebuilds tables, as SQLite requires).
        """
        was = bool(conn.execute("PRAGMA foreign_keys").fetchone()[0])
        if enabled is not None:
            conn.execute(f"PRAGMA foreign_keys = {'ON' if enabled else 'OFF'}")
        return was

    def foreign_key_violations(self, conn: Any) -> list[tuple[Any, ...]]:
        """Rows breaking a foreign key (``PRAGMA foreign_key_check``)."""
        return list(conn.execute("PRAGMA foreign_key_check").fetchall())

    def backup_to(self, conn: Any, target: str) -> None:
        """``VACUUM INTO target``: a consistent copy taken online."""
        conn.execute("VACUUM INTO ?", (target,))


#: The one SQLite dialect (stateless).
SQLITE: Final = SqliteDialect()


@frozen
class Txn:
    """
    One transaction as a query function sees it: the DB-API cursor and the
    dialect that writes SQL for it. ``execute`` takes ``?`` placeholders and
    returns the cursor (for ``fetchone``/``fetchall``).
    """

    cursor: DBAPICursor
    dialect: Dialect

    def execute(self, sql: str, params: Sequence[Any] = ()) -> DBAPICursor:
        """Run one statement written with ``?`` placeholders."""
        self.cursor.execute(self.dialect.sql(sql), self.dialect.parameters(params))
        return self.cursor

    @property
    def rowcount(self) -> int:
        """Rows changed by the last statement."""
        return int(self.cursor.rowcount)

    def insert_id(self, sql: str, params: Sequence[Any], column: str = "id") -> int:
        """Run an ``INSERT`` and return the new row's ``column``."""
        return self.dialect.insert_returning_id(self.cursor, sql, params, column)

    def upsert(
        self,
        table: str,
        values: dict[str, Any],
        key: Sequence[str],
    ) -> None:
        """Insert ``values`` into ``table``, overwriting the row with the same key."""
        columns = list(values)
        update = [c for c in columns if c not in key]
        self.execute(
            self.dialect.upsert(table, columns, key, update),
            [values[c] for c in columns],
        )

    def now(self) -> float:
        """The database's clock, in seconds since the epoch."""
        row = self.execute(f"SELECT {self.dialect.now_sql}").fetchone()
        return float(row[0])
