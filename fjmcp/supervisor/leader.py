# -*- test-case-name: tests.supervisor.test_leader -*-
"""
A child that leads a session of its own from its first instruction, with no
``setsid(1)`` to exec on the way.

A child must lead its own session (and process group): a signal to the
broker's group or a Ctrl-C reaches it only through the broker, and the
broker's final SIGKILL reaches its whole group. Twisted's
``reactor.spawnProcess`` has no hook for that, and prefers ``posix_spawn``,
which cannot run code in the child; ``POSIX_SPAWN_SETSID`` can, and costs
nothing, where an exec of ``setsid(1)`` costs about half a millisecond of
every session start.

`SessionLeaderProcess` is Twisted's `Process` with that one flag added to
its ``posix_spawnp`` call, and with ``os.setsid()`` before the exec where
Twisted forks instead (a uid change, or a reactor that never spawns). The
spawn reuses Twisted's own descriptor bookkeeping (private helpers of
``twisted.internet.process``); should a Twisted release drop them, every
child is forked, which is slower and just as correct.
"""

from __future__ import annotations

import fcntl
import os
import signal
from collections.abc import Mapping, Sequence
from typing import Any

from twisted.internet import process
from twisted.internet.interfaces import IProcessProtocol, IReactorProcess

__all__ = ["SessionLeaderProcess", "spawn_session_leader"]

_get_file_actions = getattr(process, "_getFileActions", None)
_list_open_fds = getattr(process, "_listOpenFDs", None)
_PS_CLOSE = getattr(process, "_PS_CLOSE", None)
_PS_DUP2 = getattr(process, "_PS_DUP2", None)
#: Whether Twisted's spawn bookkeeping is there to reuse (else: fork).
CAN_SPAWN = None not in (_get_file_actions, _list_open_fds, _PS_CLOSE, _PS_DUP2) and (
    hasattr(os, "posix_spawnp")
)


class SessionLeaderProcess(process.Process):
    """A `Process` whose child calls ``setsid()`` before it runs anything."""

    def _trySpawnInsteadOfFork(
        self,
        path: str | None,
        uid: int | None,
        gid: int | None,
        executable: str,
        args: Sequence[str],
        environment: Mapping[str, str] | None,
        kwargs: dict[str, Any],
    ) -> bool:
        """Twisted's ``posix_spawnp`` path, with ``setsid=True``."""
        if (
            not CAN_SPAWN
            or uid is not None
            or gid is not None
            or (path is not None and os.path.abspath(path) != os.path.abspath("."))
            or getattr(self._reactor, "_neverUseSpawn", False)
        ):
            return False
        fd_state = []
        for fd in _list_open_fds():  # type: ignore[misc]
            try:
                cloexec = fcntl.fcntl(fd, fcntl.F_GETFD, fcntl.FD_CLOEXEC)
            except OSError:
                continue
            fd_state.append((fd, cloexec))
        ignored = [
            signum
            for signum in range(1, signal.NSIG)
            if signal.getsignal(signum) == signal.SIG_IGN
        ]
        self.pid = os.posix_spawnp(
            executable,
            list(args),
            os.environ if environment is None else environment,
            file_actions=_get_file_actions(  # type: ignore[misc]
                fd_state, kwargs.get("fdmap"), doClose=_PS_CLOSE, doDup2=_PS_DUP2
            ),
            setsigdef=ignored,
            setsid=True,
        )
        self.status = -1
        return True

    def _execChild(
        self,
        path: str | None,
        uid: int | None,
        gid: int | None,
        executable: str,
        args: Sequence[str],
        environment: Mapping[str, str],
    ) -> None:
        """In the forked child: lead a new session, then Twisted's exec."""
        os.setsid()
        super()._execChild(  # type: ignore[no-untyped-call]
            path, uid, gid, executable, args, environment
        )


def spawn_session_leader(
    reactor: IReactorProcess,
    processProtocol: IProcessProtocol,
    executable: str,
    args: Sequence[str],
    env: Mapping[str, str] | None = None,
    path: str | None = None,
    uid: int | None = None,
    gid: int | None = None,
    usePTY: bool = False,
    childFDs: Mapping[int, int | str] | None = None,
) -> SessionLeaderProcess:
    """``reactor.spawnProcess`` for a child that leads its own session (no PTY)."""
    if usePTY:
        raise ValueError("a session leader is spawned without a PTY")
    return SessionLeaderProcess(  # type: ignore[no-untyped-call]
        reactor, executable, args, env, path, processProtocol, uid, gid, childFDs
    )
