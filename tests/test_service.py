# -*- test-case-name: tests.test_service -*-
"""Tests for `fjmcp.service`: start-up order, failure exits, ordered shutdown."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any, cast

from attrs import define, field
from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactorClock

from fjmcp.config import Config
from fjmcp.oauth.keys import prepend_new_key
from fjmcp.service import (
    EXIT_CONFIG,
    BrokerService,
    IBrokerReactor,
    ShutdownCoordinator,
)
from fjmcp.store.dialect import SQLITE
from fjmcp.store.store import Store
from fjmcp.store.target import StoreTarget
from tests.support import assert_python_succeeds, broker_config


def _config(tmp_path: Path, **extra: str) -> Config:
    keys = tmp_path / "token-keys"
    if not keys.exists():
        prepend_new_key(keys)
    return broker_config(
        tmp_path, **{"FJMCP_LISTEN": "tcp:0:interface=127.0.0.1", **extra}
    )


@define
class FakeStore:
    """Records the order of events it sees."""

    events: list[str]
    closed: bool = False

    def check(self) -> Deferred[None]:
        """Always healthy."""
        return succeed(None)

    def close(self) -> None:
        """Record the close."""
        self.closed = True
        self.events.append("store-closed")

    dialect = SQLITE

    def run(self, fn: Any, /, *args: Any, **kwargs: Any) -> Deferred[None]:
        """Every transaction succeeds with nothing (the node id is free)."""
        return succeed(None)

    def listener(self, reactor: Any, on_event: Any, on_reconnect: Any) -> None:
        """One node: nobody else to hear."""
        return None


class ListenRecorder(MemoryReactorClock):
    """A memory reactor that notes when a port starts listening."""

    def __init__(self, events: list[str]) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.events = events

    def listenTCP(
        self, port: int, factory: Any, backlog: int = 50, interface: str = ""
    ) -> Any:
        """Record, then listen in memory."""
        self.events.append("listen")
        return super().listenTCP(  # type: ignore[no-untyped-call]
            port, factory, backlog, interface
        )


def _broker(
    tmp_path: Path, opener: Any = None, **extra: str
) -> tuple[BrokerService, ListenRecorder, list[str]]:
    events: list[str] = []
    reactor = ListenRecorder(events)
    store = FakeStore(events)

    def open_store(r: Any, target: StoreTarget) -> Store:
        events.append("store-opened")
        return cast(Store, store)

    service = BrokerService(
        _config(tmp_path, **extra),
        cast(IBrokerReactor, reactor),
        store_opener=opener or open_store,
        handle_signals=False,
    )
    return service, reactor, events


def test_store_opens_before_port_listens(tmp_path: Path) -> None:
    """The store is open before the listening port starts; ready then fires."""
    service, reactor, events = _broker(tmp_path)
    service.startService()
    assert events == ["store-opened", "listen"]
    assert service.ready.called
    assert len(reactor.tcpServers) == 1
    assert len(reactor.unixServers) == 1
    assert reactor.unixServers[0][0] == str(tmp_path / "admin.sock")


def test_store_open_waits_for_async_opener(tmp_path: Path) -> None:
    """While an async store open is pending, nothing listens."""
    pending: Deferred[FakeStore] = Deferred()
    service, reactor, events = _broker(tmp_path, opener=lambda r, p: pending)
    service.startService()
    assert reactor.tcpServers == []
    pending.callback(FakeStore(events))
    assert events == ["listen"]


def test_store_failure_stops_with_status_2(tmp_path: Path) -> None:
    """A store that cannot be opened: no port, exit status 2, reactor stopped."""
    failed: list[int] = []

    def refuse(r: Any, target: StoreTarget) -> Any:
        raise OSError(f"{target.location}.lock is held by another fjmcp")

    events: list[str] = []
    reactor = ListenRecorder(events)
    reactor.running = True
    service = BrokerService(
        _config(tmp_path),
        cast(IBrokerReactor, reactor),
        store_opener=refuse,
        handle_signals=False,
        on_failed_start=failed.append,
    )
    service.startService()
    assert reactor.tcpServers == []
    assert service.exit_status == EXIT_CONFIG
    assert failed == [EXIT_CONFIG]
    assert reactor.hasStopped


def test_missing_key_file_stops_with_status_2(tmp_path: Path) -> None:
    """Without a token key file the broker does not listen and exits with 2."""
    failed: list[int] = []
    events: list[str] = []
    reactor = ListenRecorder(events)
    service = BrokerService(
        _config(tmp_path, FJMCP_TOKEN_KEYS_FILE=str(tmp_path / "absent")),
        cast(IBrokerReactor, reactor),
        store_opener=lambda r, p: cast(Store, FakeStore(events)),
        handle_signals=False,
        on_failed_start=failed.append,
    )
    service.startService()
    assert reactor.tcpServers == []
    assert failed == [EXIT_CONFIG]


def test_status_handler(tmp_path: Path) -> None:
    """The status admin command reports version, uptime and children."""
    service, reactor, _ = _broker(tmp_path)
    service.startService()
    reactor.advance(12.5)
    result = service._status({})
    assert result["uptime"] == 12.5
    assert result["live_children"] == 0
    assert result["version"]


@define
class FakeSpawner:
    """An ISpawner that records stop_all."""

    events: list[str]
    live: int = 2

    def spawn(self, spec: Any, receiver: Any) -> Any:
        """Not used here."""
        raise NotImplementedError

    def stop_all(self) -> Deferred[None]:
        """Record and stop at once."""
        self.events.append("children-stopped")
        self.live = 0
        return succeed(None)


def test_shutdown_order(tmp_path: Path) -> None:
    """Stop: port closed, drains, children stopped, then the store closed."""
    service, reactor, events = _broker(tmp_path)
    service.startService()
    port = service.port
    assert port is not None

    def drain() -> None:
        events.append("drained")

    service.shutdown = ShutdownCoordinator(
        reactor, 1.0, drains=(drain,), spawners=(FakeSpawner(events),)
    )
    assert service._status({})["live_children"] == 2
    d = service.stopService()
    assert d.called
    assert events[-3:] == ["drained", "children-stopped", "store-closed"]
    assert service.port is None


def test_stop_refuses_new_requests_before_draining(tmp_path: Path) -> None:
    """Shutdown makes the site refuse requests on kept-alive connections first."""
    service, reactor, events = _broker(tmp_path)
    service.startService()
    site = service.site
    assert site is not None and site.accepting

    def drain() -> None:
        assert not site.accepting
        events.append("drained")

    service.shutdown = ShutdownCoordinator(reactor, 1.0, drains=(drain,))
    service.stopService()
    assert events[-2:] == ["drained", "store-closed"]
    assert not site.accepting


@define
class SlowDrain:
    """A drain whose in-flight requests never finish."""

    started: list[float] = field(factory=list)

    def __call__(self) -> Deferred[None]:
        """Never fire."""
        return Deferred()


def _fired(d: Deferred[Any]) -> bool:
    return bool(d.called)


def test_drain_bounded_by_budget() -> None:
    """Drains get shutdown_timeout - child_stop_grace seconds, then children stop."""
    clock = Clock()
    events: list[str] = []
    coordinator = ShutdownCoordinator(
        clock, 7.0, drains=(SlowDrain(),), spawners=(FakeSpawner(events),)
    )

    async def shutdown() -> None:
        await coordinator.drain()
        await coordinator.stop_children()

    d = Deferred.fromCoroutine(shutdown())
    clock.advance(6.9)
    assert not _fired(d)
    clock.advance(0.2)
    assert _fired(d)
    assert events == ["children-stopped"]


def test_idle_shutdown_is_immediate() -> None:
    """With nothing to drain, shutdown needs no time at all."""
    clock = Clock()
    coordinator = ShutdownCoordinator(clock, 7.0)
    d = Deferred.fromCoroutine(coordinator.drain())
    assert d.called


def test_failing_drain_does_not_block_shutdown() -> None:
    """A drain that raises is logged; the others and the children still run."""
    clock = Clock()
    events: list[str] = []

    def broken() -> None:
        raise RuntimeError("boom")

    coordinator = ShutdownCoordinator(
        clock, 7.0, drains=(broken, lambda: events.append("second"))
    )
    d = Deferred.fromCoroutine(coordinator.drain())
    assert d.called
    assert events == ["second"]


def test_production_imports_leave_standin_unloaded() -> None:
    """import fjmcp.tap and fjmcp.service never load fjmcp.standin (or the demo)."""
    code = (
        "import sys, fjmcp.tap, fjmcp.service, fjmcp.cli; "
        "bad = [m for m in sys.modules "
        "if m.startswith(('fjmcp.standin', 'fjmcp.demo'))]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    assert_python_succeeds(code)


class StopRecorder(ListenRecorder):
    """Runs ``callFromThread`` at once and records ``stop``."""

    stopped = 0

    def callFromThread(self, f: Any, *args: Any, **kw: Any) -> None:  # noqa: N802
        """Run now (the test is the reactor thread)."""
        f(*args, **kw)

    def stop(self) -> None:
        """Record the stop."""
        self.stopped += 1


def test_sigterm_fails_health_before_the_port_closes(tmp_path: Path) -> None:
    """
    With ``drain_health_grace``, SIGTERM marks the node draining at once
    (/healthz fails) and stops the reactor only when the grace is over.
    """
    events: list[str] = []
    reactor = StopRecorder(events)
    service = BrokerService(
        _config(tmp_path, FJMCP_DRAIN_HEALTH_GRACE="3"),
        cast(IBrokerReactor, reactor),
        store_opener=lambda r, t: cast(Store, FakeStore(events)),
        handle_signals=False,
    )
    service._on_signal(signal.SIGTERM, None)
    assert service.draining and reactor.stopped == 0
    reactor.advance(2.9)
    assert reactor.stopped == 0
    reactor.advance(0.2)
    assert reactor.stopped == 1


def test_a_node_id_in_use_is_refused_at_start(tmp_path: Path) -> None:
    """A node id another live node holds: no port, exit status 2."""
    failed: list[int] = []
    events: list[str] = []

    class TakenStore(FakeStore):
        def run(self, fn: Any, /, *args: Any, **kwargs: Any) -> Deferred[Any]:
            """The claim is refused."""
            return succeed("node_id 'node-a' is in use by a node on elsewhere")

    reactor = ListenRecorder(events)
    service = BrokerService(
        _config(tmp_path, FJMCP_NODE_ID="node-a"),
        cast(IBrokerReactor, reactor),
        store_opener=lambda r, t: cast(Store, TakenStore(events)),
        handle_signals=False,
        on_failed_start=failed.append,
    )
    service.startService()
    assert failed == [2]
    assert reactor.tcpServers == []
    assert service.exit_status == 2
