# -*- test-case-name: tests.admin.test_commands -*-
"""
``fjmcp admin <command>``: the operator's commands, and how to add one.

Each topic lives in its own module, ``fjmcp/admin/<topic>.py`` (e.g.
``tokens.py`` for ``issue-token``, ``keys.py`` for ``gen-key``,
``users.py`` for ``revoke-user``), and declares its commands in a
module-level ``COMMANDS`` sequence; this module finds every such module in
the package by itself, so adding a topic needs no edit here::

    # fjmcp/admin/users.py
    from fjmcp.admin.commands import AdminCommand, AdminContext

    def _arguments(parser):
        parser.add_argument("login")

    async def _revoke_user(ctx: AdminContext, args) -> int:
        result = await ctx.write(
            "revoke-user", {"user": args.login},
            offline=lambda store: revoke_user_offline(store, args.login),
        )
        ctx.emit(result)
        return 0

    COMMANDS = [AdminCommand("revoke-user", "End a user's sessions and tokens.",
                             _revoke_user, _arguments)]

A command's ``run(ctx, args)`` returns an exit status (or an awaitable of
one; it then runs under a reactor, so it may open the store). Commands that
change state call `AdminContext.write`: through the admin socket when the
daemon runs (it changes its memory and its store together), otherwise
directly on the store (which refuses while another process holds its lock).
The daemon side of such a command is built where the daemon's objects are,
in the composition root (`fjmcp.wiring`), and handed to `AdminHandlers`.

Output: tables or lines for people, ``--json`` for scripts (`AdminContext.emit`).
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import json
import pkgutil
import sys
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import IO, Any, Final

from attrs import define, field, frozen

from fjmcp.admin.client import AdminClient, AdminError, DaemonNotRunningError
from fjmcp.config import Config, ConfigError, load_config
from fjmcp.store.target import StoreTarget

__all__ = [
    "AdminCommand",
    "AdminContext",
    "COMMANDS",
    "all_commands",
    "format_table",
    "read_through_daemon",
    "main",
]

#: Modules of the package that are infrastructure, not topics.
_NOT_TOPICS: Final = frozenset({"server", "client", "commands", "settings"})

RunResult = int | Awaitable[int]


def _no_arguments(parser: argparse.ArgumentParser) -> None:
    """A command without arguments of its own."""


@frozen
class AdminCommand:
    """One ``fjmcp admin`` subcommand."""

    name: str
    help: str
    run: Callable[[AdminContext, argparse.Namespace], RunResult]
    arguments: Callable[[argparse.ArgumentParser], None] = _no_arguments


def open_store_on_first_use(reactor: Any, target: StoreTarget | str) -> Any:
    """
    ``fjmcp.store.store.open_store_at``, imported when a command first needs
    the store (adbapi and its thread pool stay unloaded otherwise).
    """
    from fjmcp.store.store import open_store_at

    return open_store_at(reactor, target)


@define
class AdminContext:
    """What a command may use: the config, the daemon, the store, the output."""

    config: Config | None
    """None when only ``--socket`` was given: daemon commands only."""
    client: AdminClient
    out: IO[str] = field(factory=lambda: sys.stdout)
    json_output: bool = False
    reactor: Any = None
    _store_opener: Callable[[Any, StoreTarget], Any] = field(
        default=open_store_on_first_use, kw_only=True
    )
    _store: Any = field(default=None, init=False)

    def call(self, cmd: str, args: Mapping[str, Any] | None = None) -> Any:
        """Run a command in the daemon; raises `DaemonNotRunningError` if none runs."""
        return self.client.call(cmd, args)

    async def store(self) -> Any:
        """
        The store, opened on first use (takes its lock: fails while the daemon
        runs); closed when the command ends.
        """
        if self._store is None:
            from fjmcp.awaitables import maybe_await

            if self.reactor is None:
                raise RuntimeError("store access needs an async command")
            if self.config is None:
                raise AdminError(
                    "the daemon is not running and no --config names a store"
                )
            self._store = await maybe_await(
                self._store_opener(self.reactor, self.config.store_target())
            )
        return self._store

    async def write(
        self,
        cmd: str,
        args: Mapping[str, Any],
        *,
        offline: Callable[[Any], Awaitable[Any]],
    ) -> Any:
        """
        Change state: through the daemon when it runs, else on the store.

        ``offline(store)`` must do what the daemon's handler does to the store.
        """
        try:
            return self.call(cmd, args)
        except DaemonNotRunningError:
            return await offline(await self.store())

    async def close(self) -> None:
        """Close the store if a command opened it."""
        store, self._store = self._store, None
        if store is not None:
            from fjmcp.awaitables import maybe_await

            await maybe_await(store.close())

    def emit(self, result: Any, text: Callable[[Any], str] | None = None) -> None:
        """Print a result: JSON with ``--json``, else ``text(result)`` or lines."""
        if self.json_output:
            print(json.dumps(result, indent=2, sort_keys=True), file=self.out)
        elif text is not None:
            print(text(result), file=self.out)
        elif isinstance(result, Mapping):
            width = max((len(str(k)) for k in result), default=0)
            for key, value in result.items():
                print(f"{str(key).ljust(width)}  {value}", file=self.out)
        else:
            print(result, file=self.out)


def format_table(
    rows: Sequence[Mapping[str, Any]], columns: Sequence[tuple[str, str]]
) -> str:
    """
    ``rows`` as a plain text table: ``columns`` are ``(key, heading)``;
    ``None`` shows as ``-``, times (keys ending ``_at``) as UTC dates.
    """
    if not rows:
        return "(none)"

    def cell(key: str, value: Any) -> str:
        if value is None:
            return "-"
        if key.endswith("_at") and isinstance(value, int | float):
            return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(value))
        return str(value)

    cells = [[cell(k, row.get(k)) for k, _ in columns] for row in rows]
    widths = [
        max(len(heading), *(len(r[i]) for r in cells))
        for i, (_, heading) in enumerate(columns)
    ]
    lines = ["  ".join(h.ljust(w) for (_, h), w in zip(columns, widths, strict=True))]
    lines.extend(
        "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
        for r in cells
    )
    return "\n".join(line.rstrip() for line in lines)


async def read_through_daemon(
    ctx: AdminContext,
    cmd: str,
    *,
    offline: Callable[[Any], Awaitable[Any]],
) -> Any:
    """
    Read-only commands: ask the daemon when it runs (it adds what only it
    knows, such as live sessions), else read the store.
    """
    try:
        return ctx.call(cmd, {})
    except DaemonNotRunningError:
        return await offline(await ctx.store())


# --- status -----------------------------------------------------------------------


def _status_text(result: Mapping[str, Any]) -> str:
    return "\n".join(
        [
            f"fjmcp {result.get('version')} (revision "
            f"{result.get('git_revision')}, built {result.get('build_date')})",
            f"pid            {result.get('pid')}",
            f"uptime         {result.get('uptime')}s",
            f"live children  {result.get('live_children')}",
            f"listening      {result.get('listening')}",
        ]
    )


def _status(ctx: AdminContext, args: argparse.Namespace) -> int:
    try:
        result = ctx.call("status")
    except DaemonNotRunningError as e:
        print(f"fjmcp is not running: {e}", file=sys.stderr)
        return 1
    ctx.emit(result, _status_text)
    return 0


COMMANDS: Sequence[AdminCommand] = [
    AdminCommand(
        "status", "The running daemon's version, uptime and children.", _status
    )
]


def all_commands() -> dict[str, AdminCommand]:
    """Every admin command, from this module and each topic module."""
    import fjmcp.admin as package

    found: dict[str, AdminCommand] = {c.name: c for c in COMMANDS}
    for info in pkgutil.iter_modules(package.__path__):
        if info.name in _NOT_TOPICS or info.name.startswith("_"):
            continue
        module = importlib.import_module(f"fjmcp.admin.{info.name}")
        for command in getattr(module, "COMMANDS", ()):
            if command.name in found:
                raise RuntimeError(f"admin command {command.name!r} defined twice")
            found[command.name] = command
    return found


def _global_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config", "-c", help="TOML configuration file [env FJMCP_CONFIG]."
    )
    parser.add_argument(
        "--socket", help="Admin socket (default: the config's admin_socket)."
    )
    parser.add_argument("--json", action="store_true", help="Machine-readable output.")


def _parser(commands: Mapping[str, AdminCommand]) -> argparse.ArgumentParser:
    """
    The options ``--config``, ``--socket`` and ``--json`` are accepted
    before the command and after it (``fjmcp admin issue-token --config
    FILE ...``, the form the documentation and messages use): the
    command's copies default to "absent", so they never hide the outer ones.
    """
    parser = argparse.ArgumentParser(
        prog="fjmcp admin", description="Operate a broker (running or not)."
    )
    _global_options(parser)
    shared = argparse.ArgumentParser(add_help=False, argument_default=argparse.SUPPRESS)
    _global_options(shared)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in sorted(commands):
        command = commands[name]
        command.arguments(
            sub.add_parser(
                name, help=command.help, description=command.help, parents=[shared]
            )
        )
    return parser


def main(argv: Sequence[str], *, out: IO[str] | None = None) -> int:
    """Run ``fjmcp admin`` with these arguments; returns the exit status."""
    import os

    commands = all_commands()
    args = _parser(commands).parse_args(list(argv))
    path = args.config or os.environ.get("FJMCP_CONFIG")
    config: Config | None
    try:
        config = load_config(path, check_paths=False)
    except ConfigError as e:
        if not args.socket:
            print(e.render(), file=sys.stderr)
            return 2
        config = None  # the socket alone is enough for daemon commands
    socket_path = args.socket or config.admin_socket_path  # type: ignore[union-attr]
    ctx = AdminContext(
        config=config,
        client=AdminClient(socket_path),
        out=out or sys.stdout,
        json_output=args.json,
    )
    command = commands[args.command]
    try:
        result = command.run(ctx, args)
        if inspect.isawaitable(result):
            return _run_async(ctx, result)
        return result
    except AdminError as e:
        print(f"fjmcp admin {args.command}: {e}", file=sys.stderr)
        return 1


def _run_async(ctx: AdminContext, pending: Awaitable[int]) -> int:
    """Run an async command under the reactor; close what it opened."""
    from twisted.internet import reactor
    from twisted.internet.defer import Deferred

    status: list[int] = [1]
    ctx.reactor = reactor

    async def _go() -> None:
        try:
            status[0] = await pending
        except AdminError as e:
            print(f"fjmcp admin: {e}", file=sys.stderr)
        finally:
            await ctx.close()

    def _done(_: object) -> None:
        reactor.stop()

    def _start() -> None:
        Deferred.fromCoroutine(_go()).addErrback(_report).addBoth(_done)

    def _report(failure: Any) -> None:
        print(f"fjmcp admin: {failure.getErrorMessage()}", file=sys.stderr)

    reactor.callWhenRunning(_start)
    reactor.run()
    return status[0]
