# -*- test-case-name: tests.standin.test_command -*-
"""
``fjmcp standin-forgejo``: run the stand-in Forgejo on its own, on loopback.

For trying the broker by hand and for tests in other processes (the e2e SDK
clients, the browser test). It prints where it listens, then serves until
interrupted. A non-loopback ``--host`` is refused before anything starts.
"""

from __future__ import annotations

import argparse
import secrets
import sys
from typing import TYPE_CHECKING, Any

from fjmcp.listening import listen_failure

if TYPE_CHECKING:
    from fjmcp.standin.app import StandinClient, StandinConfig, StandinUser

__all__ = ["build_config", "main", "parser"]


def parser() -> argparse.ArgumentParser:
    """The command line of ``fjmcp standin-forgejo``."""
    p = argparse.ArgumentParser(
        prog="fjmcp standin-forgejo",
        description="Run a stand-in Forgejo (a fake, for tests and demos) on a "
        "loopback address.",
    )
    p.add_argument("--port", type=int, required=True, help="TCP port (0: any free).")
    p.add_argument(
        "--host",
        default="127.0.0.1",
        help="Loopback address to bind (default 127.0.0.1).",
    )
    p.add_argument(
        "--user",
        action="append",
        default=[],
        metavar="LOGIN:PASSWORD",
        help="A user who can log in (repeatable). Default: alice with a random "
        "password, printed at start.",
    )
    p.add_argument(
        "--client",
        action="append",
        default=[],
        metavar="ID:SECRET:REDIRECT_URI",
        help="A registered OAuth2 application (repeatable; repeat an ID to add "
        "redirect URIs; an empty SECRET makes a public client).",
    )
    p.add_argument(
        "--token-lifetime",
        type=int,
        default=3600,
        metavar="S",
        help="expires_in of access tokens, in seconds (default 3600).",
    )
    p.add_argument(
        "--invalidate-refresh-tokens",
        action="store_true",
        help="Forgejo's INVALIDATE_REFRESH_TOKENS: a refresh token works once.",
    )
    p.add_argument(
        "--auto-approve",
        metavar="USER",
        help="Log this user in at once, without the login form.",
    )
    p.add_argument("--version-string", default=None, help="What /api/v1/version says.")
    return p


def _users(specs: list[str]) -> tuple[list[StandinUser], list[str]]:
    """Parse ``LOGIN:PASSWORD`` specs; returns users and the problems found."""
    from fjmcp.standin.app import StandinUser

    users, problems = [], []
    for spec in specs:
        login, sep, password = spec.partition(":")
        if not sep or not login or not password:
            problems.append(
                f"--user {spec.split(':', 1)[0]!r}: expected LOGIN:PASSWORD"
            )
            continue
        users.append(StandinUser(login, password))
    return users, problems


def _clients(specs: list[str]) -> tuple[list[StandinClient], list[str]]:
    """Parse ``ID:SECRET:REDIRECT_URI`` specs, merging repeated ids."""
    from fjmcp.standin.app import StandinClient

    merged: dict[str, tuple[str | None, list[str]]] = {}
    problems = []
    for spec in specs:
        parts = spec.split(":", 2)
        if len(parts) != 3 or not parts[0] or not parts[2]:
            problems.append(f"--client {parts[0]!r}: expected ID:SECRET:REDIRECT_URI")
            continue
        client_id, secret, redirect_uri = parts
        known_secret, uris = merged.setdefault(client_id, (secret or None, []))
        if known_secret != (secret or None):
            problems.append(f"--client {client_id!r}: repeated with another secret")
            continue
        uris.append(redirect_uri)
    clients = [
        StandinClient(cid, secret, tuple(uris))
        for cid, (secret, uris) in merged.items()
    ]
    return clients, problems


def build_config(args: argparse.Namespace) -> tuple[StandinConfig, list[str]]:
    """The stand-in's configuration from parsed arguments, or the problems."""
    from fjmcp.standin.app import DEFAULT_VERSION, StandinConfig, StandinUser

    users, problems = _users(args.user)
    clients, client_problems = _clients(args.client)
    problems += client_problems
    if not args.user:
        users = [StandinUser("alice", secrets.token_urlsafe(12))]
    if args.token_lifetime < 0:
        problems.append("--token-lifetime must not be negative")
    if problems:
        return StandinConfig(users=(), clients=()), problems
    try:
        config = StandinConfig(
            users=tuple(users),
            clients=tuple(clients),
            token_lifetime=args.token_lifetime,
            invalidate_refresh_tokens=args.invalidate_refresh_tokens,
            auto_approve=args.auto_approve,
            version=args.version_string or DEFAULT_VERSION,
        )
    except ValueError as e:
        return StandinConfig(users=(), clients=()), [str(e)]
    return config, []


def main(argv: list[str]) -> int:
    """Run ``fjmcp standin-forgejo`` with ``argv`` (without the command name)."""
    from fjmcp.standin.app import loopback_bind_address

    args = parser().parse_args(argv)
    try:
        loopback_bind_address(args.host)
    except ValueError as e:
        print(f"fjmcp standin-forgejo: {e}", file=sys.stderr)
        return 2
    config, problems = build_config(args)
    if problems:
        for problem in problems:
            print(f"fjmcp standin-forgejo: {problem}", file=sys.stderr)
        return 2
    return _run(args.host, args.port, config, show_passwords=not args.user)


def _run(host: str, port: int, config: StandinConfig, *, show_passwords: bool) -> int:
    """Serve until interrupted; 1 if the port cannot be bound."""
    from twisted.internet import reactor as _reactor
    from twisted.internet.defer import Deferred

    from fjmcp.standin.app import start_standin

    reactor: Any = _reactor
    outcome = {"code": 0}

    async def start() -> None:
        try:
            standin, listening = await start_standin(
                reactor, config, host=host, port=port
            )
        except Exception as e:
            message = listen_failure("the stand-in Forgejo", e)
            print(f"fjmcp standin-forgejo: {message}", file=sys.stderr)
            outcome["code"] = 1
            reactor.stop()
            return
        out = sys.stdout
        out.write(
            f"stand-in Forgejo (a fake, for tests and demos) on {standin.base_url}\n"
        )
        for user in config.users:
            shown = user.password if show_passwords else "(as given)"
            out.write(f"  user {user.login} password {shown}\n")
        for client in config.clients:
            kind = "confidential" if client.confidential else "public"
            out.write(
                f"  client {client.client_id} ({kind}) -> "
                f"{', '.join(client.redirect_uris)}\n"
            )
        if not config.clients:
            out.write("  no OAuth2 application registered (use --client)\n")
        out.flush()

    reactor.callWhenRunning(lambda: Deferred.fromCoroutine(start()))
    reactor.run()
    return outcome["code"]
