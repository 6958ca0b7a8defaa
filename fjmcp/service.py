# -*- test-case-name: tests.test_service -*-
"""
The broker's service tree: the one place real reactor, pool and components
are wired together.

Start-up order matters: the store is opened (migrated, its lock held) first;
a broker that cannot own its store must not answer on its port. Then the key
ring is loaded, the components are built, the admin socket is bound, and last
the listening port opens. `BrokerService.ready` fires when it does.

Shutdown (SIGTERM, SIGINT, or ``reactor.stop()``) runs the other way, bounded
by ``shutdown_timeout``:

1. the port stops accepting connections, and the site answers any further
   request on a kept-alive connection with 503;
2. every registered *drain* runs at once: each closes its idle and standalone
   streams immediately and returns a Deferred that fires when its in-flight
   requests have finished; they get ``shutdown_timeout - child_stop_grace``
   seconds together;
3. every registered spawner's ``stop_all()`` stops its children (TERM, then
   KILL after ``child_stop_grace``);
4. the other services stop (admin socket, maintenance loops) and the store is
   closed, leaving no open handles.

With nothing in flight every step finishes at once, so an idle broker exits
in well under a second. The broker handles SIGTERM and SIGINT itself, so that
a requested stop exits with status 0 (twistd would otherwise re-raise the
signal at exit) and children, which run in their own session, hear of it only
through the broker.

Components plug in through `Wiring` in `BrokerService._wire`: a Klein app is
one ``wiring.routes.append(...)``, a plain resource one
``wiring.plain[b"mcp"] = ...``, a drain one ``wiring.shutdown.add_drain(...)``,
a spawner one ``wiring.shutdown.add_spawner(...)``, an admin command one
``wiring.admin.register(...)``, a periodic service one
``wiring.services.append(...)``.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Awaitable, Callable, Coroutine
from types import FrameType
from typing import TYPE_CHECKING, Any, Protocol, cast

from attrs import define, field
from klein import Klein
from twisted.application.service import IService, MultiService, Service
from twisted.internet.defer import Deferred, DeferredList, TimeoutError
from twisted.internet.endpoints import serverFromString
from twisted.internet.interfaces import (
    IListeningPort,
    IReactorCore,
    IReactorFromThreads,
    IReactorProcess,
    IReactorTCP,
    IReactorTime,
    IReactorUNIX,
)
from twisted.logger import Logger
from twisted.web.resource import IResource
from zope.interface import Interface

from fjmcp.admin.server import AdminHandlers, AdminServerService
from fjmcp.admin.tokens import AdminTokenIssuer
from fjmcp.awaitables import maybe_await
from fjmcp.buildinfo import BuildInfo, build_info
from fjmcp.config import Config
from fjmcp.interfaces import ISpawner
from fjmcp.maintenance.wiring import wire_lifecycle
from fjmcp.oauth.bearer import BearerAuthenticator
from fjmcp.oauth.challenge import challenge_header
from fjmcp.oauth.keys import KeyFileError, KeyRing, load_keyring
from fjmcp.oauth.server import build_authorization_server
from fjmcp.oauth.settings import OAuthSettings
from fjmcp.oauth.upstream_tokens import UpstreamTokens
from fjmcp.sessions.registry import SessionRegistry
from fjmcp.store.runner import TxnRunner
from fjmcp.supervisor.environment import child_spec
from fjmcp.supervisor.supervisor import Supervisor
from fjmcp.upstream.forgejo import ForgejoClient
from fjmcp.web.health import Health
from fjmcp.web.mcp_resource import McpResource
from fjmcp.web.oauth_routes import OAuthRoutes
from fjmcp.web.root import build_root
from fjmcp.web.site import BrokerSite

if TYPE_CHECKING:
    from fjmcp.store.store import Store

__all__ = [
    "BrokerService",
    "EXIT_CONFIG",
    "EXIT_STARTUP",
    "IBrokerReactor",
    "ShutdownCoordinator",
    "StoreLike",
    "Wiring",
    "build_service",
    "default_store_opener",
    "installed_reactor",
]

#: Exit status for a configuration (or store ownership) problem.
EXIT_CONFIG = 2
#: Exit status for any other failure to start (e.g. the port is taken).
EXIT_STARTUP = 1


class IBrokerReactor(
    IReactorTime,
    IReactorCore,
    IReactorTCP,
    IReactorUNIX,
    IReactorFromThreads,
    IReactorProcess,
    Interface,
):
    """What the broker needs of its reactor (processes for the supervisor)."""


class StoreLike(Protocol):
    """The part of `fjmcp.store`'s ``Store`` the wiring uses."""

    def check(self) -> Any:
        """Resolves when the store answers; fails with the reason otherwise."""

    def close(self) -> Any:
        """Release the pool, the file handles and the lock."""


StoreOpener = Callable[[Any, str], Any]
Drain = Callable[[], Awaitable[object] | object]


def default_store_opener(reactor: Any, path: str) -> Coroutine[Any, Any, Store]:
    """Open the real store (``fjmcp.store.store.open_store``), imported lazily."""
    # Imported on first use: the store pulls in adbapi and its threadpool.
    from fjmcp.store.store import open_store

    return open_store(reactor, path)


def _store_error_types() -> tuple[type[BaseException], ...]:
    from fjmcp.store.errors import StoreError

    return (StoreError,)


@define
class ShutdownCoordinator:
    """
    The hooks shutdown runs: drains first (bounded), then every spawner.

    :param drain_budget: seconds the drains get together
        (``shutdown_timeout - child_stop_grace``).
    """

    _clock: IReactorTime
    drain_budget: float
    _drains: list[Drain] = field(factory=list)
    _spawners: list[ISpawner] = field(factory=list)

    log = Logger()

    def add_drain(self, drain: Drain) -> None:
        """
        Run ``drain()`` at shutdown: it closes idle and standalone streams at
        once and returns an awaitable that completes when the in-flight
        requests it knows of are done.
        """
        self._drains.append(drain)

    def add_spawner(self, spawner: ISpawner) -> None:
        """Stop this spawner's children (``stop_all``) after the drains."""
        self._spawners.append(spawner)

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


@define(kw_only=True)
class Wiring:
    """What components contribute while the tree is being built."""

    config: Config
    reactor: Any
    store: StoreLike
    routes: list[Klein] = field(factory=list)
    """Klein apps, tried in order for every path not in ``plain``."""
    plain: dict[bytes, IResource] = field(factory=dict)
    """Plain twisted.web resources by first path segment (``b"mcp"``)."""
    admin: AdminHandlers = field(factory=AdminHandlers)
    shutdown: ShutdownCoordinator
    services: list[IService] = field(factory=list)
    """Child services started after the store opened, stopped before it closes."""
    keys: KeyRing | None = None
    """The token key ring (fjmcp.oauth.keys), loaded first in `BrokerService._wire`."""
    authenticator: BearerAuthenticator | None = None
    """The bearer check of /mcp (IAuthenticator)."""
    upstream_tokens: UpstreamTokens | None = None
    """Each user's current Forgejo token (IUpstreamTokens)."""
    sessions: SessionRegistry | None = None
    """The live MCP sessions (ISessionControl; fjmcp.sessions.registry)."""


class _CloseOnStop(Service):
    """Closes a client's pooled connections when the broker stops, so that
    shutdown leaves no socket to Forgejo open."""

    def __init__(self, close: Callable[[], Deferred[None]]) -> None:
        self._close = close

    def stopService(self) -> Deferred[None]:
        super().stopService()  # type: ignore[no-untyped-call]
        return self._close()


class BrokerService(MultiService):
    """
    The root of the broker's service tree (see the module docstring).

    :param store_opener: ``(reactor, path) -> Store`` or a Deferred/awaitable
        of one; tests pass a fake.
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
        self.store: StoreLike | None = None
        self.port: IListeningPort | None = None
        self.site: BrokerSite | None = None
        self.shutdown = ShutdownCoordinator(
            reactor, config.shutdown_timeout - config.child_stop_grace
        )
        self.admin = AdminHandlers()
        self.started_at: float | None = None
        self.ready: Deferred[None] = Deferred()
        self.wiring: Wiring | None = None
        """The components once wired (status, metrics and integration tests)."""
        self._starting: Deferred[None] | None = None
        self._stopping_by_signal = False

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
                self._store_opener(self._reactor, config.store_path)
            )
        except _store_error_types() as e:
            self._failed(f"cannot use the store: {e}", EXIT_CONFIG)
            return
        except Exception as e:
            self.log.failure("opening the store failed")
            self._failed(f"cannot open the store {config.store_path}: {e}", EXIT_CONFIG)
            return
        self.store = store
        try:
            wiring = self._wire(store)
            self.wiring = wiring
        except KeyFileError as e:
            self._failed(f"cannot use the token keys: {e}", EXIT_CONFIG)
            return
        try:
            site = self.site = BrokerSite(
                build_root(wiring.routes, wiring.plain),
                reactor=self._reactor,
                max_request_bytes=config.max_request_bytes,
                request_timeout=config.request_timeout,
            )
            for service in wiring.services:
                service.setServiceParent(self)
            AdminServerService(  # type: ignore[no-untyped-call]
                self._reactor, config.admin_socket_path, self.admin
            ).setServiceParent(self)
        except Exception as e:
            self.log.failure("building the broker failed")
            self._failed(f"cannot start: {e}", EXIT_STARTUP)
            return
        try:
            endpoint = serverFromString(self._reactor, config.listen)
            self.port = await endpoint.listen(site)
        except Exception as e:
            self._failed(f"cannot listen on {config.listen}: {e}", EXIT_STARTUP)
            return
        self.log.info(
            "fjmcp {version} ({revision}) listening on {address}; public URL {url}",
            version=self._build.version,
            revision=self._build.git_revision,
            address=str(self.port.getHost()),
            url=config.public_url,
        )
        self.ready.callback(None)

    def _wire(self, store: StoreLike) -> Wiring:
        """
        Build the components. Each later component adds itself here in a line.
        """
        wiring = Wiring(
            config=self._config,
            reactor=self._reactor,
            store=store,
            admin=self.admin,
            shutdown=self.shutdown,
        )
        wiring.admin.register("status", self._status)

        # --- token key ring (issue 4): loaded before anything that seals or
        # opens tokens; a missing or open key file stops the start (exit 2).
        wiring.keys = load_keyring(self._config.token_keys_path)
        runner = cast(TxnRunner, store)
        wiring.upstream_tokens = UpstreamTokens(
            runner, wiring.keys, self._reactor, self._config.forgejo_scopes
        )
        wiring.authenticator = BearerAuthenticator(
            runner, self._reactor, self._config.mcp_url
        )
        wiring.admin.register(
            "issue-token",
            AdminTokenIssuer(
                runner,
                wiring.upstream_tokens,
                self._reactor,
                self._config.mcp_url,
                self._config.access_token_ttl,
            ).handle,
        )

        wiring.routes.append(
            Health(lambda: maybe_await(store.check()), self._build, wiring.reactor).app
        )
        # --- OAuth: the Forgejo client (the authorization server
        # is built once the sessions exist: revocations end sessions).
        forgejo = ForgejoClient.from_reactor(
            self._reactor,
            self._config.forgejo_url,
            self._config.forgejo_client_id,
            self._config.forgejo_client_secret,
            timeout=self._config.forgejo_timeout,
        )
        # Added before the timers that use it, so it is stopped after them.
        wiring.services.append(_CloseOnStop(forgejo.close))
        # --- bridge (issue 5): /mcp, its sessions and their children
        supervisor = Supervisor(self._reactor)
        config = self._config
        wiring.sessions = SessionRegistry(
            supervisor,
            wiring.upstream_tokens,
            lambda token, label: child_spec(config, token=token, label=label),
            self._reactor,
            max_children=config.max_children,
            max_children_per_user=config.max_children_per_user,
            drain_timeout=config.child_drain_timeout,
        )
        mcp = McpResource(
            config=config,
            authenticator=wiring.authenticator,
            challenge=lambda sent: challenge_header(config, token_sent=sent),
            registry=wiring.sessions,
            clock=self._reactor,
        )
        wiring.plain[b"mcp"] = mcp
        authorization = build_authorization_server(
            OAuthSettings.from_config(config),
            runner,
            self._reactor,
            wiring.keys,
            forgejo,
            wiring.upstream_tokens,
            wiring.authenticator,
            wiring.sessions,
        )
        wiring.routes.append(OAuthRoutes(authorization).app)
        wiring.shutdown.add_drain(wiring.sessions.drain)
        wiring.shutdown.add_spawner(supervisor)
        # --- maintenance (issue 6): idle reaper, Forgejo refresh, revoke-user
        wire_lifecycle(
            wiring,
            sessions=wiring.sessions,
            upstream=wiring.upstream_tokens,
            bearer=wiring.authenticator,
            forgejo=forgejo,
        )
        return wiring

    def _status(self, args: object) -> dict[str, Any]:
        now = self._reactor.seconds()
        started = self.started_at if self.started_at is not None else now
        return {
            "version": self._build.version,
            "git_revision": self._build.git_revision,
            "build_date": self._build.build_date,
            "pid": os.getpid(),
            "uptime": round(now - started, 3),
            "live_children": self.shutdown.live_children(),
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
        self._reactor.callFromThread(self._reactor.stop)

    # --- stop -------------------------------------------------------------------

    def stopService(self) -> Deferred[None]:
        """The ordered shutdown (see the module docstring)."""
        d: Deferred[None] = Deferred.fromCoroutine(self._stop())
        return d

    async def _stop(self) -> None:
        if self._starting is not None and not self._starting.called:
            self._starting.cancel()
        port, self.port = self.port, None
        if self.site is not None:
            # Kept-alive connections must not start anything new either.
            self.site.stop_accepting()
        if port is not None:
            await maybe_await(port.stopListening())
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
