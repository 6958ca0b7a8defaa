# -*- test-case-name: tests.test_wiring -*-
"""
Tests for `fjmcp.wiring`, the composition root: each component gets its own
settings from the configuration, the services come in their stop order, and
the objects are connected (a token stored reaches the sessions, the admin
commands reach the store, the caches and the sessions).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest
from twisted.internet.defer import Deferred
from twisted.internet.testing import MemoryReactorClock

from fjmcp.interfaces import Identity, InvalidToken, UpstreamToken
from fjmcp.oauth.keys import KeyRing
from fjmcp.sessions.registry import SessionRegistry
from fjmcp.settings import broker_settings
from fjmcp.store.store import Store
from fjmcp.supervisor.environment import child_spec
from fjmcp.supervisor.leftovers import ChildLedger
from fjmcp.supervisor.startup import Isolation
from fjmcp.wiring import (
    Broker,
    CloseOnStop,
    IBrokerReactor,
    TokenRelay,
    build_broker,
)
from tests.oauth.support import MemoryStore
from tests.standin.support import result_of
from tests.support import broker_config


@pytest.fixture
def memory_store() -> Iterator[MemoryStore]:
    store = MemoryStore()
    yield store
    store.sync.close()


def _build(
    tmp_path: Path, store: MemoryStore, reactor: MemoryReactorClock, **extra: str
) -> Broker:
    config = broker_config(tmp_path, **extra)
    settings = broker_settings(config)
    # unconfined: these tests start no process (the confinement has its own
    # tests in tests/supervisor and tests/integration/test_hostile.py)
    isolation = Isolation(
        "none",
        lambda token, label: child_spec(settings.child, token=token, label=label),
        ChildLedger(tmp_path / "children"),
        None,
    )
    return build_broker(
        settings,
        cast(IBrokerReactor, reactor),
        cast(Store, store),
        KeyRing.generate(),
        status=lambda args: {"status": "fine"},
        isolation=isolation,
    )


def _admin(broker: Broker, cmd: str, **args: Any) -> Any:
    answer = result_of(
        Deferred.fromCoroutine(broker.admin.dispatch({"cmd": cmd, "args": args}))
    )
    assert answer["ok"], answer
    return answer["result"]


def test_components_get_their_settings_from_the_configuration(
    tmp_path: Path, memory_store: MemoryStore
) -> None:
    """The timers tick on the configured intervals, the site has the
    configured limits, and the services come in their start order: the
    Forgejo client's pool closes last, after the timers that use it."""
    broker = _build(
        tmp_path,
        memory_store,
        MemoryReactorClock(),
        FJMCP_REAPER_INTERVAL="7",
        FJMCP_SESSION_IDLE_TIMEOUT="70",
        FJMCP_REFRESH_INTERVAL="11",
        FJMCP_REFRESH_MARGIN="33",
        FJMCP_MAX_REQUEST_BYTES="5000",
        FJMCP_REQUEST_TIMEOUT="9",
        FJMCP_CLIENT_RETENTION="86400",
    )
    assert (broker.reaper.interval, broker.reaper.idle_timeout) == (7.0, 70.0)
    assert broker.purger.client_retention == 86400.0
    assert (broker.refresher.interval, broker.refresher.margin) == (11.0, 33.0)
    assert (broker.site.max_request_bytes, broker.site.request_timeout) == (5000, 9.0)
    services = broker.services
    assert isinstance(services[0], CloseOnStop)
    assert [s.name for s in services[1:4]] == [
        "idle-reaper",
        "token-refresher",
        "purger",
    ]
    assert broker.drains == (broker.sessions.drain,)
    assert broker.spawners == (broker.supervisor,)


def test_admin_commands_reach_the_store_the_caches_and_the_sessions(
    tmp_path: Path, memory_store: MemoryStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """issue-token stores the Forgejo token (the sessions are told of it) and
    mints a broker token the bearer check accepts; revoke-user then revokes
    it in the store, clears the bearer cache and ends the user's sessions."""
    rotated: list[UpstreamToken] = []
    ended: list[tuple[str, str]] = []

    def token_rotated(self: SessionRegistry, token: UpstreamToken) -> None:
        rotated.append(token)

    async def end_user(self: SessionRegistry, user: str, reason: str) -> None:
        ended.append((user, reason))

    monkeypatch.setattr(SessionRegistry, "token_rotated", token_rotated)
    monkeypatch.setattr(SessionRegistry, "end_user", end_user)
    broker = _build(tmp_path, memory_store, MemoryReactorClock())
    assert broker.admin.names() == [
        "clients",
        "issue-token",
        "purge-expired",
        "revoke-client",
        "revoke-user",
        "rotate-key",
        "sessions",
        "status",
        "users",
    ]
    assert _admin(broker, "status") == {"status": "fine"}

    issued = _admin(broker, "issue-token", user="alice", forgejo_token="gto_x")
    assert [t.user for t in rotated] == ["alice"]
    header = b"Bearer " + issued["tokens"][0].encode()
    assert isinstance(result_of(broker.bearer.authenticate(header)), Identity)

    revoked = _admin(broker, "revoke-user", user="alice")
    assert revoked["known"] and revoked["broker_tokens_revoked"] == 1
    assert ended == [("alice", "revoked-by-operator")]
    failures: list[Any] = []
    broker.bearer.authenticate(header).addErrback(failures.append)
    assert failures and failures[0].check(InvalidToken)


def test_close_on_stop_closes_the_client_and_waits_for_it() -> None:
    """The Forgejo client's pool is closed when the broker's services stop,
    and stopping waits until the close has finished."""
    closing: Deferred[None] = Deferred()
    calls: list[int] = []

    def close() -> Deferred[None]:
        calls.append(1)
        return closing

    service = CloseOnStop(close)
    service.startService()  # type: ignore[no-untyped-call]
    stopped = service.stopService()
    assert calls == [1]
    finished: list[None] = []
    stopped.addCallback(finished.append)
    assert finished == []
    closing.callback(None)
    assert finished == [None]
    assert not service.running


def test_token_relay_forwards_once_connected() -> None:
    """The relay drops tokens until it is connected, then forwards each one;
    it is connected once only."""
    relay = TokenRelay()
    token = UpstreamToken("alice", "gto_a", 1e12, 1)
    relay(token)
    seen: list[UpstreamToken] = []
    relay.connect(seen.append)
    relay(token)
    assert seen == [token]
    with pytest.raises(RuntimeError):
        relay.connect(seen.append)
