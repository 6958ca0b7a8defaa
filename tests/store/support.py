# -*- test-case-name: tests.store -*-
"""Helpers for the store tests: throwaway migration directories, table lists."""

from __future__ import annotations

import itertools
import os
import sqlite3
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import psycopg
import pytest
from attrs import define
from psycopg.conninfo import make_conninfo
from twisted.internet.defer import Deferred, succeed
from twisted.python.failure import Failure

from fjmcp.store.dialect import SQLITE, Dialect
from fjmcp.store.postgres import POSTGRES
from fjmcp.store.store import SyncStore, open_postgres_store_sync, open_store_sync

T = TypeVar("T")


def write_migrations(directory: Path, files: dict[str, str]) -> Path:
    """Write ``files`` (name -> SQL) into ``directory`` and return it."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, sql in files.items():
        (directory / name).write_text(sql, encoding="utf-8")
    return directory


def tables(conn: sqlite3.Connection) -> set[str]:
    """The names of the ordinary tables in ``conn``'s main database."""
    return {
        row[0]
        for row in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table'"
            " AND name NOT LIKE 'sqlite_%'"
        )
    }


def table_names_in(path: str | Path) -> set[str]:
    """The tables of the database file at ``path``, read with a throwaway connection."""
    conn = sqlite3.connect(path)
    try:
        return tables(conn)
    finally:
        conn.close()


def recorded(conn: sqlite3.Connection) -> list[tuple[int, str]]:
    """The ``(version, name)`` rows of ``schema_migrations``, in order."""
    return [
        (int(v), str(n))
        for v, n in conn.execute(
            "SELECT version, name FROM schema_migrations ORDER BY version"
        )
    ]


def open_fds() -> set[str]:
    """The file descriptors this process holds, with their targets."""
    fds = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            fds.add(f"{fd}->{os.readlink(f'/proc/self/fd/{fd}')}")
        except OSError:  # the directory's own descriptor, closed meanwhile
            pass
    return fds


V1 = {"0001_init.sql": "CREATE TABLE clients (id TEXT PRIMARY KEY, name TEXT);\n"}
V2 = {
    **V1,
    "0002_grants.sql": (
        "-- grants belong to clients\n"
        "CREATE TABLE grants (\n"
        "    code TEXT PRIMARY KEY,\n"
        "    client_id TEXT NOT NULL REFERENCES clients (id) ON DELETE CASCADE\n"
        ");\n"
        "CREATE INDEX grants_by_client ON grants (client_id);\n"
    ),
}


#: The dialects the store suite runs through; PostgreSQL's tests skip, saying
#: why, unless ``FJMCP_TEST_POSTGRES_URL`` names a server.
DIALECTS: tuple[Dialect, ...] = (SQLITE, POSTGRES)

#: The variable naming the PostgreSQL server the tests may use.
POSTGRES_URL_VARIABLE = "FJMCP_TEST_POSTGRES_URL"

_schemas = itertools.count(1)


def postgres_url() -> str | None:
    """The test server's URL (``FJMCP_TEST_POSTGRES_URL``), or ``None``."""
    return os.environ.get(POSTGRES_URL_VARIABLE) or None


def postgres_skip_reason() -> str:
    """Why the PostgreSQL half of a test does not run here."""
    return (
        f"{POSTGRES_URL_VARIABLE} is not set: no PostgreSQL to test against "
        "(make test sets it when a server answers at 127.0.0.1:5432)"
    )


@define
class ScratchSchema:
    """
    A schema of its own in the test server's database, for one test: every
    connection opened with `conninfo` has it as its ``search_path``;
    `drop` removes it and everything in it.
    """

    base: str
    name: str

    @classmethod
    def create(cls, base: str) -> ScratchSchema:
        """A new, empty schema named after this process and a counter."""
        name = f"fjmcp_test_{os.getpid()}_{next(_schemas)}"
        with psycopg.connect(base, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {name} CASCADE")
            conn.execute(f"CREATE SCHEMA {name}")
        return cls(base, name)

    @property
    def conninfo(self) -> str:
        """The server's conninfo with this schema as the search path."""
        return make_conninfo(self.base, options=f"-c search_path={self.name}")

    def drop(self) -> None:
        """Drop the schema (and the tables in it)."""
        with psycopg.connect(self.base, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {self.name} CASCADE")


def open_memory_store(dialect: Dialect) -> SyncStore:
    """
    A fresh store at the shipped schema, speaking ``dialect``: the one place
    the query tests get their store. For PostgreSQL, a scratch schema that
    closing the store drops (skips the test if no server is configured).
    """
    if dialect is SQLITE:
        store = open_store_sync(":memory:")
        assert store.dialect is dialect
        return store
    base = postgres_url()
    if base is None:
        pytest.skip(postgres_skip_reason())
    scratch = ScratchSchema.create(base)
    try:
        store = open_postgres_store_sync(scratch.conninfo)
    except BaseException:
        scratch.drop()
        raise
    return ScratchStore(
        store.path,
        store.conn,
        store.migration,
        None,
        dialect=POSTGRES,
        scratch=scratch,
    )


@define
class ScratchStore(SyncStore):
    """A PostgreSQL `SyncStore` whose schema goes away when it closes."""

    scratch: ScratchSchema | None = None

    def close(self) -> None:
        """Close the connection, then drop the schema."""
        super().close()
        if self.scratch is not None:
            scratch, self.scratch = self.scratch, None
            scratch.drop()


@define
class SyncRunner:
    """A `SyncStore` behind the daemon's ``run(...) -> Deferred`` interface."""

    sync: SyncStore

    def run(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Deferred[T]:
        """Run the transaction now; an already-fired Deferred."""
        return succeed(self.sync.run(fn, *args, **kwargs))


def run_sync(coroutine: Coroutine[Any, Any, T]) -> T:
    """The result of a coroutine that awaits only fired Deferreds."""
    return successResultOf(Deferred.fromCoroutine(coroutine))


def successResultOf(d: Deferred[T]) -> T:  # noqa: N802 - twisted's name
    """The result of a fired Deferred (fails the test otherwise)."""
    results: list[T] = []
    failures: list[Failure] = []
    d.addCallbacks(results.append, failures.append)
    if failures:
        failures[0].raiseException()
    assert results, "the Deferred has not fired"
    return results[0]


@define
class TwoNodes:
    """Two connections to one fresh store, as two nodes would hold them."""

    a: SyncStore
    b: SyncStore

    def close(self) -> None:
        """Close both (the PostgreSQL scratch schema goes with the first)."""
        self.b.close()
        self.a.close()


def open_two_nodes(dialect: Dialect, directory: Path) -> TwoNodes:
    """
    Two stores sharing one database through ``dialect``: for SQLite one
    file in ``directory`` opened twice (its lock, which would refuse the
    second, is not taken), for PostgreSQL one scratch schema.
    """
    if dialect is SQLITE:
        path = str(directory / "shared.sqlite3")
        return TwoNodes(
            open_store_sync(path, lock=False), open_store_sync(path, lock=False)
        )
    first = open_memory_store(dialect)
    assert isinstance(first, ScratchStore) and first.scratch is not None
    try:
        second = open_postgres_store_sync(first.scratch.conninfo)
    except BaseException:
        first.close()
        raise
    return TwoNodes(first, second)
