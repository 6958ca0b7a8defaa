# -*- test-case-name: tests.maintenance.test_wiring -*-
"""
Tests for `fjmcp.maintenance.wiring`: the timers join the broker's services
with the configured intervals and revoke-user joins the admin socket.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from attrs import define, field
from twisted.internet.defer import Deferred
from twisted.internet.testing import MemoryReactorClock

from fjmcp.config import load_config
from fjmcp.interfaces import UpstreamToken
from fjmcp.maintenance.wiring import wire_lifecycle
from fjmcp.service import ShutdownCoordinator, Wiring
from fjmcp.store.store import SyncStore, open_store_sync
from fjmcp.upstream.forgejo import ForgejoTokens, ForgejoUser
from tests.bridge.support import make_config
from tests.maintenance.support import DeferringStore, FakeSessions, MemoryTokens
from tests.standin.support import result_of


@define
class Forgets:
    """Records the users the caches were asked to forget."""

    users: list[str] = field(factory=list)

    def forget_user(self, user: str) -> int:
        """Bearer cache side."""
        self.users.append(user)
        return 0


@define
class ForgettingTokens(MemoryTokens):
    """Token memory that records `forget`."""

    forgotten: list[str] = field(factory=list)
    listeners: list[Callable[[UpstreamToken], None]] = field(factory=list)

    def forget(self, user: str) -> None:
        """Memory side."""
        self.forgotten.append(user)

    def add_listener(self, listener: Callable[[UpstreamToken], None]) -> None:
        """Keep the listener; the test calls it as a stored token would."""
        self.listeners.append(listener)

    async def refresh_token(self, user: str) -> tuple[str | None, int]:
        """Unused here."""
        raise LookupError(user)

    async def replace(self, user: str, *args: Any, **kwargs: Any) -> Any:
        """Unused here."""
        raise AssertionError("no refresh expected")


class NoForgejo:
    """A Forgejo never reached in these tests."""

    async def refresh(self, refresh_token: str) -> ForgejoTokens:
        """Never called."""
        raise AssertionError("no refresh expected")

    async def get_user(self, access_token: str) -> ForgejoUser:
        """Never called."""
        raise AssertionError("no user check expected")


@pytest.fixture
def memory_store() -> Iterator[SyncStore]:
    store = open_store_sync(":memory:")
    yield store
    store.close()


def test_timers_and_admin_command_are_wired(
    tmp_path: Path, memory_store: SyncStore
) -> None:
    """wire_lifecycle adds a named idle reaper and token refresher on the
    configured intervals, and a revoke-user admin command that ends the
    user's sessions and clears both caches."""
    config = load_config(
        environ={
            "PATH": os.path.dirname(sys.executable) + ":/usr/bin:/bin",
            "FJMCP_PUBLIC_URL": "http://127.0.0.1:8080",
            "FJMCP_FORGEJO_URL": "https://forgejo.example.org",
            "FJMCP_FORGEJO_CLIENT_ID": "client",
            "FJMCP_FORGEJO_CLIENT_SECRET": "s3cret-value",
            "FJMCP_CHILD_COMMAND": "python3",
            "FJMCP_STORE_PATH": str(tmp_path / "fjmcp.sqlite3"),
            "FJMCP_REAPER_INTERVAL": "7",
            "FJMCP_SESSION_IDLE_TIMEOUT": "70",
            "FJMCP_REFRESH_INTERVAL": "11",
        }
    )
    reactor = MemoryReactorClock()
    wiring = Wiring(
        config=config,
        reactor=reactor,
        store=DeferringStore(memory_store),  # type: ignore[arg-type]
        shutdown=ShutdownCoordinator(reactor, 1.0),
    )
    sessions = FakeSessions(sessions={"alice": ["s1"]})
    bearer = Forgets()
    tokens = ForgettingTokens()
    built = wire_lifecycle(
        wiring, sessions=sessions, upstream=tokens, bearer=bearer, forgejo=NoForgejo()
    )
    assert [s.name for s in wiring.services] == ["idle-reaper", "token-refresher"]
    assert (built.reaper.interval, built.reaper.idle_timeout) == (7.0, 70.0)
    assert built.refresher.interval == 11.0
    assert "revoke-user" in wiring.admin.names()
    for service in wiring.services:
        service.startService()
    reactor.advance(7)
    assert sessions.reap_calls == [(7.0, 70.0)]
    answer = result_of(
        Deferred.fromCoroutine(
            wiring.admin.dispatch({"cmd": "revoke-user", "args": {"user": "alice"}})
        )
    )
    assert answer["ok"] and answer["result"]["known"] is False
    assert sessions.ended == [("alice", "revoked-by-operator")]
    assert bearer.users == ["alice"] and tokens.forgotten == ["alice"]
    for service in wiring.services:
        service.stopService()


def test_every_stored_token_reaches_the_sessions(
    tmp_path: Path, memory_store: SyncStore
) -> None:
    """Any new Forgejo token stored (a fresh login as much as a refresh) is
    handed to the sessions' token_rotated, so running children are given it."""
    reactor = MemoryReactorClock()
    wiring = Wiring(
        config=make_config(store_path=str(tmp_path / "fjmcp.sqlite3")),
        reactor=reactor,
        store=DeferringStore(memory_store),  # type: ignore[arg-type]
        shutdown=ShutdownCoordinator(reactor, 1.0),
    )
    sessions = FakeSessions(sessions={"alice": ["s1"]})
    tokens = ForgettingTokens()
    wire_lifecycle(
        wiring,
        sessions=sessions,
        upstream=tokens,
        bearer=Forgets(),
        forgejo=NoForgejo(),
    )
    fresh = UpstreamToken("alice", "gto_fresh-login", 1e12, 2)
    for listener in tokens.listeners:
        listener(fresh)
    assert sessions.rotated == [fresh]
