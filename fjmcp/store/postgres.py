# -*- test-case-name: tests.store.test_postgres -*-
"""
PostgreSQL through psycopg 3: the dialect, its connections and its pool.

Several nodes share one PostgreSQL database, so what SQLite gets from being
one file behind one ``flock`` PostgreSQL gets from the server: transactions
(``BEGIN``/``COMMIT`` issued by the store on autocommit connections, as for
SQLite, so that the query functions see the same semantics on both), an
advisory lock around the migrations so that nodes starting together apply
each file once, and ``now()`` as the one clock every node agrees on.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache
from typing import Any, Final

import psycopg
from attrs import frozen
from psycopg import pq
from twisted.enterprise import adbapi

from fjmcp.store.dialect import DBAPICursor, _check_names
from fjmcp.store.events import CHANNEL_PREFIX
from fjmcp.store.target import describe_location as describe_conninfo

__all__ = [
    "CONNECT_TIMEOUT_SECONDS",
    "MIGRATION_LOCK_CLASS",
    "POSTGRES",
    "PostgresDialect",
    "describe_conninfo",
    "make_postgres_pool",
]

#: How long opening a connection may take before it fails.
CONNECT_TIMEOUT_SECONDS: Final = 10

#: The first half of the advisory lock taken around migrations (the second
#: is the schema's name hashed, so that schemas in one database do not wait
#: for each other). "fjmc" in ASCII.
MIGRATION_LOCK_CLASS: Final = 0x666A6D63

# Quoted strings, quoted identifiers and comments are copied as they are;
# a ``?`` outside them is a placeholder and a ``%`` must be doubled.
_TOKENS = re.compile(
    r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|--[^\n]*|/\*.*?\*/|[?%]", re.DOTALL
)


@lru_cache(maxsize=1024)
def _pyformat(text: str) -> str:
    def swap(match: re.Match[str]) -> str:
        piece = match.group(0)
        if piece == "?":
            return "%s"
        if piece == "%":
            return "%%"
        return piece

    return _TOKENS.sub(swap, text)


@frozen
class PostgresDialect:
    """
    PostgreSQL with psycopg 3: ``%s`` placeholders, ``RETURNING``, ``now()``
    as the clock (the transaction's start, the same on every node),
    autocommit connections with explicit ``BEGIN``/``COMMIT``, and a
    session advisory lock around the migrations.
    """

    name: str = "postgresql"
    error: type[Exception] = psycopg.Error
    integrity_error: type[Exception] = psycopg.IntegrityError
    now_sql: str = "CAST(EXTRACT(EPOCH FROM now()) AS DOUBLE PRECISION)"

    # --- queries ------------------------------------------------------------------

    def sql(self, text: str) -> str:
        """``?`` becomes ``%s`` and ``%`` becomes ``%%``, outside quotes."""
        return _pyformat(text)

    def parameters(self, params: Sequence[Any]) -> tuple[Any, ...]:
        """
        PostgreSQL text cannot hold NUL: it becomes U+FFFD. fjmcp never
        stores text with NUL (identifiers are generated or validated, secrets
        are hashed), so this only makes a lookup of odd input from the
        network find nothing instead of failing.
        """
        return tuple(
            p.replace("\x00", "\ufffd") if isinstance(p, str) and "\x00" in p else p
            for p in params
        )

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
        action = (
            "DO UPDATE SET " + ", ".join(f"{c} = excluded.{c}" for c in update)
            if update
            else "DO NOTHING"
        )
        return (
            f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks}) "  # noqa: S608
            f"ON CONFLICT ({', '.join(key)}) {action}"
        )

    def insert_returning_id(
        self, cursor: DBAPICursor, sql: str, params: Sequence[Any], column: str
    ) -> int:
        """The insert with ``RETURNING column``."""
        _check_names(column)
        cursor.execute(self.sql(f"{sql} RETURNING {column}"), self.parameters(params))
        row = cursor.fetchone()
        return int(row[0])

    def reset_ids(self, cursor: DBAPICursor, table: str, column: str) -> None:
        """Move the identity sequence of ``table.column`` past its largest id."""
        _check_names(table, column)
        cursor.execute(
            f"SELECT setval(pg_get_serial_sequence('{table}', '{column}'), "  # noqa: S608
            f"COALESCE(max({column}), 0) + 1, false) FROM {table}"
        )

    def notify(self, cursor: DBAPICursor, payload: str) -> None:
        """``pg_notify`` on this schema's channel (sent at commit)."""
        cursor.execute(
            "SELECT pg_notify(%s || current_schema(), %s)",
            (CHANNEL_PREFIX, payload),
        )

    # --- transactions -------------------------------------------------------------

    def begin(self, cursor: DBAPICursor) -> None:
        """``BEGIN`` (the connection is in autocommit mode)."""
        cursor.execute("BEGIN")

    def commit(self, cursor: DBAPICursor) -> None:
        """``COMMIT``."""
        cursor.execute("COMMIT")

    def rollback(self, conn: Any) -> None:
        """``ROLLBACK`` if a transaction is open; a failure is swallowed."""
        if self.in_transaction(conn):
            try:
                conn.execute("ROLLBACK")
            except psycopg.Error:  # the original error matters more
                pass

    def check(self, cursor: DBAPICursor) -> None:
        """The health probe: the server answers and the schema is there."""
        cursor.execute("SELECT count(*) FROM schema_migrations")
        cursor.fetchone()

    # --- connections --------------------------------------------------------------

    def connect(self, conninfo: str, *, password: str | None = None) -> Any:
        """An autocommit connection to ``conninfo``."""
        return psycopg.connect(conninfo, **connect_kwargs(password))

    # --- migrations ---------------------------------------------------------------

    def describe(self, conn: Any) -> str:
        """``postgresql://user@host:port/dbname`` of the connection."""
        info = conn.info
        return f"postgresql://{info.user}@{info.host}:{info.port}/{info.dbname}"

    def in_transaction(self, conn: Any) -> bool:
        """Whether the server holds a transaction open (or failed) on ``conn``."""
        status = conn.info.transaction_status
        return bool(status != pq.TransactionStatus.IDLE)

    def enter_autocommit(self, conn: Any) -> object:
        """``autocommit = True``; the previous setting is returned."""
        saved = bool(conn.autocommit)
        conn.autocommit = True
        return saved

    def leave_autocommit(self, conn: Any, saved: object) -> None:
        """Put autocommit back."""
        conn.autocommit = bool(saved)

    def lock_migrations(self, conn: Any) -> None:
        """``pg_advisory_lock``: a second node waits until the first is done."""
        conn.execute(
            "SELECT pg_advisory_lock(%s, hashtext(current_schema()))",
            (MIGRATION_LOCK_CLASS,),
        )

    def unlock_migrations(self, conn: Any) -> None:
        """``pg_advisory_unlock`` (closing the connection would do it too)."""
        if conn.closed:
            return
        try:
            conn.execute(
                "SELECT pg_advisory_unlock(%s, hashtext(current_schema()))",
                (MIGRATION_LOCK_CLASS,),
            )
        except psycopg.Error:  # the connection is gone: so is the lock
            pass

    def execute(self, conn: Any, sql: str, params: Sequence[Any] = ()) -> Any:
        """``conn.execute`` with the placeholders converted."""
        return conn.execute(self.sql(sql), self.parameters(params))

    def execute_script(self, conn: Any, statement: str) -> None:
        """Run one statement of a migration as written (no placeholders)."""
        with conn.cursor() as cursor:
            cursor.execute(statement)

    def has_tables(self, conn: Any) -> bool:
        """Whether the current schema holds a table yet."""
        row = conn.execute(
            "SELECT count(*) FROM information_schema.tables "
            "WHERE table_schema = current_schema()"
        ).fetchone()
        return bool(row[0])

    def begin_migration(self, conn: Any) -> None:
        """``BEGIN``: PostgreSQL's DDL is transactional."""
        conn.execute("BEGIN")

    def foreign_keys(self, conn: Any, enabled: bool | None = None) -> bool:
        """Always enforced; PostgreSQL alters tables without rebuilding them."""
        return False

    def foreign_key_violations(self, conn: Any) -> list[tuple[Any, ...]]:
        """None can exist: PostgreSQL checks foreign keys on every statement."""
        return []


#: The one PostgreSQL dialect (stateless).
POSTGRES: Final = PostgresDialect()


def connect_kwargs(password: str | None) -> dict[str, Any]:
    """What every fjmcp connection to PostgreSQL is opened with."""
    kwargs: dict[str, Any] = {
        "autocommit": True,
        "connect_timeout": CONNECT_TIMEOUT_SECONDS,
        "application_name": "fjmcp",
    }
    if password is not None:
        kwargs["password"] = password
    return kwargs


def make_postgres_pool(
    reactor: Any,
    conninfo: str,
    *,
    size: int,
    password: str | None = None,
) -> adbapi.ConnectionPool:
    """
    A pool of at most ``size`` autocommit connections to ``conninfo``. A
    connection that fails is dropped after its transaction and the next one
    connects again (``cp_reconnect``), so a server restart costs the
    transactions in flight, not the daemon.
    """
    return adbapi.ConnectionPool(
        "psycopg",
        conninfo,
        cp_reactor=reactor,
        cp_min=1,
        cp_max=size,
        cp_reconnect=True,
        cp_noisy=False,
        **connect_kwargs(password),
    )
