# -*- test-case-name: tests.admin.test_server -*-
"""
The client side of the admin channel, for ``fjmcp admin`` commands.

A command is a short-lived process, so this is a plain blocking socket: one
JSON line out, one JSON line back (see `fjmcp.admin.server` for the
protocol). `DaemonNotRunningError` tells a command to fall back to working on the
store directly, where that makes sense.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

__all__ = ["AdminClient", "AdminError", "DaemonNotRunningError", "DEFAULT_TIMEOUT"]

#: Seconds the admin client waits on the socket before giving up.
DEFAULT_TIMEOUT: Final = 30.0
_MAX_RESPONSE: Final = 64 * 1024 * 1024


class AdminError(Exception):
    """The daemon answered ``ok: false``; the message is its error."""


class DaemonNotRunningError(Exception):
    """Nothing listens on the admin socket (no socket file, or refused)."""


class AdminClient:
    """Talks to the daemon's admin socket; one connection per `call`."""

    def __init__(self, path: str | os.PathLike[str], timeout: float = DEFAULT_TIMEOUT):
        self.path = Path(path)
        self.timeout = timeout

    def call(self, cmd: str, args: Mapping[str, Any] | None = None) -> Any:
        """
        Run one command in the daemon and return its result.

        Raises `DaemonNotRunningError` when no daemon listens, `AdminError` when
        the daemon refuses, and `OSError`/`TimeoutError` on a broken channel.
        """
        request = json.dumps({"cmd": cmd, "args": dict(args or {})}).encode() + b"\n"
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(self.timeout)
            try:
                sock.connect(str(self.path))
            except (FileNotFoundError, ConnectionRefusedError) as e:
                raise DaemonNotRunningError(
                    f"no fjmcp daemon answers on {self.path} ({e.strerror})"
                ) from None
            sock.sendall(request)
            buf = bytearray()
            while not buf.endswith(b"\n"):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                buf += chunk
                if len(buf) > _MAX_RESPONSE:
                    raise AdminError("response too long")
        if not buf:
            raise AdminError("the daemon closed the admin connection without answering")
        response = json.loads(bytes(buf))
        if not isinstance(response, dict):
            raise AdminError("malformed response")
        if not response.get("ok"):
            raise AdminError(str(response.get("error", "unknown error")))
        return response.get("result")

    def running(self) -> bool:
        """Whether a daemon answers on the socket."""
        try:
            self.call("status")
        except DaemonNotRunningError:
            return False
        except (AdminError, OSError, ValueError):
            return True
        return True
