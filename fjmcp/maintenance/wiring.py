# -*- test-case-name: tests.maintenance.test_wiring -*-
"""
How the lifecycle timers plug into the broker: one call from
`fjmcp.service.BrokerService._wire`, once the sessions, the token memory,
the bearer check and the Forgejo client exist.

It builds the one `UserRevoker` shared by the refresher, the user check and
``fjmcp admin revoke-user``, adds the idle reaper and the token refresher as
child services (started after the store opened, stopped before it closes;
their ``stopService`` waits for a tick or refresh in flight), registers
the daemon side of ``revoke-user`` on the admin socket, and makes every
Forgejo token stored (refresh, fresh login, ``issue-token``) reach the
sessions (`ISessionControl.token_rotated`), so running children never keep
an older token than the user's newest.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from attrs import frozen

from fjmcp.admin.revoke import revoke_user_handler
from fjmcp.interfaces import ISessionControl, UpstreamToken
from fjmcp.maintenance.reaper import IdleReaper, IIdleSessions
from fjmcp.maintenance.refresher import (
    IForgejoRefresh,
    IUpstreamTokenStore,
    StoreRefreshableTokens,
    TokenRefresher,
)
from fjmcp.maintenance.revocation import UserRevoker, store_revocation
from fjmcp.store.runner import TxnRunner

if TYPE_CHECKING:
    from fjmcp.service import Wiring

__all__ = ["Lifecycle", "LifecycleSessions", "wire_lifecycle"]


class LifecycleSessions(ISessionControl, IIdleSessions, Protocol):
    """The session registry as the timers see it."""


class _ForgettingTokens(IUpstreamTokenStore, Protocol):
    def forget(self, user: str) -> None:
        """Drop the memory copy of the user's token."""

    def add_listener(self, listener: Callable[[UpstreamToken], None]) -> None:
        """Call ``listener`` with every token stored from now on."""


class _ForgettingBearer(Protocol):
    def forget_user(self, user: str) -> int:
        """Drop every cached broker token of the user."""


@frozen
class Lifecycle:
    """What `wire_lifecycle` built, for status, metrics and tests."""

    reaper: IdleReaper
    refresher: TokenRefresher
    revoker: UserRevoker


def wire_lifecycle(
    wiring: Wiring,
    *,
    sessions: LifecycleSessions,
    upstream: _ForgettingTokens,
    bearer: _ForgettingBearer,
    forgejo: IForgejoRefresh,
    panic: Callable[[Any, str], None] | None = None,
) -> Lifecycle:
    """
    Add the idle reaper and the token refresher to ``wiring.services`` and
    the ``revoke-user`` admin command to ``wiring.admin``.

    :param sessions: the session registry.
    :param upstream: the users' Forgejo token memory
        (`fjmcp.oauth.upstream_tokens.UpstreamTokens`).
    :param bearer: the bearer check with its cache
        (`fjmcp.oauth.bearer.BearerAuthenticator`).
    :param forgejo: the Forgejo client.
    """
    config = wiring.config
    clock = wiring.reactor
    store: TxnRunner = wiring.store  # type: ignore[assignment]
    revoker = UserRevoker(
        sessions,
        store_revocation(store, clock),
        forget=(bearer.forget_user, upstream.forget),
    )
    reaper = IdleReaper(
        sessions,
        clock,
        interval=config.reaper_interval,
        idle_timeout=config.session_idle_timeout,
    )
    extra: dict[str, Any] = {} if panic is None else {"panic": panic}
    refresher = TokenRefresher(
        StoreRefreshableTokens(store, upstream),
        upstream,
        forgejo,
        sessions,
        revoker,
        clock,
        interval=config.refresh_interval,
        margin=config.refresh_margin,
        user_check_interval=config.user_check_interval,
        **extra,
    )
    # Every new Forgejo token reaches the sessions, not only the refresher's:
    # after a fresh login the older token a running child holds may expire
    # before the refresher, which looks at the newest token only, renews it.
    upstream.add_listener(sessions.token_rotated)
    reaper.setName("idle-reaper")  # type: ignore[no-untyped-call]
    refresher.setName("token-refresher")  # type: ignore[no-untyped-call]
    wiring.services.extend([reaper, refresher])
    wiring.admin.register("revoke-user", revoke_user_handler(revoker))
    return Lifecycle(reaper, refresher, revoker)
