# -*- test-case-name: tests.admin.test_rotation -*-
"""
``fjmcp admin rotate-key``: after ``gen-key`` put a new key first in the key
file, make it the one that seals and re-seal every row with it.

Through the admin socket the daemon reads the key file again and re-seals
online (`fjmcp.oauth.rotation.KeyRotation`); with no daemon the command
does the same on the store. The answer lists the rows per key and the
older keys no row uses any more, which may then be removed from the file.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from fjmcp.admin.client import AdminError
from fjmcp.admin.commands import AdminCommand, AdminContext
from fjmcp.admin.server import AdminCommandError, Handler
from fjmcp.oauth.keys import KeyFileError, LiveKeyRing, load_keyring
from fjmcp.oauth.rotation import KeyRotation, KeyRotationError
from fjmcp.store.runner import TxnRunner

__all__ = ["COMMANDS", "rotate_key_handler", "rotate_key_offline"]


def rotate_key_handler(rotation: KeyRotation) -> Handler:
    """The daemon's ``rotate-key``."""

    async def handle(args: Mapping[str, Any]) -> dict[str, Any]:
        try:
            result = await rotation.rotate()
        except (KeyFileError, KeyRotationError) as e:
            raise AdminCommandError(str(e)) from None
        return {**result.as_json(), "daemon": True}

    return handle


async def rotate_key_offline(store: TxnRunner, path: str) -> dict[str, Any]:
    """``rotate-key`` on the store while no daemon runs."""
    try:
        keys = LiveKeyRing(load_keyring(path), path=Path(path))
        result = await KeyRotation(store, keys).rotate()
    except (KeyFileError, KeyRotationError) as e:
        raise AdminError(str(e)) from None
    return {**result.as_json(), "daemon": False}


def _text(result: Mapping[str, Any]) -> str:
    usage = result.get("rows_by_key") or {}
    lines = [
        f"active key {result.get('active_key')}: {result.get('resealed')} row(s) "
        "re-sealed",
        *(f"  {kid}: {count} row(s)" for kid, count in sorted(usage.items())),
    ]
    unused = result.get("unused_keys") or []
    if unused:
        lines.append(
            "no row uses " + ", ".join(unused) + " any more: remove them from the "
            "key file once every node sharing it has run rotate-key"
        )
    return "\n".join(lines)


async def _rotate_key(ctx: AdminContext, args: argparse.Namespace) -> int:
    config = ctx.config

    async def offline(store: Any) -> dict[str, Any]:
        if config is None:
            raise AdminError("the daemon is not running and no --config names a store")
        return await rotate_key_offline(store, str(config.token_keys_path))

    result = await ctx.write("rotate-key", {}, offline=offline)
    ctx.emit(result, _text)
    return 0


COMMANDS = [
    AdminCommand(
        "rotate-key",
        "Read the key file again and re-seal every row with its first key.",
        _rotate_key,
    )
]
