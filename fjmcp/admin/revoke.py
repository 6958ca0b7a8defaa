# -*- test-case-name: tests.admin.test_revoke -*-
"""
``fjmcp admin revoke-user LOGIN``: cut a user off now; ``fjmcp admin
revoke-client ID``: cut a client off.

An operator uses it when an account is compromised or a person leaves: every
broker token of the user (every client, access and refresh) is revoked,
their stored Forgejo token is deleted, and every session of theirs ends, its
child stopped. The user can come back only by logging in through Forgejo
again (block them there to keep them out).

When the daemon runs, the command goes through its admin socket and the
daemon does everything at once (`revoke_user_handler`: store, bearer cache,
token memory, sessions; see `fjmcp.maintenance.revocation`). When it does
not, the command changes the store directly (`revoke_user_offline`); there
are no sessions or caches then, and a daemon started later reads the tokens
as revoked on its first cache miss.

``revoke-client`` forgets a client and everything issued to it (tokens,
codes, logins in progress, consents), clears those tokens from the bearer
cache and ends every session started through it. A dynamically registered
client must register again (MCP clients do on their next connect, and their
users consent again); use it when a client's secret or a user's device
leaked.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping
from typing import Any, Final

from fjmcp.admin.client import AdminError
from fjmcp.admin.commands import AdminCommand, AdminContext
from fjmcp.admin.server import AdminCommandError, Handler
from fjmcp.interfaces import ISessionControl
from fjmcp.maintenance.refresher import IUserRevocation
from fjmcp.maintenance.revocation import revoke_user_txn
from fjmcp.store.clients import ADMIN_CLIENT_ID
from fjmcp.store.inventory import revoke_client_txn
from fjmcp.store.runner import TxnRunner

__all__ = [
    "COMMANDS",
    "OPERATOR_REASON",
    "revoke_client_handler",
    "revoke_client_offline",
    "revoke_user_handler",
    "revoke_user_offline",
]

#: Stored with the revoked tokens and logged with the ended sessions.
OPERATOR_REASON: Final = "revoked-by-operator"
#: Longer than any Forgejo login (Forgejo allows 40 characters).
_MAX_LOGIN: Final = 255


def _login_arg(args: Mapping[str, Any]) -> str:
    user = args.get("user")
    if not isinstance(user, str) or not user.strip() or len(user) > _MAX_LOGIN:
        raise AdminCommandError('revoke-user needs {"user": LOGIN}')
    return user


def revoke_user_handler(revoker: IUserRevocation) -> Handler:
    """
    The daemon's ``revoke-user`` command: revoke in the store, clear the
    caches, end every session of the user (children stopped). The
    composition root (`fjmcp.wiring`) gives it to `AdminHandlers` under
    ``revoke-user``.
    """

    async def handle(args: Mapping[str, Any]) -> dict[str, object]:
        result = await revoker.revoke_user(_login_arg(args), OPERATOR_REASON)
        return {**result.as_json(), "daemon": True}

    return handle


async def revoke_user_offline(
    store: TxnRunner, login: str, now: float
) -> dict[str, object]:
    """``revoke-user`` on the store while no daemon runs (same result shape)."""
    changed = await store.run(revoke_user_txn, login, now, OPERATOR_REASON)
    return {
        "user": login,
        "known": changed.known,
        "broker_tokens_revoked": len(changed.token_hashes),
        "forgejo_token_deleted": changed.upstream_deleted,
        "store_ok": True,
        "daemon": False,
    }


def _text(result: Mapping[str, Any]) -> str:
    user = result.get("user")
    if not result.get("known"):
        return f"fjmcp knows no user {user!r}; nothing was revoked"
    where = (
        "the running daemon ended their sessions"
        if result.get("daemon")
        else "the daemon is not running, so no session was live"
    )
    deleted = "deleted" if result.get("forgejo_token_deleted") else "none stored"
    lines = [
        f"revoked {user}: {result.get('broker_tokens_revoked')} broker token(s), "
        f"Forgejo token {deleted}; {where}",
    ]
    if not result.get("store_ok", True):
        lines.append("WARNING: the store could not be changed; see the daemon's log")
    return "\n".join(lines)


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("login", help="The user's Forgejo login.")


async def _revoke_user(ctx: AdminContext, args: argparse.Namespace) -> int:
    login: str = args.login
    result = await ctx.write(
        "revoke-user",
        {"user": login},
        offline=lambda store: revoke_user_offline(store, login, ctx.reactor.seconds()),
    )
    ctx.emit(result, _text)
    if not result.get("store_ok", True):
        return 1
    return 0 if result.get("known") else 1


COMMANDS = [
    AdminCommand(
        "revoke-user",
        "Revoke every token of a user and end all their sessions.",
        _revoke_user,
        _arguments,
    )
]


# --- revoke-client ------------------------------------------------------------------

#: Client ids are URLs for metadata-document clients.
_MAX_CLIENT_ID: Final = 2048


def _client_arg(args: Mapping[str, Any]) -> str:
    client_id = args.get("client_id")
    if (
        not isinstance(client_id, str)
        or not client_id.strip()
        or len(client_id) > _MAX_CLIENT_ID
    ):
        raise AdminCommandError('revoke-client needs {"client_id": ID}')
    if client_id == ADMIN_CLIENT_ID:
        raise AdminCommandError(
            "admin-cli is the broker's own client; revoke its users instead"
        )
    return client_id


async def revoke_client_offline(store: TxnRunner, client_id: str) -> dict[str, object]:
    """``revoke-client`` on the store (no daemon: no session is live)."""
    changed = await store.run(revoke_client_txn, client_id)
    return {
        "client_id": client_id,
        "known": changed.known,
        "broker_tokens_revoked": len(changed.token_hashes),
        "users": list(changed.users),
        "daemon": False,
    }


def revoke_client_handler(
    store: TxnRunner,
    forget_tokens: Callable[[tuple[str, ...]], object],
    sessions: ISessionControl,
    live_users_of: Callable[[str], set[str]],
) -> Handler:
    """
    The daemon's ``revoke-client``: the store first, then the bearer cache,
    then every session through the client (children stopped).

    :param live_users_of: the users with a live session through a client.
    """

    async def handle(args: Mapping[str, Any]) -> dict[str, object]:
        client_id = _client_arg(args)
        changed = await store.run(revoke_client_txn, client_id)
        forget_tokens(changed.token_hashes)
        users = sorted(live_users_of(client_id) | set(changed.users))
        for user in users:
            await sessions.end_user_client(user, client_id, OPERATOR_REASON)
        return {
            "client_id": client_id,
            "known": changed.known,
            "broker_tokens_revoked": len(changed.token_hashes),
            "users": users,
            "daemon": True,
        }

    return handle


def _client_text(result: Mapping[str, Any]) -> str:
    client_id = result.get("client_id")
    if not result.get("known"):
        return f"fjmcp knows no client {client_id!r}; nothing was revoked"
    users = ", ".join(result.get("users") or ()) or "no user"
    where = (
        "their sessions through it ended"
        if result.get("daemon")
        else "the daemon is not running, so no session was live"
    )
    return (
        f"revoked client {client_id}: {result.get('broker_tokens_revoked')} broker "
        f"token(s) of {users}; {where}"
    )


def _client_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("client_id", help="The client id (see `fjmcp admin clients`).")


async def _revoke_client(ctx: AdminContext, args: argparse.Namespace) -> int:
    client_id: str = args.client_id
    try:
        _client_arg({"client_id": client_id})
    except AdminCommandError as e:
        raise AdminError(str(e)) from None
    result = await ctx.write(
        "revoke-client",
        {"client_id": client_id},
        offline=lambda store: revoke_client_offline(store, client_id),
    )
    ctx.emit(result, _client_text)
    return 0 if result.get("known") else 1


COMMANDS.append(
    AdminCommand(
        "revoke-client",
        "Forget a client: revoke its tokens and end its sessions.",
        _revoke_client,
        _client_arguments,
    )
)
