# -*- test-case-name: tests.admin.test_server -*-
"""
The daemon side of the admin channel: a Unix socket speaking JSON lines.

``fjmcp admin ...`` reaches the running broker here, so that commands which
change live state (revoke a user, end sessions, reload keys) act on the
daemon's memory as well as its store. The socket is created with mode 0600
beside the store (or at ``admin_socket``): whoever can connect is the broker's
own user.

Protocol: the client writes one JSON object per line,
``{"cmd": "status", "args": {...}}``, and reads one JSON object per line
back: ``{"ok": true, "result": ...}`` or ``{"ok": false, "error": "..."}``.
Several requests may share a connection; answers come back in order.

The commands are given by name to `AdminHandlers` when the composition root
(`fjmcp.wiring`) builds it, and fixed from then on:

    AdminHandlers({"revoke-user": revoke_user})   # async def (args) -> result

A handler takes the request's ``args`` mapping and returns a JSON-ready
value (or an awaitable of one). `AdminCommandError` turns into ``ok: false`` with
its message; any other exception is logged and reported as an internal
error.
"""

from __future__ import annotations

import inspect
import json
import os
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final

from attrs import field, frozen
from twisted.application.service import Service
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IListeningPort, IReactorUNIX
from twisted.internet.protocol import Factory
from twisted.logger import Logger
from twisted.protocols.basic import LineOnlyReceiver

__all__ = [
    "AdminHandlers",
    "AdminCommandError",
    "AdminServerService",
    "Handler",
    "MAX_ADMIN_LINE",
    "made_at_first_call",
]

#: Longest request line accepted on the admin socket.
MAX_ADMIN_LINE: Final = 1024 * 1024

Handler = Callable[[Mapping[str, Any]], Any | Awaitable[Any]]


class AdminCommandError(Exception):
    """A handler declines a request; the message goes back to the client."""


def made_at_first_call(make: Callable[[], Handler]) -> Handler:
    """
    A handler that ``make`` builds when its command is first asked for.

    Operators use the admin channel rarely: building a command's handler
    then keeps its module (and the command-line code beside the handler)
    out of a broker that no one has asked anything yet.
    """
    made: list[Handler] = []

    def handle(args: Mapping[str, Any]) -> Any:
        if not made:
            made.append(make())
        return made[0](args)

    return handle


def _fixed(handlers: Mapping[str, Handler]) -> Mapping[str, Handler]:
    return MappingProxyType(dict(handlers))


@frozen
class AdminHandlers:
    """The admin commands the daemon answers, by name (a copy of those given)."""

    _handlers: Mapping[str, Handler] = field(converter=_fixed)

    def names(self) -> list[str]:
        """The registered command names, sorted."""
        return sorted(self._handlers)

    async def dispatch(self, request: Any) -> dict[str, Any]:
        """Run one request and build its response object."""
        if not isinstance(request, dict) or not isinstance(request.get("cmd"), str):
            return {"ok": False, "error": 'a request is {"cmd": NAME, "args": {...}}'}
        name = request["cmd"]
        args = request.get("args", {})
        if not isinstance(args, dict):
            return {"ok": False, "error": "args must be an object"}
        handler = self._handlers.get(name)
        if handler is None:
            return {
                "ok": False,
                "error": f"unknown command {name!r}; known: {', '.join(self.names())}",
            }
        try:
            result = handler(args)
            if inspect.isawaitable(result):
                result = await result
        except AdminCommandError as e:
            return {"ok": False, "error": str(e)}
        except Exception:
            _log.failure("admin command {cmd} failed", cmd=name)
            return {"ok": False, "error": f"internal error in {name!r}; see the log"}
        return {"ok": True, "result": result}


_log = Logger()


class AdminProtocol(LineOnlyReceiver):
    """One admin connection: a JSON request per line, answered in order."""

    delimiter = b"\n"
    MAX_LENGTH = MAX_ADMIN_LINE

    def __init__(self, handlers: AdminHandlers) -> None:
        self._handlers = handlers
        self._queue: Deferred[None] = Deferred()
        self._queue.callback(None)

    def lineReceived(self, line: bytes) -> None:
        """Queue the request behind earlier ones so answers keep their order."""
        line = line.rstrip(b"\r")
        if not line.strip():
            return
        self._queue.addCallback(lambda _: Deferred.fromCoroutine(self._answer(line)))

    async def _answer(self, line: bytes) -> None:
        try:
            request = json.loads(line)
        except ValueError:
            response: dict[str, Any] = {"ok": False, "error": "not a JSON object"}
        else:
            response = await self._handlers.dispatch(request)
        if self.transport is not None:
            self.transport.write(json.dumps(response).encode("utf-8") + b"\n")

    def lineLengthExceeded(self, line: bytes) -> None:
        """A request too long to be one: say so and hang up."""
        if self.transport is not None:
            self.transport.write(b'{"ok": false, "error": "request too long"}\n')
            self.transport.loseConnection()


class _AdminFactory(Factory):
    noisy = False

    def __init__(self, handlers: AdminHandlers) -> None:
        self._handlers = handlers

    def buildProtocol(self, addr: Any) -> AdminProtocol:
        return AdminProtocol(self._handlers)


class AdminServerService(Service):
    """
    Listens on the admin socket while the broker runs.

    A leftover socket file from a killed daemon is removed first: the store
    lock, held before this starts, guarantees no live daemon owns it.
    """

    log = Logger()

    def __init__(
        self, reactor: IReactorUNIX, path: Path, handlers: AdminHandlers
    ) -> None:
        self._reactor = reactor
        self._path = path
        self.handlers = handlers
        self._port: IListeningPort | None = None

    def startService(self) -> None:
        """Bind the socket (mode 0600, no window with wider permissions)."""
        super().startService()  # type: ignore[no-untyped-call]
        self._path.parent.mkdir(parents=True, exist_ok=True)
        if self._path.is_socket():
            self._path.unlink()
        old_umask = os.umask(0o177)
        try:
            self._port = self._reactor.listenUNIX(
                str(self._path), _AdminFactory(self.handlers), mode=0o600
            )
        finally:
            os.umask(old_umask)
        self.log.info("admin socket at {path}", path=str(self._path))

    def stopService(self) -> Deferred[None] | None:
        """Stop listening and remove the socket file."""
        super().stopService()  # type: ignore[no-untyped-call]
        port, self._port = self._port, None
        if port is None:
            return None
        d: Deferred[None] = Deferred.fromCoroutine(self._stop(port))
        return d

    async def _stop(self, port: IListeningPort) -> None:
        stopped = port.stopListening()
        if stopped is not None:
            await stopped
        try:
            self._path.unlink()
        except FileNotFoundError:
            pass
