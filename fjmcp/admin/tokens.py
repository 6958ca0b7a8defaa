# -*- test-case-name: tests.admin.test_tokens -*-
"""
``fjmcp admin issue-token`` and ``fjmcp admin gen-key``.

``issue-token`` mints broker access tokens for scripts, CI and the
benchmark, as the built-in client ``admin-cli``: it stores the given
Forgejo token (sealed) as the user's current token and prints N broker
tokens, one per line. The Forgejo token is read from a file or stdin,
never from argv (argv is visible to every user of the machine). When the
daemon runs, the command goes through its admin socket (the daemon's
caches then know the new Forgejo token at once); otherwise it works on the
store directly, which needs the key file, so it runs as the service user.

``gen-key`` creates the token key file, or puts a new active key first in
it (mode 0600). The daemon reads the file at start.
"""

from __future__ import annotations

import argparse
import math
import re
import sys
from collections.abc import Mapping
from typing import IO, Any, Final

from attrs import define
from twisted.internet.interfaces import IReactorTime

from fjmcp.admin.client import AdminError
from fjmcp.admin.commands import AdminCommand, AdminContext
from fjmcp.admin.server import AdminCommandError
from fjmcp.admin.settings import AdminSettings
from fjmcp.config import Config
from fjmcp.oauth.challenge import MCP_SCOPE
from fjmcp.oauth.keys import KeyFileError, load_keyring, prepend_new_key
from fjmcp.oauth.tokens import hash_secret, new_family_id, new_secret
from fjmcp.oauth.upstream_tokens import UpstreamTokens
from fjmcp.settings import admin_settings
from fjmcp.store.clients import ADMIN_CLIENT_ID
from fjmcp.store.grants import issue_admin_tokens_txn, user_id_txn
from fjmcp.store.runner import TxnRunner

__all__ = ["COMMANDS", "AdminTokenIssuer", "read_forgejo_token"]

MAX_COUNT: Final = 10_000
#: The longest lifetime an admin-issued token may ask for, in seconds (a year).
MAX_TTL: Final = 366 * 24 * 3600.0
MAX_FORGEJO_TOKEN: Final = 4096
#: Forgejo logins: letters, digits, ``-``, ``_``, ``.`` (at most 40 in Forgejo).
_LOGIN: Final = re.compile(r"[A-Za-z0-9_.-]{1,255}")


def read_forgejo_token(source: str, stdin: IO[str] | None = None) -> str:
    """
    The Forgejo token from a file, or from stdin for ``-``: one line,
    surrounding whitespace removed. Raises `AdminError` when it is empty,
    multi-line or too long.
    """
    if source == "-":
        text = (stdin or sys.stdin).read(MAX_FORGEJO_TOKEN + 2)
    else:
        try:
            with open(source, encoding="utf-8") as fh:
                text = fh.read(MAX_FORGEJO_TOKEN + 2)
        except OSError as e:
            raise AdminError(f"cannot read the Forgejo token file: {e.strerror}") from e
        except UnicodeDecodeError:
            raise AdminError("the Forgejo token file is not text") from None
    token = text.strip()
    if not token:
        raise AdminError("the Forgejo token is empty")
    if len(token) > MAX_FORGEJO_TOKEN or any(c.isspace() for c in token):
        raise AdminError("the Forgejo token must be one word on one line")
    return token


def _check(user: Any, forgejo_token: Any, ttl: Any, count: Any) -> None:
    if not isinstance(user, str) or not _LOGIN.fullmatch(user):
        raise AdminCommandError("user must be a Forgejo login")
    if (
        not isinstance(forgejo_token, str)
        or not forgejo_token
        or len(forgejo_token) > MAX_FORGEJO_TOKEN
        or any(c.isspace() for c in forgejo_token)
    ):
        raise AdminCommandError("forgejo_token must be one non-empty word")
    if (
        isinstance(ttl, bool)
        or not isinstance(ttl, int | float)
        or not math.isfinite(ttl)
        or not 0 < ttl <= MAX_TTL
    ):
        raise AdminCommandError(f"ttl must be between 0 and {MAX_TTL:g} seconds")
    if (
        isinstance(count, bool)
        or not isinstance(count, int)
        or not 0 < count <= MAX_COUNT
    ):
        raise AdminCommandError(f"count must be between 1 and {MAX_COUNT}")


@define
class AdminTokenIssuer:
    """
    Mints ``admin-cli`` access tokens; used by the daemon's ``issue-token``
    handler and, with the daemon down, by the command itself.
    """

    _store: TxnRunner
    _upstream: UpstreamTokens
    _clock: IReactorTime
    _settings: AdminSettings

    async def issue(
        self, user: str, forgejo_token: str, ttl: float, count: int
    ) -> list[str]:
        """Store the user's Forgejo token and mint ``count`` access tokens."""
        _check(user, forgejo_token, ttl, count)
        await self._upstream.replace(
            self._upstream.grant(user), forgejo_token, None, None
        )
        user_id = await self._store.run(user_id_txn, user)
        if user_id is None:  # pragma: no cover - replace just created it
            raise AdminCommandError(f"user {user!r} vanished")
        tokens = [new_secret() for _ in range(count)]
        now = self._clock.seconds()
        await self._store.run(
            issue_admin_tokens_txn,
            user_id,
            ADMIN_CLIENT_ID,
            tuple(hash_secret(t) for t in tokens),
            audience=self._settings.token_audience,
            scope=MCP_SCOPE,
            now=now,
            expires_at=now + ttl,
            family_ids=tuple(new_family_id() for _ in tokens),
        )
        return tokens

    async def handle(self, args: Mapping[str, Any]) -> dict[str, Any]:
        """The daemon's ``issue-token`` handler: ``{"tokens": [...]}``."""
        ttl = args.get("ttl")
        user: Any = args.get("user")
        forgejo_token: Any = args.get("forgejo_token")
        count: Any = args.get("count", 1)
        tokens = await self.issue(
            user, forgejo_token, self._settings.token_ttl if ttl is None else ttl, count
        )
        return {
            "tokens": tokens,
            "user": args.get("user"),
            "client_id": ADMIN_CLIENT_ID,
        }


def _issue_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--user", required=True, help="Forgejo login to mint for.")
    parser.add_argument(
        "--forgejo-token-file",
        required=True,
        metavar="PATH",
        help="File holding the user's Forgejo token, or - for stdin (never argv).",
    )
    parser.add_argument(
        "--ttl",
        type=float,
        default=None,
        help="Lifetime in seconds (access_token_ttl).",
    )
    parser.add_argument("--count", type=int, default=1, help="How many tokens.")


async def _offline_issue(
    ctx: AdminContext, config: Config, store: Any, payload: Mapping[str, Any]
) -> dict[str, Any]:
    try:
        keys = load_keyring(config.token_keys_path)
    except KeyFileError as e:
        raise AdminError(str(e)) from None
    issuer = AdminTokenIssuer(
        store,
        UpstreamTokens(store, keys, ctx.reactor),
        ctx.reactor,
        admin_settings(config),
    )
    try:
        return await issuer.handle(payload)
    except AdminCommandError as e:
        raise AdminError(str(e)) from None


async def _issue_token(ctx: AdminContext, args: argparse.Namespace) -> int:
    forgejo_token = read_forgejo_token(args.forgejo_token_file)
    payload: dict[str, Any] = {
        "user": args.user,
        "forgejo_token": forgejo_token,
        "count": args.count,
    }
    if args.ttl is not None:
        payload["ttl"] = args.ttl
    try:
        _check(args.user, forgejo_token, args.ttl or 1.0, args.count)
    except AdminCommandError as e:
        raise AdminError(str(e)) from None
    config = ctx.config

    async def offline(store: Any) -> dict[str, Any]:
        if config is None:
            raise AdminError("the daemon is not running and no --config names a store")
        return await _offline_issue(ctx, config, store, payload)

    result = await ctx.write("issue-token", payload, offline=offline)
    if ctx.json_output:
        ctx.emit(result)
    else:
        for token in result["tokens"]:
            print(token, file=ctx.out)
    return 0


def _gen_key_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--file", default=None, help="Key file (default: the config's token key file)."
    )


def _gen_key(ctx: AdminContext, args: argparse.Namespace) -> int:
    if args.file is None and ctx.config is None:
        raise AdminError("gen-key needs --config or --file")
    config = ctx.config
    path = args.file or str(config.token_keys_path)  # type: ignore[union-attr]
    try:
        kid = prepend_new_key(path)
    except (KeyFileError, OSError) as e:
        raise AdminError(str(e)) from None
    ctx.emit(
        {"key_id": kid, "file": path},
        lambda r: f"new active key {r['key_id']} in {r['file']}",
    )
    return 0


COMMANDS = [
    AdminCommand(
        "issue-token",
        "Mint broker access tokens for a user (client admin-cli).",
        _issue_token,
        _issue_arguments,
    ),
    AdminCommand(
        "gen-key",
        "Create the token key file, or prepend a new active key to it.",
        _gen_key,
        _gen_key_arguments,
    ),
]
