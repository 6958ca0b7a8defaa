# -*- test-case-name: tests.admin.test_inventory -*-
"""
``fjmcp admin users``, ``clients`` and ``sessions``: what the broker holds.

``users`` lists every login with its live broker tokens, the clients they
came through, its stored Forgejo grants and (from the daemon) its live
sessions; ``clients`` every registered client with its users and tokens;
``sessions`` the live sessions and identities of the running daemon (short
ids only: a listed id is not enough to use a session). The first two ask
the daemon when it runs and read the store otherwise; ``sessions`` needs
the daemon.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from typing import Any, Final

from attrs import asdict
from twisted.internet.interfaces import IReactorTime

from fjmcp.admin.client import DaemonNotRunningError
from fjmcp.admin.commands import (
    AdminCommand,
    AdminContext,
    format_table,
    read_through_daemon,
)
from fjmcp.admin.server import Handler
from fjmcp.sessions.registry import SessionRegistry
from fjmcp.store.inventory import list_clients_txn, list_users_txn
from fjmcp.store.runner import TxnRunner

__all__ = [
    "COMMANDS",
    "clients_handler",
    "list_clients",
    "list_users",
    "sessions_handler",
    "users_handler",
]

_USER_COLUMNS: Final = (
    ("login", "USER"),
    ("sessions", "SESSIONS"),
    ("live_tokens", "TOKENS"),
    ("clients", "CLIENTS"),
    ("forgejo_grants", "FORGEJO"),
    ("last_login_at", "LAST LOGIN (UTC)"),
)
_CLIENT_COLUMNS: Final = (
    ("client_id", "CLIENT"),
    ("kind", "KIND"),
    ("auth_method", "AUTH"),
    ("client_name", "NAME"),
    ("users", "USERS"),
    ("live_tokens", "TOKENS"),
    ("last_used_at", "LAST USED (UTC)"),
)
_SESSION_COLUMNS: Final = (
    ("session", "SESSION"),
    ("user", "USER"),
    ("client_id", "CLIENT"),
    ("children", "CHILDREN"),
    ("generation", "GEN"),
    ("created_at", "STARTED (UTC)"),
    ("last_activity_at", "LAST ACTIVITY (UTC)"),
)


async def list_users(
    store: TxnRunner, now: float, sessions: Mapping[str, int] | None = None
) -> list[dict[str, Any]]:
    """Every user; ``sessions``: live ones per login (None: no daemon)."""
    rows = await store.run(list_users_txn, now)
    return [
        {
            **asdict(r),
            "sessions": None if sessions is None else sessions.get(r.login, 0),
        }
        for r in rows
    ]


async def list_clients(store: TxnRunner, now: float) -> list[dict[str, Any]]:
    """Every registered client."""
    return [asdict(r) for r in await store.run(list_clients_txn, now)]


def _live_per_user(registry: SessionRegistry) -> dict[str, int]:
    counts: dict[str, int] = {}
    for owner in registry.sessions():
        counts[owner.user] = counts.get(owner.user, 0) + 1
    return counts


def users_handler(
    store: TxnRunner, registry: SessionRegistry, clock: IReactorTime
) -> Handler:
    """The daemon's ``users``: the store's users with their live sessions."""

    async def handle(args: Mapping[str, Any]) -> list[dict[str, Any]]:
        return await list_users(store, clock.seconds(), _live_per_user(registry))

    return handle


def clients_handler(store: TxnRunner, clock: IReactorTime) -> Handler:
    """The daemon's ``clients``."""

    async def handle(args: Mapping[str, Any]) -> list[dict[str, Any]]:
        return await list_clients(store, clock.seconds())

    return handle


def sessions_handler(registry: SessionRegistry) -> Handler:
    """The daemon's ``sessions``: every live owner of children."""

    def handle(args: Mapping[str, Any]) -> list[dict[str, Any]]:
        return [
            {
                "session": owner.short_id,
                "kind": "session" if isinstance(owner.key, str) else "identity",
                "user": owner.user,
                "client_id": owner.client_id,
                "children": len(owner.children),
                "generation": owner.generation,
                "created_at": owner.created_at,
                "last_activity_at": owner.last_activity,
            }
            for owner in sorted(registry.sessions(), key=lambda o: o.created_at)
        ]

    return handle


async def _users(ctx: AdminContext, args: argparse.Namespace) -> int:
    result = await read_through_daemon(
        ctx, "users", offline=lambda store: list_users(store, ctx.reactor.seconds())
    )
    ctx.emit(result, lambda rows: format_table(rows, _USER_COLUMNS))
    return 0


async def _clients(ctx: AdminContext, args: argparse.Namespace) -> int:
    result = await read_through_daemon(
        ctx, "clients", offline=lambda store: list_clients(store, ctx.reactor.seconds())
    )
    ctx.emit(result, lambda rows: format_table(rows, _CLIENT_COLUMNS))
    return 0


def _sessions(ctx: AdminContext, args: argparse.Namespace) -> int:
    try:
        result = ctx.call("sessions")
    except DaemonNotRunningError:
        result = []
        if not ctx.json_output:
            print("fjmcp is not running: no live sessions", file=ctx.out)
            return 0
    ctx.emit(result, lambda rows: format_table(rows, _SESSION_COLUMNS))
    return 0


COMMANDS = [
    AdminCommand(
        "users",
        "Users with their live sessions, broker tokens and Forgejo grants.",
        _users,
    ),
    AdminCommand(
        "clients", "Registered OAuth clients with their users and tokens.", _clients
    ),
    AdminCommand("sessions", "Live sessions of the running daemon.", _sessions),
]
