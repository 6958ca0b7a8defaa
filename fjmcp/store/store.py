# -*- test-case-name: tests.store.test_store -*-
"""
The store facade: open (directories, lock, pool, migrations), run, check, close.

Everything else in fjmcp talks to the database through `Store.run`, which
runs one synchronous transaction function (``def _thing_txn(cursor, ...)``)
on a pool thread and hands back a Deferred. Transactions are explicit
(``BEGIN`` ... ``COMMIT``, ``ROLLBACK`` on any exception), and driver errors
leave as `StoreError` naming the store, so no caller handles a driver
exception. `open_store` opens SQLite (one file, one connection, its lock);
`open_postgres_store` opens PostgreSQL (a bounded pool, migrations under an
advisory lock); `open_store_at` picks by `StoreTarget`.

Offline admin commands (run while the daemon is down) and tests use
`open_store_sync`, which gives the same PRAGMAs, migrations, lock and
transaction semantics on a plain ``sqlite3`` connection, so the same
``_txn`` functions serve both. ``open_store_sync(":memory:")`` is a fresh,
migrated, in-memory store for unit tests of ``_txn`` functions.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable, Sequence
from importlib.resources.abc import Traversable
from types import TracebackType
from typing import Any, Concatenate, ParamSpec, TypeVar, cast

from attrs import define, field
from twisted.application.service import IService
from twisted.enterprise import adbapi
from twisted.enterprise.adbapi import ConnectionLost
from twisted.internet.defer import Deferred, fail
from twisted.logger import Logger
from twisted.python.failure import Failure

from fjmcp.store.dialect import SQLITE, Dialect, Txn
from fjmcp.store.errors import StoreError, wrap_os_error, wrap_sqlite_error
from fjmcp.store.events import StoreEvent
from fjmcp.store.lock import StoreLock
from fjmcp.store.migrate import (
    Migration,
    MigrationResult,
    MigrationSource,
    load_migrations,
    migrate,
)
from fjmcp.store.pool import BUSY_TIMEOUT_SECONDS, IStoreReactor, make_pool
from fjmcp.store.target import StoreTarget

__all__ = [
    "IN_MEMORY",
    "Store",
    "SyncStore",
    "open_postgres_store",
    "open_postgres_store_sync",
    "open_store",
    "open_store_at",
    "open_store_sync",
    "open_store_sync_at",
    "run_txn",
]

P = ParamSpec("P")
T = TypeVar("T")

#: The path that makes `open_store_sync` open a private in-memory store.
IN_MEMORY = ":memory:"

Migrations = MigrationSource | Sequence[Migration] | None


def run_txn(
    dialect: Dialect,
    conn: Any,
    path: str,
    fn: Callable[Concatenate[Txn, P], T],
    /,
    *args: P.args,
    **kwargs: P.kwargs,
) -> T:
    """
    Run ``fn(txn, *args, **kwargs)`` in one transaction on ``conn``, where
    ``txn`` is a fresh cursor of ``conn`` with ``dialect``.

    Commits when ``fn`` returns, rolls back when it raises. A driver error
    (from ``fn`` or from the commit) becomes a `StoreError` naming ``path``;
    any other exception passes through unchanged, after the rollback.
    For SQLite ``conn`` must be in autocommit mode (``isolation_level=None``,
    as `SqliteDialect.configure` sets it).
    """
    cursor = conn.cursor()
    try:
        dialect.begin(cursor)
        result = fn(Txn(cursor, dialect), *args, **kwargs)
        dialect.commit(cursor)
        return result
    except dialect.error as e:
        dialect.rollback(conn)
        raise wrap_sqlite_error(path, e, integrity=dialect.integrity_error) from e
    except BaseException:
        dialect.rollback(conn)
        raise
    finally:
        cursor.close()


def _check_txn(txn: Txn) -> None:
    txn.dialect.check(txn.cursor)


def _file_identity(path: str) -> tuple[int, int]:
    st = os.stat(path)
    return (st.st_dev, st.st_ino)


def _prepare_file(path: str) -> None:
    """Create the parent directories (0700) and the file itself (0600)."""
    parent = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(parent, mode=0o700, exist_ok=True)
    except OSError as e:
        raise wrap_os_error(parent, e, doing="create its directory", store=path) from e
    if os.path.isdir(path):
        raise StoreError(f"store {path} is a directory, not a file", path=path)


def _create_file(path: str) -> None:
    try:
        # The store holds sealed tokens: private from the start. SQLite gives
        # its -wal and -shm files the same mode.
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError as e:
        raise wrap_os_error(
            path, e, doing="open the store file for reading and writing"
        ) from e
    os.close(fd)


def _load(migrations: Migrations) -> tuple[Migration, ...]:
    if migrations is None or isinstance(migrations, str | os.PathLike | Traversable):
        return load_migrations(migrations)
    return tuple(migrations)


@define
class Store:
    """
    An open store: for SQLite one connection on one pool thread and the
    store's lock held; for PostgreSQL a bounded pool. Build it with
    `open_store` or `open_postgres_store`; `close` it once.
    """

    path: str
    """The database file, or the server's address (no password) for messages."""
    schema_version: int
    """The schema version after the migrations at open time."""
    _pool: adbapi.ConnectionPool
    _lock: StoreLock | None
    _identity: tuple[int, int] | None
    dialect: Dialect = SQLITE
    """How the query functions speak to this engine."""
    _conninfo: str | None = None
    _password: str | None = field(default=None, repr=False)
    _closing: Deferred[None] | None = field(default=None, init=False)
    errors: int = field(default=0, init=False)
    """Transactions that failed with `StoreError` since start (for metrics)."""

    log = Logger()

    def run(
        self,
        fn: Callable[Concatenate[Txn, P], T],
        /,
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> Deferred[T]:
        """
        Run the transaction function ``fn(cursor, *args, **kwargs)`` on the
        pool's thread (see `run_txn`); the Deferred fires with its result or
        fails with `StoreError` (or ``fn``'s own exception).
        """
        if self._closing is not None:
            return fail(StoreError(f"store {self.path} is closed", path=self.path))
        pool = self._pool
        path = self.path
        dialect = self.dialect

        def on_thread(_wrapper: object) -> T:
            # pool.connect() hands this thread's own connection back.
            try:
                conn = pool.connect()
            except dialect.error as e:
                raise wrap_sqlite_error(path, e, doing="connecting") from e
            return run_txn(dialect, conn, path, fn, *args, **kwargs)

        done = cast("Deferred[T]", pool.runWithConnection(on_thread))
        return done.addErrback(_connection_lost, path).addErrback(self._count_error)

    def _count_error(self, failure: Failure) -> Failure:
        if failure.check(StoreError):
            self.errors += 1
        return failure

    def listener(
        self,
        reactor: Any,
        on_event: Callable[[StoreEvent], None],
        on_reconnect: Callable[[], None],
    ) -> IService | None:
        """
        A service hearing what other nodes publish on this store (PostgreSQL's
        ``LISTEN`` on a connection of its own), or ``None`` for SQLite, whose
        one node hears itself.
        """
        if self._conninfo is None:
            return None
        from fjmcp.store.listen import PostgresListener

        return PostgresListener(
            reactor, self._conninfo, self._password, on_event, on_reconnect
        )

    def check(self) -> Deferred[None]:
        """
        The health probe: the file is still the one opened (not removed or
        replaced underneath the daemon), the schema is readable and
        ``PRAGMA quick_check`` passes; for PostgreSQL, the server answers
        and the schema is there. Fails with `StoreError` otherwise.
        """
        if self._identity is None:
            return self.run(_check_txn)
        try:
            identity = _file_identity(self.path)
        except OSError as e:
            return fail(
                StoreError(
                    f"store {self.path} is gone from disk ({e.strerror}); "
                    "restart the daemon",
                    path=self.path,
                )
            )
        if identity != self._identity:
            return fail(
                StoreError(
                    f"store {self.path} was replaced on disk after the daemon "
                    "opened it; restart the daemon",
                    path=self.path,
                )
            )
        return self.run(_check_txn)

    def close(self) -> Deferred[None]:
        """
        Let queued work finish, close the connection and the pool's thread,
        then release the lock; afterwards the store holds no file handle.
        New `run` calls fail at once. Calling it again waits for the same
        close.
        """
        if self._closing is None:
            self._closing = Deferred.fromCoroutine(self._close())
        closing = self._closing
        done: Deferred[None] = Deferred()
        closing.addBoth(_pass_through, done)
        return done

    async def _close(self) -> None:
        try:
            if self._pool.running:
                # SQLite's one thread, first come first served: this no-op
                # runs after every transaction queued before close() (with
                # several threads, stopping the pool waits for the rest).
                await self._pool.runWithConnection(lambda _conn: None)
        except Exception:
            self.log.failure(
                "store {path}: draining before close failed", path=self.path
            )
        finally:
            # ConnectionPool.close stops the threads after the queued work.
            self._pool.close()
            if self._lock is not None:
                self._lock.release()
            self.log.info("store {path} closed", path=self.path)


def _connection_lost(failure: Failure, path: str) -> Failure:
    """adbapi's `ConnectionLost` (dropped for a reconnect) as a `StoreError`."""
    if failure.check(ConnectionLost):
        raise StoreError(
            f"store {path}: the connection to the database was lost; "
            "the next transaction connects again",
            path=path,
        ) from failure.value
    return failure


def _pass_through(result: object, target: Deferred[None]) -> object:
    if isinstance(result, Failure):
        target.errback(result)
    else:
        target.callback(None)
    return result


async def open_store(
    reactor: IStoreReactor,
    path: str,
    *,
    migrations: Migrations = None,
    busy_timeout: float = BUSY_TIMEOUT_SECONDS,
) -> Store:
    """
    Open the store at ``path`` for this daemon.

    Creates the parent directories, takes the store's lock (one daemon per
    store), opens the one-connection pool and applies pending migrations
    (after a ``VACUUM INTO`` backup of an existing store). Every failure is a
    `StoreError` naming the file: an unwritable path, a corrupt file, a store
    locked by another daemon or process, a failing migration. On failure
    nothing stays open.

    :param reactor: the backup name and ``applied_at`` use its clock.
    :param migrations: a directory of ``NNNN_name.sql`` files, or loaded
        migrations; default the shipped ones.
    """
    path = os.fspath(path)
    if path == IN_MEMORY or not path:
        raise StoreError(f"store path {path!r} must name a file", path=path)
    loaded = _load(migrations)
    _prepare_file(path)
    lock = SQLITE.lock(path)
    pool: adbapi.ConnectionPool | None = None
    try:
        _create_file(path)
        pool = make_pool(reactor, path, busy_timeout=busy_timeout)
        now = float(reactor.seconds())
        pool_ = pool

        def on_thread(_wrapper: object) -> MigrationResult:
            return migrate(
                pool_.connect(), loaded, store_path=path, now=now, dialect=SQLITE
            )

        try:
            result = cast(MigrationResult, await pool.runWithConnection(on_thread))
        except sqlite3.Error as e:
            raise wrap_sqlite_error(path, e, doing="opening") from e
        identity = _file_identity(path)
    except BaseException:
        if pool is not None:
            pool.close()
        lock.release()
        raise
    store = Store(path, result.version, pool, lock, identity)
    _log_migrations(store.log, path, result)
    return store


def _log_migrations(log: Logger, path: str, result: MigrationResult) -> None:
    if result.backup:
        log.info(
            "store {path}: backed up to {backup} before migrating",
            path=path,
            backup=result.backup,
        )
    for name in result.applied:
        log.info("store {path}: applied migration {name}", path=path, name=name)
    for name in result.changed:
        log.warn(
            "store {path}: migration {name} has changed since it was applied; "
            "its changes are not in this store",
            path=path,
            name=name,
        )


@define
class SyncStore:
    """
    A store opened synchronously on a plain ``sqlite3`` connection, for
    offline admin commands and tests. Same PRAGMAs, migrations, lock and
    transactions as `Store`; use it as a context manager or `close` it.
    """

    path: str
    conn: Any
    """Autocommit mode: prefer `run` for anything that writes."""
    migration: MigrationResult
    _lock: StoreLock | None
    dialect: Dialect = SQLITE
    """How the query functions speak to this engine."""

    log = Logger()

    def run(
        self,
        fn: Callable[Concatenate[Txn, P], T],
        /,
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> T:
        """Run the transaction function ``fn`` now (see `run_txn`)."""
        return run_txn(self.dialect, self.conn, self.path, fn, *args, **kwargs)

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        """
        Run one statement (``?`` placeholders) outside a transaction
        function, in autocommit; the cursor, for reading what it returns.
        """
        return self.conn.execute(self.dialect.sql(sql), self.dialect.parameters(params))

    def close(self) -> None:
        """Close the connection and release the lock; harmless twice."""
        self.conn.close()
        if self._lock is not None:
            self._lock.release()

    def __enter__(self) -> SyncStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def open_store_sync(
    path: str,
    *,
    migrations: Migrations = None,
    lock: bool = True,
    busy_timeout: float = BUSY_TIMEOUT_SECONDS,
    now: float | None = None,
) -> SyncStore:
    """
    Open and migrate the store at ``path`` on this thread.

    ``":memory:"`` gives a private in-memory store (no lock, no backup).
    With ``lock`` (the default) the store's lock is taken, so an offline
    command refuses with `StoreInUseError` while a daemon runs on the store.
    Failures raise `StoreError` naming the file, and leave nothing open.
    """
    path = os.fspath(path)
    loaded = _load(migrations)
    memory = path == IN_MEMORY
    store_lock: StoreLock | None = None
    if not memory:
        _prepare_file(path)
        if lock:
            store_lock = SQLITE.lock(path)
    conn: sqlite3.Connection | None = None
    try:
        if not memory:
            _create_file(path)
        try:
            conn = SQLITE.connect(path, busy_timeout=busy_timeout)
        except sqlite3.Error as e:
            conn = None  # SqliteDialect.configure closed it
            raise wrap_sqlite_error(path, e, doing="opening") from e
        try:
            result = migrate(
                conn,
                loaded,
                store_path=None if memory else path,
                now=now,
                dialect=SQLITE,
            )
        except sqlite3.Error as e:
            raise wrap_sqlite_error(path, e, doing="migrating") from e
    except BaseException:
        if conn is not None:
            conn.close()
        if store_lock is not None:
            store_lock.release()
        raise
    _log_migrations(SyncStore.log, path, result)
    return SyncStore(path, conn, result, store_lock)


async def open_postgres_store(
    reactor: IStoreReactor,
    conninfo: str,
    *,
    pool_size: int = 4,
    password: str | None = None,
    migrations: Migrations = None,
) -> Store:
    """
    Open the PostgreSQL store at ``conninfo`` (a libpq URL or ``key=value``
    string) for this daemon: a pool of at most ``pool_size`` connections,
    reconnecting after a server restart, and the pending migrations applied
    on one connection under the migration advisory lock (a node starting at
    the same time waits, then finds nothing to do). Every failure is a
    `StoreError` naming the server (never its password); on failure
    nothing stays open.
    """
    from fjmcp.store.migrate import migrations_for
    from fjmcp.store.postgres import POSTGRES, describe_conninfo, make_postgres_pool

    label = describe_conninfo(conninfo)
    loaded = (
        load_migrations(migrations_for(POSTGRES.name))
        if migrations is None
        else _load(migrations)
    )
    pool = make_postgres_pool(reactor, conninfo, size=pool_size, password=password)
    now = float(reactor.seconds())
    try:

        def on_thread(_wrapper: object) -> MigrationResult:
            return migrate(pool.connect(), loaded, now=now, dialect=POSTGRES)

        try:
            result = cast(MigrationResult, await pool.runWithConnection(on_thread))
        except POSTGRES.error as e:
            raise wrap_sqlite_error(label, e, doing="opening") from e
    except BaseException:
        pool.close()
        raise
    store = Store(
        label,
        result.version,
        pool,
        None,
        None,
        dialect=POSTGRES,
        conninfo=conninfo,
        password=password,
    )
    _log_migrations(store.log, label, result)
    return store


def open_postgres_store_sync(
    conninfo: str,
    *,
    password: str | None = None,
    migrations: Migrations = None,
    now: float | None = None,
) -> SyncStore:
    """
    Open and migrate the PostgreSQL store at ``conninfo`` on this thread,
    on one autocommit connection (offline admin commands, tests).
    """
    from fjmcp.store.migrate import migrations_for
    from fjmcp.store.postgres import POSTGRES, describe_conninfo

    label = describe_conninfo(conninfo)
    loaded = (
        load_migrations(migrations_for(POSTGRES.name))
        if migrations is None
        else _load(migrations)
    )
    try:
        conn = POSTGRES.connect(conninfo, password=password)
    except POSTGRES.error as e:
        raise wrap_sqlite_error(label, e, doing="connecting") from e
    try:
        result = migrate(conn, loaded, now=now, dialect=POSTGRES)
    except POSTGRES.error as e:
        conn.close()
        raise wrap_sqlite_error(label, e, doing="migrating") from e
    except BaseException:
        conn.close()
        raise
    _log_migrations(SyncStore.log, label, result)
    return SyncStore(label, conn, result, None, dialect=POSTGRES)


async def open_store_at(reactor: IStoreReactor, target: StoreTarget | str) -> Store:
    """Open the daemon's store named by ``target`` (a bare string is a SQLite path)."""
    if isinstance(target, str):
        return await open_store(reactor, target)
    if target.backend == SQLITE.name:
        return await open_store(reactor, target.location)
    return await open_postgres_store(
        reactor,
        target.location,
        pool_size=target.pool_size,
        password=target.password,
    )


def open_store_sync_at(
    target: StoreTarget | str, *, lock: bool = True, now: float | None = None
) -> SyncStore:
    """Open the store named by ``target`` on this thread (offline commands)."""
    if isinstance(target, str):
        return open_store_sync(target, lock=lock, now=now)
    if target.backend == SQLITE.name:
        return open_store_sync(target.location, lock=lock, now=now)
    return open_postgres_store_sync(target.location, password=target.password, now=now)
