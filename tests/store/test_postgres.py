# -*- test-case-name: tests.store.test_postgres -*-
"""
Tests for the PostgreSQL store on a real server (``FJMCP_TEST_POSTGRES_URL``,
one scratch schema per test): the daemon's bounded pool, migrations under
the advisory lock with two nodes starting at once, reconnecting after the
server dropped a connection, and messages that never show a password.
"""

from __future__ import annotations

import threading
from typing import Any

import psycopg
import pytest
import pytest_twisted

from fjmcp.store.dialect import Txn
from fjmcp.store.errors import StoreError
from fjmcp.store.migrate import MigrationResult, load_migrations, migrations_for
from fjmcp.store.postgres import POSTGRES
from fjmcp.store.store import open_postgres_store, open_postgres_store_sync
from fjmcp.store.target import StoreTarget, parse_store_url
from tests.store.support import ScratchSchema

#: The newest schema version this checkout ships (SQLite's list; a test below
#: keeps PostgreSQL's equal to it).
LATEST = max(m.version for m in load_migrations())


def _reactor() -> Any:
    from twisted.internet import reactor

    return reactor


def _login_txn(txn: Txn, login: str) -> int:
    return txn.insert_id(
        "INSERT INTO users (login, created_at) VALUES (?, 0)", (login,)
    )


def _backend_pid_txn(txn: Txn) -> int:
    return int(txn.execute("SELECT pg_backend_pid()").fetchone()[0])


@pytest_twisted.ensureDeferred
async def test_the_daemon_pool_runs_transactions_and_checks(
    scratch_schema: ScratchSchema,
) -> None:
    """
    The daemon's store runs transactions on a pool of at most
    ``pool_size`` connections, passes its health check, and closes.
    """
    store = await open_postgres_store(_reactor(), scratch_schema.conninfo, pool_size=3)
    try:
        assert store.dialect is POSTGRES and store.schema_version == LATEST
        assert store._pool.max == 3 and store._pool.reconnect
        first = await store.run(_login_txn, "alice")
        second = await store.run(_login_txn, "bob")
        assert second > first
        await store.check()
    finally:
        await store.close()


@pytest_twisted.ensureDeferred
async def test_a_dropped_connection_fails_one_transaction_then_reconnects(
    scratch_schema: ScratchSchema,
) -> None:
    """
    When the server ends the pool's connection (a restart), the transaction
    on it fails with `StoreError` and the next one runs on a new connection.
    """
    store = await open_postgres_store(_reactor(), scratch_schema.conninfo, pool_size=1)
    try:
        pid = await store.run(_backend_pid_txn)
        with psycopg.connect(scratch_schema.base, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        with pytest.raises(StoreError):
            await store.run(_backend_pid_txn)
        assert await store.run(_backend_pid_txn) != pid
        await store.check()
    finally:
        await store.close()


def test_nodes_starting_together_apply_each_migration_once(
    scratch_schema: ScratchSchema,
) -> None:
    """
    Four nodes opening one empty database at once: the advisory lock lets
    one migrate; the others wait and find nothing left to apply.
    """
    results: list[MigrationResult] = []
    errors: list[BaseException] = []
    start = threading.Barrier(4)

    def node() -> None:
        try:
            start.wait(timeout=30)
            with open_postgres_store_sync(scratch_schema.conninfo) as store:
                results.append(store.migration)
        except BaseException as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=node) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    assert sorted(len(r.applied) for r in results) == [0, 0, 0, LATEST]
    with psycopg.connect(scratch_schema.conninfo) as conn:
        versions = conn.execute("SELECT version FROM schema_migrations").fetchall()
    assert sorted(v[0] for v in versions) == list(range(1, LATEST + 1))


def test_a_failed_connection_names_the_server_never_the_password() -> None:
    """An unreachable server is a `StoreError` whose message masks the password."""
    url = "postgresql://fjmcp:s3cret-pw@127.0.0.1:1/fjmcp?connect_timeout=2"
    with pytest.raises(StoreError) as caught:
        open_postgres_store_sync(url)
    assert "s3cret-pw" not in str(caught.value)
    assert "127.0.0.1:1" in str(caught.value)


@pytest.mark.parametrize(
    ("url", "backend", "location"),
    [
        ("sqlite:///var/lib/fjmcp/s.db", "sqlite", "/var/lib/fjmcp/s.db"),
        ("sqlite:relative/s.db", "sqlite", "relative/s.db"),
        ("postgresql://u@db:5432/fj", "postgresql", "postgresql://u@db:5432/fj"),
        ("postgres://db/fj", "postgresql", "postgres://db/fj"),
        ("host=db dbname=fj", "postgresql", "host=db dbname=fj"),
    ],
)
def test_store_urls_name_their_engine(url: str, backend: str, location: str) -> None:
    """``store_url`` picks the engine and where it lives."""
    target = parse_store_url(url, password="pw")
    assert (target.backend, target.location) == (backend, location)
    assert "pw" not in repr(target)


def test_described_targets_mask_passwords() -> None:
    """What messages show of a PostgreSQL target never includes its password."""
    for location in (
        "postgresql://u:hunter2@db/fj",
        "postgresql://db/fj?password=hunter2",
        "host=db password=hunter2 dbname=fj",
    ):
        assert "hunter2" not in StoreTarget("postgresql", location).described


@pytest.mark.parametrize("url", ["mysql://db/fj", "", "sqlite://", "/plain/path"])
def test_other_urls_are_refused(url: str) -> None:
    """Anything but SQLite or PostgreSQL is refused with what is accepted."""
    with pytest.raises(ValueError, match="sqlite|SQLite"):
        parse_store_url(url)


def test_every_engine_has_every_schema_version() -> None:
    """
    SQLite's and PostgreSQL's migrations number the same schemas: a version
    added for one engine only would leave the other without its tables.
    """
    versions = {
        engine: [m.version for m in load_migrations(migrations_for(engine))]
        for engine in ("sqlite", "postgresql")
    }
    assert versions["sqlite"] == versions["postgresql"]
