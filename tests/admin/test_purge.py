# -*- test-case-name: tests.admin.test_purge -*-
"""
Tests for ``fjmcp admin purge-expired`` (`fjmcp.admin.purge`): through the
daemon when it runs, on the store otherwise, the same counts either way.
"""

from __future__ import annotations

import argparse
import io
from pathlib import Path
from typing import Any

from attrs import define, field
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock

from fjmcp.admin.client import AdminClient
from fjmcp.admin.commands import AdminContext, all_commands
from fjmcp.admin.purge import purge_handler
from fjmcp.awaitables import maybe_await
from fjmcp.maintenance.purge import ExpiredPurger
from fjmcp.store.store import SyncStore, open_store_sync
from tests.maintenance.support import DeferringStore
from tests.standin.support import result_of
from tests.support import broker_config

NOW = 100 * 24 * 3600.0


def _run(ctx: AdminContext) -> int:
    command = all_commands()["purge-expired"]
    status: list[int] = []

    async def go() -> None:
        try:
            result = command.run(ctx, argparse.Namespace())
            assert not isinstance(result, int)
            status.append(await result)
        finally:
            await ctx.close()

    result_of(Deferred.fromCoroutine(go()))
    return status[0]


def _idle_client(sync: SyncStore) -> None:
    sync.conn.execute(
        "INSERT INTO clients (client_id, kind, auth_method, created_at) "
        "VALUES ('idle', 'dcr', 'none', 0)"
    )
    sync.conn.commit()


def test_without_daemon_purges_the_store(tmp_path: Path) -> None:
    """With no daemon, the command purges the store itself and says what went."""
    config = broker_config(tmp_path)
    with open_store_sync(config.store_path, now=NOW) as sync:
        _idle_client(sync)
    clock = Clock()
    clock.advance(NOW)
    out = io.StringIO()
    ctx = AdminContext(
        config=config,
        client=AdminClient(tmp_path / "no-daemon.sock"),
        out=out,
        reactor=clock,
        store_opener=lambda reactor, target: DeferringStore(
            open_store_sync(target.location, now=NOW)
        ),
    )
    assert _run(ctx) == 0
    assert "purged 1 idle client(s)" in out.getvalue()
    with open_store_sync(config.store_path) as sync:
        ids = {r[0] for r in sync.conn.execute("SELECT client_id FROM clients")}
    assert ids == {"admin-cli"}


@define
class FakeDaemon:
    """An admin client whose daemon answers purge-expired."""

    calls: list[tuple[str, Any]] = field(factory=list)

    def call(self, cmd: str, args: Any = None) -> Any:
        """Record the request and answer as the daemon would."""
        self.calls.append((cmd, args))
        return {"clients": 3, "tokens": 1, "daemon": True}


def test_goes_through_a_running_daemon(tmp_path: Path) -> None:
    """With a daemon running the command asks it and prints its counts."""
    daemon = FakeDaemon()
    out = io.StringIO()
    ctx = AdminContext(
        config=broker_config(tmp_path),
        client=daemon,  # type: ignore[arg-type]
        out=out,
        reactor=Clock(),
        json_output=True,
    )
    assert _run(ctx) == 0
    assert daemon.calls == [("purge-expired", {})]
    assert '"clients": 3' in out.getvalue()


def test_daemon_handler_runs_the_purger() -> None:
    """The daemon's handler purges now through its purger."""
    memory_store = open_store_sync(":memory:")
    _idle_client(memory_store)
    clock = Clock()
    clock.advance(NOW)
    purger = ExpiredPurger(DeferringStore(memory_store), clock, 3600.0, 1.0)
    answer = result_of(Deferred.fromCoroutine(maybe_await(purge_handler(purger)({}))))
    assert answer["clients"] == 1 and answer["daemon"] is True
