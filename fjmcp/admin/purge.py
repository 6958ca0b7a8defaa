# -*- test-case-name: tests.admin.test_purge -*-
"""
``fjmcp admin purge-expired``: delete expired codes, tokens and logins, and
dynamic registrations unused for ``client_retention`` without a live token,
now instead of at the purger's next tick.

Through the admin socket when the daemon runs (its `ExpiredPurger` does
it), otherwise directly on the store.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from typing import Any

from fjmcp.admin.commands import AdminCommand, AdminContext
from fjmcp.admin.server import Handler
from fjmcp.maintenance.purge import ExpiredPurger
from fjmcp.store.purge import purge_txn
from fjmcp.store.runner import TxnRunner

__all__ = ["COMMANDS", "purge_handler", "purge_offline"]


def purge_handler(purger: ExpiredPurger) -> Handler:
    """The daemon's ``purge-expired`` command."""

    async def handle(args: Mapping[str, Any]) -> dict[str, object]:
        counts = await purger.purge_once()
        return {**counts, "daemon": True}

    return handle


async def purge_offline(
    store: TxnRunner, now: float, client_retention: float
) -> dict[str, object]:
    """``purge-expired`` on the store while no daemon runs (same result shape)."""
    counts: dict[str, int] = await store.run(purge_txn, now, client_retention)
    return {**counts, "daemon": False}


def _text(result: Mapping[str, Any]) -> str:
    return (
        f"purged {result.get('clients', 0)} idle client(s), "
        f"{result.get('tokens', 0)} expired token(s), "
        f"{result.get('codes', 0)} code(s), {result.get('pending', 0)} "
        f"login(s) in progress, {result.get('refresh_answers', 0)} kept refresh "
        f"answer(s)"
    )


async def _purge(ctx: AdminContext, args: argparse.Namespace) -> int:
    retention = ctx.config.client_retention if ctx.config else 0.0
    result = await ctx.write(
        "purge-expired",
        {},
        offline=lambda store: purge_offline(store, ctx.reactor.seconds(), retention),
    )
    ctx.emit(result, _text)
    return 0


COMMANDS = [
    AdminCommand(
        "purge-expired",
        "Delete expired codes and tokens, and registrations unused for "
        "client_retention.",
        _purge,
    )
]
