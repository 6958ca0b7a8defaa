# -*- test-case-name: tests.test_service -*-
"""
The broker's service tree and its life: the ordered start-up, the signals,
the ordered shutdown.

Start-up order matters: the store is opened (migrated, its lock held) first;
a broker that cannot own its store must not answer on its port. Then the key
ring is loaded, the components are built (`fjmcp.wiring`), their services
start (maintenance loops, the admin socket), and last the listening port
opens. `BrokerService.ready` fires when it does.

Shutdown (SIGTERM, SIGINT, or ``reactor.stop()``) runs the other way, bounded
by ``shutdown_timeout``:

1. the port stops accepting connections, and the site answers any further
   request on a kept-alive connection with 503;
2. every *drain* of the broker runs at once: each closes its idle and standalone
   streams immediately and returns a Deferred that fires when its in-flight
   requests have finished; they get ``shutdown_timeout - child_stop_grace``
   seconds together;
3. every spawner's ``stop_all()`` stops its children (TERM, then
   KILL after ``child_stop_grace``);
4. the other services stop (admin socket, maintenance loops) and the store is
   closed, leaving no open handles.

With nothing in flight every step finishes at once, so an idle broker exits
in well under a second. The broker handles SIGTERM and SIGINT itself, so that
a requested stop exits with status 0 (twistd would otherwise re-raise the
signal at exit) and children, which run in their own session, hear of it only
through the broker.

The objects themselves are built by the composition root,
`fjmcp.wiring.build_broker`, from the settings `fjmcp.settings` cuts out of
the configuration; this module runs their life and nothing else.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Awaitable, Callable, Sequence
from types import FrameType
from typing import Any, cast

from attrs import define
from twisted.application.service import MultiService
from twisted.internet.defer import Deferred, DeferredList, TimeoutError
from twisted.internet.endpoints import serverFromString
from twisted.internet.interfaces import IListeningPort, IReactorCore, IReactorTime
from twisted.logger import Logger

from fjmcp.awaitables import maybe_await
from fjmcp.buildinfo import BuildInfo, build_info
from fjmcp.config import Config
from fjmcp.interfaces import ISpawner
from fjmcp.listening import listen_failure
from fjmcp.oauth.keys import KeyFileError, LiveKeyRing, load_keyring
from fjmcp.settings import broker_settings
from fjmcp.store.store import Store
from fjmcp.store.target import StoreTarget
from fjmcp.supervisor.startup import IsolationError, prepare_isolation
from fjmcp.web.site import BrokerSite
from fjmcp.wiring import Broker, Drain, IBrokerReactor, build_broker

__all__ = [
    "BrokerService",
    "EXIT_CONFIG",
    "EXIT_STARTUP",
    "IBrokerReactor",
    "ShutdownCoordinator",
    "StoreOpener",
    "build_service",
    "default_store_opener",
    "installed_reactor",
]

#: Exit status for a configuration (or store ownership) problem.
EXIT_CONFIG = 2
#: Exit status for any other failure to start (e.g. the port is taken).
EXIT_STARTUP = 1

#: Opens the store named by ``store_url``: the store, or an awaitable of it.
StoreOpener = Callable[[IBrokerReactor, StoreTarget], Store | Awaitable[Store]]


def default_store_opener(
    reactor: IBrokerReactor, target: StoreTarget | str
) -> Awaitable[Store]:
    """Open the real store (``fjmcp.store.store.open_store_at``)."""
    from fjmcp.store.store import open_store_at

    return open_store_at(reactor, target)


def _store_error_types() -> tuple[type[BaseException], ...]:
    from fjmcp.store.errors import StoreError

    return (StoreError,)


@define
class ShutdownCoordinator:
    """
    What shutdown runs: the drains first (bounded), then every spawner's
    ``stop_all``.

    :param drain_budget: seconds the drains get together
        (``shutdown_timeout - child_stop_grace``).
    :param drains: each closes its idle and standalone streams at once and
        returns an awaitable that completes when the in-flight requests it
        knows of are done.
    """

    _clock: IReactorTime
    drain_budget: float
    _drains: Sequence[Drain] = ()
    _spawners: Sequence[ISpawner] = ()

    log = Logger()

    def live_children(self) -> int:
        """Children alive across every spawner."""
        return sum(s.live for s in self._spawners)

    async def _run_drain(self, drain: Drain) -> None:
        try:
            await maybe_await(drain())
        except Exception:
            self.log.failure("a shutdown drain failed")

    async def drain(self) -> None:
        """Run every drain at once; give up waiting after ``drain_budget``."""
        if not self._drains:
            return
        waits = [Deferred.fromCoroutine(self._run_drain(d)) for d in self._drains]
        together: Deferred[Any] = DeferredList(waits, consumeErrors=True)
        together.addTimeout(max(self.drain_budget, 0.0), self._clock)
        try:
            await together
        except TimeoutError:
            self.log.warn(
                "requests still in flight after {budget:g}s; stopping children",
                budget=self.drain_budget,
            )

    async def stop_children(self) -> None:
        """Stop every child of every spawner (TERM, KILL after the grace)."""
        stops: list[Deferred[Any]] = []
        for spawner in self._spawners:
            stops.append(Deferred.fromCoroutine(maybe_await(spawner.stop_all())))
        if stops:
            await DeferredList(stops, consumeErrors=True)


class BrokerService(MultiService):
    """
    The root of the broker's service tree (see the module docstring).

    :param store_opener: ``(reactor, StoreTarget) -> Store`` or an awaitable of
        one; tests pass a fake.
    :param handle_signals: install the SIGTERM/SIGINT handlers when the
        reactor runs (off for tests on a fake reactor).
    :param on_failed_start: called with the exit status when start-up fails,
        after the reactor has been asked to stop.
    """

    log = Logger()

    def __init__(
        self,
        config: Config,
        reactor: IBrokerReactor,
        *,
        store_opener: StoreOpener = default_store_opener,
        build: BuildInfo | None = None,
        handle_signals: bool = True,
        on_failed_start: Callable[[int], None] | None = None,
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.setName("fjmcp")  # type: ignore[no-untyped-call]
        self._config = config
        self._reactor = reactor
        self._store_opener = store_opener
        self._build = build or build_info()
        self._handle_signals = handle_signals
        self._on_failed_start = on_failed_start
        self.exit_status = 0
        self.store: Store | None = None
        self.port: IListeningPort | None = None
        self.broker: Broker | None = None
        """The objects `build_broker` built, once the store is open (status,
        metrics and integration tests)."""
        self.shutdown: ShutdownCoordinator | None = None
        """The broker's drains and spawners, once built."""
        self.started_at: float | None = None
        self.ready: Deferred[None] = Deferred()
        self._starting: Deferred[None] | None = None
        self._stopping_by_signal = False
        self.draining = False
        """Whether shutdown began: /healthz fails from then on."""

    @property
    def site(self) -> BrokerSite | None:
        """The site the port serves, once built."""
        return self.broker.site if self.broker is not None else None

    # --- start ----------------------------------------------------------------

    def startService(self) -> None:
        """Begin the ordered start-up; `ready` fires once the port listens."""
        super().startService()  # type: ignore[no-untyped-call]
        self.started_at = self._reactor.seconds()
        if self._handle_signals:
            self._reactor.callWhenRunning(self._install_signal_handlers)
        self._starting = Deferred.fromCoroutine(self._start())

    async def _start(self) -> None:
        config = self._config
        try:
            store = await maybe_await(
                self._store_opener(self._reactor, config.store_target())
            )
        except _store_error_types() as e:
            self._failed(f"cannot use the store: {e}", EXIT_CONFIG)
            return
        except Exception as e:
            self.log.failure("opening the store failed")
            self._failed(f"cannot open the store: {e}", EXIT_CONFIG)
            return
        self.store = store
        # The key ring is loaded before anything that seals or opens tokens;
        # a missing or open key file stops the start (exit 2).
        try:
            keys = LiveKeyRing(
                load_keyring(config.token_keys_path), config.token_keys_path
            )
        except KeyFileError as e:
            self._failed(f"cannot use the token keys: {e}", EXIT_CONFIG)
            return
        settings = broker_settings(config)
        try:
            isolation = await prepare_isolation(
                settings.isolation,
                settings.child,
                store,
                clock_seconds=self._reactor.seconds,
            )
        except IsolationError as e:
            self._failed(f"cannot confine children: {e}", EXIT_CONFIG)
            return
        try:
            broker = self.broker = build_broker(
                settings,
                self._reactor,
                store,
                keys,
                status=self._status,
                isolation=isolation,
                draining=lambda: self.draining,
            )
            self.shutdown = ShutdownCoordinator(
                self._reactor,
                config.shutdown_timeout - config.child_stop_grace,
                drains=broker.drains,
                spawners=broker.spawners,
            )
            for service in broker.services:
                service.setServiceParent(self)
        except Exception as e:
            self.log.failure("building the broker failed")
            self._failed(f"cannot start: {e}", EXIT_STARTUP)
            return
        if not await self._claim_node(broker, store):
            return
        try:
            endpoint = serverFromString(self._reactor, config.listen)
            self.port = await endpoint.listen(broker.site)
        except Exception as e:
            self._failed(listen_failure("the broker", e), EXIT_STARTUP)
            return
        self.log.info(
            "fjmcp {version} ({revision}) listening on {address}; public URL {url}",
            version=self._build.version,
            revision=self._build.git_revision,
            address=str(self.port.getHost()),
            url=config.public_url,
        )
        self.ready.callback(None)

    async def _claim_node(self, broker: Broker, store: Store) -> bool:
        """
        Take this node's id in the store (refused while another live node
        holds it: session ids carry it); warn about a node id on SQLite,
        which serves one node only.
        """
        config = self._config
        if config.node_id and store.dialect.name == "sqlite":
            self.log.warn(
                "node_id {node} is set but the store is SQLite, which serves "
                "one node; several nodes need store_url = postgresql://...",
                node=config.node_id,
            )
        try:
            refusal = await broker.presence.claim()
        except Exception as e:
            self._failed(f"cannot claim node id {config.node_name}: {e}", EXIT_STARTUP)
            return False
        if refusal is not None:
            self._failed(refusal, EXIT_CONFIG)
            return False
        return True

    def _status(self, args: object) -> dict[str, Any]:
        now = self._reactor.seconds()
        started = self.started_at if self.started_at is not None else now
        return {
            "version": self._build.version,
            "git_revision": self._build.git_revision,
            "build_date": self._build.build_date,
            "pid": os.getpid(),
            "uptime": round(now - started, 3),
            "live_children": self.shutdown.live_children() if self.shutdown else 0,
            "listening": str(self.port.getHost()) if self.port else None,
        }

    def _failed(self, message: str, status: int) -> None:
        self.log.critical("fjmcp: {message}", message=message)
        self.exit_status = status
        if not self.ready.called:
            self.ready.errback(RuntimeError(message))
            self.ready.addErrback(lambda _: None)
        if self._on_failed_start is not None:
            self._on_failed_start(status)
        if self._reactor.running:
            self._reactor.stop()
        else:
            self._reactor.callWhenRunning(self._reactor.stop)

    # --- signals ----------------------------------------------------------------

    def _install_signal_handlers(self) -> None:
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._on_signal)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if self._stopping_by_signal:
            self._reactor.callFromThread(
                self.log.info, "{signal} again: already shutting down", signal=name
            )
            return
        self._stopping_by_signal = True
        self._reactor.callFromThread(
            self.log.info, "{signal} received; shutting down", signal=name
        )
        self._reactor.callFromThread(self._fail_health_then_stop)

    def _fail_health_then_stop(self) -> None:
        """
        Fail /healthz at once; stop (close the port, drain) after
        ``drain_health_grace``, by when a balancer has stopped sending new
        sessions here.
        """
        self.draining = True
        grace = self._config.drain_health_grace
        if grace > 0:
            self.log.info("failing health checks for {grace:g}s first", grace=grace)
            self._reactor.callLater(grace, self._reactor.stop)
        else:
            self._reactor.stop()

    # --- stop -------------------------------------------------------------------

    def stopService(self) -> Deferred[None]:
        """The ordered shutdown (see the module docstring)."""
        d: Deferred[None] = Deferred.fromCoroutine(self._stop())
        return d

    async def _stop(self) -> None:
        if self._starting is not None and not self._starting.called:
            self._starting.cancel()
        port, self.port = self.port, None
        site = self.site
        if site is not None:
            # Kept-alive connections must not start anything new either.
            site.stop_accepting()
        if port is not None:
            await maybe_await(port.stopListening())
        if self.shutdown is not None:
            await self.shutdown.drain()
            await self.shutdown.stop_children()
        await maybe_await(super().stopService())  # type: ignore[no-untyped-call]
        store, self.store = self.store, None
        if store is not None:
            try:
                await maybe_await(store.close())
            except Exception:
                self.log.failure("closing the store failed")
        self.log.info("fjmcp stopped")


def exit_after_shutdown(reactor: IReactorCore) -> Callable[[int], None]:
    """
    For twistd: make a failed start end the process with its status.

    twistd exits 0 after a normal reactor stop; this registers a last
    shutdown trigger that flushes the standard streams and exits with the
    given status instead.
    """

    def _arm(status: int) -> None:
        def _exit() -> None:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(status)

        reactor.addSystemEventTrigger("after", "shutdown", _exit)

    return _arm


def installed_reactor() -> IBrokerReactor:
    """
    The global reactor, typed as what the broker needs of it.

    Called at run time only (twistd has installed its reactor by then); no
    module of the broker imports the global reactor at import time.
    """
    from twisted.internet import reactor

    return cast(IBrokerReactor, reactor)


def build_service(
    config: Config,
    reactor: IBrokerReactor | None = None,
    *,
    store_opener: StoreOpener | None = None,
    handle_signals: bool = True,
    on_failed_start: Callable[[int], None] | None = None,
) -> BrokerService:
    """
    The broker's service tree for a configuration.

    The global reactor is used when none is given (twistd has installed it by
    the time this runs); nothing is opened until the service starts.
    """
    if reactor is None:
        reactor = installed_reactor()
    return BrokerService(
        config,
        reactor,
        store_opener=store_opener or default_store_opener,
        handle_signals=handle_signals,
        on_failed_start=on_failed_start,
    )
