# -*- test-case-name: tests.oauth -*-
"""
Helpers for the OAuth tests: an in-memory store whose ``run`` returns fired
Deferreds (so flows run synchronously), a configuration, and a store whose
reads can be held back to test concurrency.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from twisted.internet.defer import Deferred, fail, succeed
from twisted.python.failure import Failure

from fjmcp.config import Config
from fjmcp.store.store import SyncStore, open_store_sync

T = TypeVar("T")

PUBLIC_URL = "http://127.0.0.1:8080"
MCP_URL = PUBLIC_URL + "/mcp"


def make_config(**overrides: Any) -> Config:
    """A configuration without I/O (no file checks): loopback broker."""
    values: dict[str, Any] = {
        "public_url": PUBLIC_URL,
        "forgejo_url": "http://forgejo.test",
        "forgejo_client_id": "broker-client",
        "forgejo_client_secret": "broker-secret-value",
        "child_command": ("/bin/true",),
        "store_path": "/nonexistent/fjmcp.sqlite3",
    }
    values.update(overrides)
    return Config(**values)


class MemoryStore:
    """A migrated in-memory store; ``run`` answers with a fired Deferred."""

    def __init__(self) -> None:
        self.sync: SyncStore = open_store_sync(":memory:")
        self.runs = 0

    @property
    def conn(self) -> sqlite3.Connection:
        """The raw connection, for assertions on stored rows."""
        conn: sqlite3.Connection = self.sync.conn
        return conn

    def run(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Deferred[T]:
        """Run the transaction now."""
        self.runs += 1
        try:
            return succeed(self.sync.run(fn, *args, **kwargs))
        except Exception as e:
            return fail(e)

    @property
    def dialect(self) -> Any:
        """The engine the store speaks (SQLite)."""
        return self.sync.dialect

    def listener(self, reactor: Any, on_event: Any, on_reconnect: Any) -> None:
        """One node: nobody else to hear."""
        return None

    def all_bytes(self) -> bytes:
        """Every value of every row of every table, as bytes (leak checks)."""
        out = bytearray()
        tables = [
            r[0]
            for r in self.conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table'"
            )
        ]
        for table in tables:
            for row in self.conn.execute(f"SELECT * FROM {table}"):  # noqa: S608
                for value in row:
                    if isinstance(value, bytes):
                        out += value
                    else:
                        out += str(value).encode()
                    out += b"\x00"
        return bytes(out)

    def close(self) -> None:
        """Close the connection."""
        self.sync.close()


class HeldStore(MemoryStore):
    """A memory store whose runs wait until `release` (concurrency tests)."""

    def __init__(self) -> None:
        super().__init__()
        self.held: list[tuple[Deferred[Any], Callable[[], Any]]] = []
        self.holding = True
        """While false, transactions run at once (set-up before the race)."""

    def run(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Deferred[T]:
        """Queue the transaction; it runs when released."""
        if not self.holding:
            return super().run(fn, *args, **kwargs)
        self.runs += 1
        d: Deferred[T] = Deferred()
        self.held.append((d, lambda: self.sync.run(fn, *args, **kwargs)))
        return d

    def release(self) -> None:
        """Run every queued transaction in order and fire its Deferred."""
        while self.held:
            d, thunk = self.held.pop(0)
            try:
                result = thunk()
            except Exception as e:
                d.errback(e)
            else:
                d.callback(result)


def settle(coroutine: Coroutine[Any, Any, T]) -> T | Failure:
    """Run a coroutine over fired Deferreds; its result or its Failure."""
    results: list[T | Failure] = []
    Deferred.fromCoroutine(coroutine).addBoth(results.append)
    assert results, "the coroutine is still waiting"
    return results[0]
