# -*- test-case-name: tests.test_wiring -*-
"""
The composition root: every long-lived object of the broker, built in one
function, in dependency order, each given what it needs at construction.

`fjmcp.service.BrokerService` runs the broker's life (store first, then the
key ring, then this, then the port; the ordered shutdown); this module only
builds. It is kept apart from the service so that each has one job: here
the object graph is read top to bottom as a list of constructor calls, and
adding a component (metrics, an audit log, a rate limiter) is one more line
in `build_broker` and one more field of `Broker`, with no other module
learning of it. Nothing else in ``fjmcp/`` constructs a service, and no
component imports this module or `fjmcp.service`.

Only this module and `fjmcp.service` hold the whole reactor
(`IBrokerReactor`); every component is handed the narrowest interface it
uses (`IReactorTime` for its timers, `IReactorProcess` for the supervisor,
`IReactorUNIX` for the admin socket, `IHTTPReactor` for the Forgejo
client's pool, `IStoreReactor` for the store), and its own settings, cut
from the configuration by `fjmcp.settings`.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Awaitable, Callable
from functools import partial
from typing import TYPE_CHECKING

from attrs import define, frozen
from twisted.application.service import IService, Service
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorProcess, IReactorUNIX
from zope.interface import Interface

from fjmcp.admin.server import (
    AdminHandlers,
    AdminServerService,
    Handler,
    made_at_first_call,
)
from fjmcp.audit.file import AuditFile
from fjmcp.audit.log import AuditLog
from fjmcp.awaitables import maybe_await
from fjmcp.interfaces import (
    ICallObserver,
    IOAuthObserver,
    IPolicyObserver,
    IResponseObserver,
    ISpawner,
    ISpawnObserver,
    UpstreamToken,
)
from fjmcp.maintenance.cluster import ClusterSync
from fjmcp.maintenance.node import NodePresence
from fjmcp.maintenance.purge import ExpiredPurger
from fjmcp.maintenance.reaper import IdleReaper
from fjmcp.maintenance.refresher import StoreRefreshableTokens, TokenRefresher
from fjmcp.maintenance.revocation import UserRevoker, store_revocation
from fjmcp.metrics.settings import MetricsSettings
from fjmcp.oauth.bearer import BearerAuthenticator
from fjmcp.oauth.challenge import challenge_header
from fjmcp.oauth.document_settings import build_document_clients
from fjmcp.oauth.keys import KeyRing, LiveKeyRing
from fjmcp.oauth.server import AuthorizationServer, build_authorization_server
from fjmcp.oauth.upstream_tokens import UpstreamTokens
from fjmcp.observers import NO_OBSERVER, Observers
from fjmcp.policy.book import PolicyBook
from fjmcp.sessions.registry import SessionRegistry
from fjmcp.sessions.spawn_gate import SpawnGate
from fjmcp.settings import BrokerSettings
from fjmcp.store.pool import IStoreReactor
from fjmcp.store.store import Store
from fjmcp.supervisor.startup import Isolation
from fjmcp.supervisor.supervisor import Supervisor
from fjmcp.upstream.forgejo import ForgejoClient, IHTTPReactor
from fjmcp.web.account import AccountRoutes
from fjmcp.web.health import Health
from fjmcp.web.mcp_resource import McpResource
from fjmcp.web.oauth_routes import OAuthRoutes
from fjmcp.web.ratelimit import RateLimits
from fjmcp.web.root import build_root
from fjmcp.web.site import BrokerSite

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

__all__ = [
    "Broker",
    "CloseOnStop",
    "Drain",
    "IBrokerReactor",
    "TokenRelay",
    "build_broker",
]

#: How often expired rows and idle registrations are purged.
PURGE_INTERVAL = 3600.0

#: Closes idle and standalone streams at once; its result completes when the
#: requests in flight it knows of are done.
Drain = Callable[[], Awaitable[object] | object]


class IBrokerReactor(
    IStoreReactor,
    IHTTPReactor,
    IReactorUNIX,
    IReactorProcess,
    Interface,
):
    """
    Everything the broker needs of its reactor: time, TCP (and TLS and name
    resolution for calls to Forgejo), Unix sockets for the admin channel,
    threads for the store, processes for the supervisor.
    """


class CloseOnStop(Service):
    """Closes a client's pooled connections when the broker stops, so that
    shutdown leaves no socket to Forgejo open."""

    def __init__(self, close: Callable[[], Deferred[None]]) -> None:
        self._close = close

    def stopService(self) -> Deferred[None]:
        """Stop, then wait for the close."""
        super().stopService()  # type: ignore[no-untyped-call]
        return self._close()


@define
class TokenRelay:
    """
    Forwards each stored Forgejo token to the sessions, which are built
    after the token memory that calls this (they read it): the one cycle of
    the object graph, closed here once both exist. Tokens stored before
    that (none are: nothing runs while the broker is being built) are
    dropped.
    """

    _target: Callable[[UpstreamToken], None] | None = None

    def connect(self, target: Callable[[UpstreamToken], None]) -> None:
        """Forward from now on to ``target``; once."""
        if self._target is not None:
            raise RuntimeError("the token relay is already connected")
        self._target = target

    def __call__(self, token: UpstreamToken) -> None:
        """Forward ``token``."""
        if self._target is not None:
            self._target(token)


@frozen
class Broker:
    """
    Everything `build_broker` built. The service listens with ``site``,
    starts ``services`` in order (and stops them in reverse), and at
    shutdown runs ``drains`` and then stops ``spawners``' children; the
    other fields are there for status, metrics and tests.
    """

    site: BrokerSite
    services: tuple[IService, ...]
    drains: tuple[Drain, ...]
    spawners: tuple[ISpawner, ...]
    admin: AdminHandlers
    upstream_tokens: UpstreamTokens
    bearer: BearerAuthenticator
    forgejo: ForgejoClient
    authorization: AuthorizationServer
    supervisor: Supervisor
    sessions: SessionRegistry
    spawn_gate: SpawnGate
    """Children starting at once and their queueing time (for metrics)."""
    revoker: UserRevoker
    reaper: IdleReaper
    refresher: TokenRefresher
    presence: NodePresence
    purger: ExpiredPurger
    keys: LiveKeyRing
    """The keys every component seals with (rotate-key replaces them)."""
    metrics: CollectorRegistry | None = None
    """The metrics registry, when ``metrics_listen`` is set."""


def _metrics_registry(settings: MetricsSettings) -> CollectorRegistry | None:
    """A fresh registry when metrics are on (importing prometheus_client then)."""
    if not settings.enabled:
        return None
    from prometheus_client import CollectorRegistry

    return CollectorRegistry()


def build_broker(
    settings: BrokerSettings,
    reactor: IBrokerReactor,
    store: Store,
    keys: LiveKeyRing | KeyRing,
    *,
    status: Handler,
    isolation: Isolation,
    draining: Callable[[], bool] = lambda: False,
) -> Broker:
    """
    Build the broker's objects on an open ``store`` and a loaded ``keys``.

    Nothing here does I/O or starts anything: the returned services start
    when the broker's service tree does.

    :param status: the ``status`` admin command (the service's own state).
    :param isolation: how children are confined, prepared by
        `fjmcp.supervisor.startup.prepare_isolation` (which does I/O).
    :param draining: whether the node is shutting down (health fails first).
    """
    # The components seal with the live ring: rotate-key swaps its keys.
    live_keys = keys if isinstance(keys, LiveKeyRing) else LiveKeyRing(keys)

    # --- metrics: prometheus_client is imported only when they are on -------
    registry = _metrics_registry(settings.metrics)
    spawns: ISpawnObserver = NO_OBSERVER
    calls: ICallObserver = NO_OBSERVER
    responses: IResponseObserver = NO_OBSERVER
    oauth_events: IOAuthObserver = NO_OBSERVER
    refusals: IPolicyObserver = NO_OBSERVER
    spawn_queued: Callable[[float], None] | None = None
    if registry is not None:
        from fjmcp.metrics.collectors import BrokerMetrics

        metrics = BrokerMetrics(registry)
        spawns = calls = responses = oauth_events = metrics
        spawn_queued = metrics.spawn_queued

    # --- the audit log: requests and grants, to their own file ---------------
    audit_file = AuditFile(settings.audit, reactor) if settings.audit.enabled else None
    audit = AuditLog(reactor, audit_file.write_line) if audit_file else None
    if audit is not None:
        parts_calls = (calls, audit) if registry is not None else (audit,)
        parts_oauth = (oauth_events, audit) if registry is not None else (audit,)
        calls = Observers(calls=parts_calls)
        oauth_events = Observers(oauth=parts_oauth)
        refusals = audit

    # --- tokens: the users' Forgejo tokens and the bearer check ------------
    oauth = settings.oauth
    # Every new Forgejo token reaches the sessions, not only the refresher's:
    # after a fresh login the older token a running child holds may expire
    # before the refresher, which looks at the newest token only, renews it.
    # The sessions read the token memory, so they come later: a relay.
    stored = TokenRelay()
    grants = oauth.grants
    upstream_tokens = UpstreamTokens(
        store, live_keys, reactor, grants, on_stored=stored
    )
    bearer = BearerAuthenticator(
        store, reactor, oauth.resource, trust_for=oauth.revocation_propagation
    )
    # One OAuth2 application at Forgejo per upstream grant kind: Forgejo
    # keeps one grant per user and application.
    forgejo = ForgejoClient.from_reactor(reactor, settings.forgejo)
    read_only_app = settings.forgejo.read_only
    read_only_forgejo = (
        None
        if read_only_app is None or not grants.separate
        else ForgejoClient.from_reactor(reactor, read_only_app)
    )

    # --- children, the sessions that own them, and /mcp ---------------------
    supervisor = Supervisor(reactor, ledger=isolation.ledger, cgroups=isolation.cgroups)
    spawn_gate = SpawnGate(
        reactor, limit=settings.sessions.max_concurrent_spawns, observe=spawn_queued
    )
    sessions = SessionRegistry(
        supervisor,
        upstream_tokens,
        isolation.spec_factory,
        reactor,
        settings.sessions,
        spawns=spawns,
        spawn_gate=spawn_gate,
        grant_of=lambda identity: grants.of(identity.user, identity.consent),
    )
    policies = PolicyBook(settings.policy, settings.client_names)
    mcp = McpResource(
        settings=settings.mcp,
        authenticator=bearer,
        challenge=lambda sent: challenge_header(oauth, token_sent=sent),
        registry=sessions,
        clock=reactor,
        policies=policies,
        request_state_keys=partial(keys.derive_each, "request-state"),
        calls=calls,
        refusals=refusals,
    )
    stored.connect(sessions.token_rotated)

    # --- OAuth: the authorization server, its routes, the health check -----
    # Built once the sessions exist: a revoked grant ends its sessions.
    # A client_id that is an https URL: known records, else a guarded fetch.
    documents = build_document_clients(settings.client_documents, store, reactor)
    authorization = build_authorization_server(
        oauth,
        store,
        reactor,
        live_keys,
        forgejo,
        upstream_tokens,
        bearer,
        sessions,
        events=oauth_events,
        documents=documents,
        memberships=policies.set_orgs,
        read_only_forgejo=read_only_forgejo,
    )
    health = Health(
        lambda: maybe_await(store.check()),
        reactor,
        backend=store.dialect.name,
        draining=draining,
    )
    account = AccountRoutes(authorization.account, authorization.cookies.secure)
    routes = (
        health.app,
        OAuthRoutes(
            authorization,
            observer=oauth_events,
            limits=RateLimits(settings.rate_limits, reactor),
        ).app,
        account.app,
    )
    site = BrokerSite(
        build_root(routes, {b"mcp": mcp}),
        reactor=reactor,
        settings=settings.site,
        responses=responses,
    )

    # --- maintenance: one revoker, the idle reaper, the token refresher, the
    # purger of expired rows and idle registrations ----
    revoker = UserRevoker(
        sessions,
        store_revocation(store, reactor),
        forget=(bearer.forget_user, upstream_tokens.forget),
    )
    reaper = IdleReaper(sessions, reactor, settings.maintenance)
    reaper.setName("idle-reaper")  # type: ignore[no-untyped-call]
    refresher = TokenRefresher(
        StoreRefreshableTokens(store, upstream_tokens),
        upstream_tokens,
        forgejo,
        sessions,
        revoker,
        reactor,
        settings.maintenance,
        memberships=policies.set_orgs,
        grants=grants,
        read_only_forgejo=read_only_forgejo,
    )
    refresher.setName("token-refresher")  # type: ignore[no-untyped-call]
    purger = ExpiredPurger(
        store, reactor, PURGE_INTERVAL, settings.maintenance.client_retention
    )
    purger.setName("purger")  # type: ignore[no-untyped-call]

    # --- other nodes on the same store (PostgreSQL's notifications) --------
    presence = NodePresence(
        store, reactor, settings.mcp.node_id, socket.gethostname(), os.getpid()
    )
    presence.setName("node-presence")  # type: ignore[no-untyped-call]
    cluster = ClusterSync(bearer, upstream_tokens, sessions)
    listener = store.listener(reactor, cluster.event, cluster.reconnected)

    # --- the admin socket: each command's module is imported at its first use
    def issue_token() -> Handler:
        from fjmcp.admin.tokens import AdminTokenIssuer

        return AdminTokenIssuer(store, upstream_tokens, reactor, settings.admin).handle

    def revoke_user() -> Handler:
        from fjmcp.admin.revoke import revoke_user_handler

        return revoke_user_handler(revoker)

    def purge_expired() -> Handler:
        from fjmcp.admin.purge import purge_handler

        return purge_handler(purger)

    def revoke_client() -> Handler:
        from fjmcp.admin.revoke import revoke_client_handler

        return revoke_client_handler(
            store,
            bearer.forget_tokens,
            sessions,
            lambda client_id: {
                o.user for o in sessions.sessions() if o.client_id == client_id
            },
        )

    def users() -> Handler:
        from fjmcp.admin.inventory import users_handler

        return users_handler(store, sessions, reactor)

    def clients() -> Handler:
        from fjmcp.admin.inventory import clients_handler

        return clients_handler(store, reactor)

    def live_sessions() -> Handler:
        from fjmcp.admin.inventory import sessions_handler

        return sessions_handler(sessions)

    def rotate_key() -> Handler:
        from fjmcp.admin.rotation import rotate_key_handler
        from fjmcp.oauth.rotation import KeyRotation

        return rotate_key_handler(KeyRotation(store, live_keys))

    admin = AdminHandlers(
        {
            "status": status,
            "issue-token": made_at_first_call(issue_token),
            "revoke-user": made_at_first_call(revoke_user),
            "purge-expired": made_at_first_call(purge_expired),
            "revoke-client": made_at_first_call(revoke_client),
            "users": made_at_first_call(users),
            "clients": made_at_first_call(clients),
            "sessions": made_at_first_call(live_sessions),
            "rotate-key": made_at_first_call(rotate_key),
        }
    )
    admin_socket = AdminServerService(reactor, settings.admin.socket_path, admin)

    services: list[IService] = [
        # The Forgejo clients' pools close after the timers that use them stop
        # (services stop in reverse order).
        CloseOnStop(forgejo.close),
        *(() if read_only_forgejo is None else (CloseOnStop(read_only_forgejo.close),)),
        reaper,
        refresher,
        purger,
        admin_socket,
        presence,
        *(() if listener is None else (listener,)),
    ]

    if audit_file is not None:
        services.append(audit_file)

    # --- GET /metrics on its own listener -------------------------------------
    if registry is not None:
        from fjmcp.buildinfo import build_info
        from fjmcp.metrics.collectors import BrokerState
        from fjmcp.metrics.service import MetricsService, metrics_site

        registry.register(BrokerState(sessions, refresher, store, build_info()))
        services.append(
            MetricsService(
                reactor, settings.metrics.listen, metrics_site(registry, reactor)
            )
        )
    return Broker(
        site=site,
        services=tuple(services),
        drains=(sessions.drain,),
        spawners=(supervisor,),
        admin=admin,
        upstream_tokens=upstream_tokens,
        bearer=bearer,
        forgejo=forgejo,
        authorization=authorization,
        supervisor=supervisor,
        sessions=sessions,
        spawn_gate=spawn_gate,
        revoker=revoker,
        reaper=reaper,
        refresher=refresher,
        presence=presence,
        purger=purger,
        keys=live_keys,
        metrics=registry,
    )
