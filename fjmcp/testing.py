# -*- test-case-name: tests.test_testing -*-
"""
Process and reactor fakes shared by the tests.

Two levels, so each component is tested against the seam just below it:

- `FakeSpawner` / `FakeChild`: an in-memory `ISpawner` / `IChild` for the
  sessions and bridge tests. A test reads what the broker wrote to the
  child's stdin and feeds lines back as if the child had written them.
- `FakeProcessReactor` / `FakeProcess`: a `MemoryReactorClock` with a
  ``spawnProcess``, for the supervisor's own tests, after Twisted's
  ``runner/test/test_procmon.py``: signals schedule ``processEnded`` on the
  clock, so a TERM-then-KILL timeline is stepped with ``advance``.

Nothing here starts a real process or reads the real clock.
"""

from __future__ import annotations

import signal as _signal
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, AnyStr

from attrs import define, field
from twisted.internet import error
from twisted.internet.defer import Deferred, gatherResults, succeed
from twisted.internet.interfaces import (
    IProcessProtocol,
    IProcessTransport,
    IReactorProcess,
)
from twisted.internet.testing import MemoryReactorClock
from twisted.python.failure import Failure
from zope.interface import implementer

from fjmcp.interfaces import ChildExit, ChildReceiver, ChildSpec

__all__ = [
    "FakeChild",
    "FakeProcess",
    "FakeProcessReactor",
    "FakeSpawner",
    "RecordingReceiver",
]


# --- the IChild / ISpawner level (for sessions and bridge tests) -------------


@define(eq=False)
class FakeChild:
    """
    An in-memory `IChild`: records stdin lines, lets the test speak for it.

    - ``written`` is every line the broker wrote (without the newline).
    - `emit` delivers a stdout line to the receiver as the child would.
    - `exit` ends the child (as if it exited on its own).
    - `stop` ends it with ``reason="stopped"`` unless ``stop_hangs`` is set,
      in which case the returned Deferred waits until the test calls `exit`.
    """

    spec: ChildSpec
    receiver: ChildReceiver
    pid: int | None = 4242
    written: list[bytes] = field(factory=list)
    stop_calls: int = 0
    stop_hangs: bool = False
    stdin_closed: bool = False
    _exit: ChildExit | None = None
    _ended: Deferred[ChildExit] = field(factory=Deferred)
    _on_exit: list[Any] = field(factory=list)

    @property
    def ended(self) -> Deferred[ChildExit]:
        """A fresh Deferred that fires with the `ChildExit` once the child is gone."""
        d: Deferred[ChildExit] = Deferred()
        if self._exit is not None:
            d.callback(self._exit)
        else:
            self._on_exit.append(d)
        return d

    @property
    def alive(self) -> bool:
        """Whether the child has not exited yet."""
        return self._exit is None

    def write_line(self, line: bytes) -> None:
        """Record a line written to the child's stdin; refused once it is gone."""
        if self._exit is not None or self.stdin_closed:
            raise error.ProcessExitedAlready()
        self.written.append(line)

    def emit(self, line: bytes) -> None:
        """Deliver ``line`` to the receiver as if the child wrote it to stdout."""
        if self._exit is not None:
            raise error.ProcessExitedAlready("a child that has exited cannot write")
        self.receiver.line_received(line)

    def exit(self, exit: ChildExit | None = None) -> None:
        """End the child now (default: exited with status 0); idempotent."""
        if self._exit is not None:
            return
        self.pid = None
        self.stdin_closed = True
        self._exit = exit if exit is not None else ChildExit("exited", exit_code=0)
        self.receiver.child_exited(self._exit)
        waiting, self._on_exit = self._on_exit, []
        for d in waiting:
            d.callback(self._exit)

    def stop(self) -> Deferred[None]:
        """Close stdin and end the child (unless ``stop_hangs``); fires when gone."""
        self.stop_calls += 1
        self.stdin_closed = True
        done = self.ended
        if not self.stop_hangs:
            self.exit(ChildExit("stopped", signal=_signal.SIGTERM))
        result: Deferred[None] = Deferred()
        done.addCallback(lambda _: result.callback(None))
        return result


@define(eq=False)
class FakeSpawner:
    """
    An in-memory `ISpawner`: `spawn` returns a `FakeChild`, kept in ``children``.

    Set ``fail_with`` to make the next spawns raise (e.g. ``OSError`` for a
    missing executable).
    """

    children: list[FakeChild] = field(factory=list)
    fail_with: BaseException | None = None
    stop_hangs: bool = False

    def spawn(self, spec: ChildSpec, receiver: ChildReceiver) -> FakeChild:
        """Start a fake child for ``spec`` delivering to ``receiver``."""
        if self.fail_with is not None:
            raise self.fail_with
        child = FakeChild(
            spec=spec,
            receiver=receiver,
            pid=4242 + len(self.children),
            stop_hangs=self.stop_hangs,
        )
        self.children.append(child)
        return child

    @property
    def live(self) -> int:
        """How many fake children have not exited."""
        return sum(1 for c in self.children if c.alive)

    @property
    def last(self) -> FakeChild:
        """The most recently spawned child."""
        return self.children[-1]

    def stop_all(self) -> Deferred[None]:
        """Stop every live child; fires when all have ended."""
        stops = [c.stop() for c in self.children if c.alive]
        if not stops:
            return succeed(None)
        return gatherResults(stops).addCallback(lambda _: None)


@define(eq=False)
class RecordingReceiver:
    """A `ChildReceiver` that records lines and exits, for supervisor tests."""

    lines: list[bytes] = field(factory=list)
    exits: list[ChildExit] = field(factory=list)

    def line_received(self, line: bytes) -> None:
        """Record one stdout line."""
        self.lines.append(line)

    def child_exited(self, exit: ChildExit) -> None:
        """Record the exit."""
        self.exits.append(exit)


# --- the process level (for the supervisor's tests) ---------------------------


@implementer(IProcessTransport)
@define(eq=False)
class FakeProcess:
    """
    The transport `FakeProcessReactor.spawnProcess` returns.

    ``signalProcess("TERM")`` ends the process after ``term_delay`` seconds
    of the reactor's clock, or never when ``term_delay`` is None (a child that
    ignores SIGTERM); ``"KILL"`` ends it at once. Signalling an ended process
    raises `ProcessExitedAlready`, as Twisted does. Bytes written to stdin
    are kept in ``stdin``; ``signals`` records every signal sent.
    """

    _reactor: FakeProcessReactor
    proto: IProcessProtocol
    args: tuple[bytes | str, ...]
    env: Mapping[str, str] | None
    path: str | None
    uid: int | None
    gid: int | None
    usePTY: bool
    executable: str
    childFDs: Mapping[int, Any] | None
    pid: int | None
    term_delay: float | None = 1.0
    stdin: bytearray = field(factory=bytearray)
    stdin_closed: bool = False
    closed_fds: list[int] = field(factory=list)
    signals: list[str] = field(factory=list)
    lost_connection: bool = False
    _scheduled_end: Any = None

    # -- what the protocol under test calls ---------------------------------

    def write(self, data: bytes) -> None:
        """Record stdin bytes; refused once stdin is closed."""
        if self.stdin_closed:
            raise RuntimeError("write to closed stdin")
        self.stdin += data

    def writeSequence(self, seq: Iterable[bytes]) -> None:
        """Record several chunks."""
        for data in seq:
            self.write(data)

    def writeToChild(self, childFD: int, data: bytes) -> None:
        """Record bytes for fd 0 (the only writable one)."""
        if childFD != 0:
            raise ValueError(f"fd {childFD} is not writable")
        self.write(data)

    def closeStdin(self) -> None:
        """Mark stdin closed."""
        self.stdin_closed = True
        self.closed_fds.append(0)

    def closeChildFD(self, descriptor: int) -> None:
        """Record a closed descriptor."""
        if descriptor == 0:
            self.stdin_closed = True
        self.closed_fds.append(descriptor)

    def closeStdout(self) -> None:
        """Record stdout closed."""
        self.closed_fds.append(1)

    def closeStderr(self) -> None:
        """Record stderr closed."""
        self.closed_fds.append(2)

    def loseConnection(self) -> None:
        """Close all three pipes."""
        self.lost_connection = True
        self.closeStdin()

    def signalProcess(self, signalID: str | int) -> None:
        """Schedule the end the signal would cause, like procmon's DummyProcess."""
        name = signalID if isinstance(signalID, str) else _signal.Signals(signalID).name
        name = name.removeprefix("SIG")
        if self.pid is None:
            raise error.ProcessExitedAlready()
        self.signals.append(name)
        if name == "KILL":
            self._schedule_end(0, _signal.SIGKILL)
        elif name == "TERM" and self.term_delay is not None:
            self._schedule_end(self.term_delay, _signal.SIGTERM)

    def getPeer(self) -> Any:
        """Not a network transport."""
        return None

    def getHost(self) -> Any:
        """Not a network transport."""
        return None

    # -- what the test calls ---------------------------------------------------

    def emit_stdout(self, data: bytes) -> None:
        """Deliver a chunk of stdout to the protocol."""
        self.proto.childDataReceived(1, data)

    def emit_stderr(self, data: bytes) -> None:
        """Deliver a chunk of stderr to the protocol."""
        self.proto.childDataReceived(2, data)

    def exit(self, code: int = 0) -> None:
        """The process exits on its own with ``code`` (reaped at once)."""
        self._end(exit_code=code)

    def _schedule_end(self, delay: float, signum: int) -> None:
        if self._scheduled_end is not None and self._scheduled_end.active():
            if delay >= self._scheduled_end.getTime() - self._reactor.seconds():
                return
            self._scheduled_end.cancel()
        self._scheduled_end = self._reactor.callLater(delay, self._end, signal=signum)

    def _end(self, exit_code: int | None = None, signal: int | None = None) -> None:
        if self.pid is None:
            return
        if self._scheduled_end is not None and self._scheduled_end.active():
            self._scheduled_end.cancel()
        self.pid = None
        self._reactor.live_processes.discard(self)
        for fd in (0, 1, 2):
            self.proto.childConnectionLost(fd)
        self.proto.processExited(_exit_failure(exit_code, signal))
        self.proto.processEnded(_exit_failure(exit_code, signal))


def _str_env(env: Mapping[AnyStr, AnyStr] | None) -> dict[str, str] | None:
    if env is None:
        return None
    return {
        (k if isinstance(k, str) else k.decode()): (
            v if isinstance(v, str) else v.decode()
        )
        for k, v in env.items()
    }


def _exit_failure(exit_code: int | None, signal: int | None) -> Failure:
    if exit_code == 0 and signal is None:
        return Failure(error.ProcessDone(0))
    status = (exit_code or 0) << 8 if signal is None else signal
    return Failure(error.ProcessTerminated(exit_code, signal, status))


@implementer(IReactorProcess)
class FakeProcessReactor(MemoryReactorClock):
    """
    A `MemoryReactorClock` that can spawn `FakeProcess` es.

    ``term_delay`` is given to every new process (None: it ignores SIGTERM);
    ``spawn_error`` makes the next spawns raise (e.g. ``OSError``).
    """

    def __init__(self, term_delay: float | None = 1.0) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.term_delay = term_delay
        self.spawn_error: BaseException | None = None
        self.processes: list[FakeProcess] = []
        self.live_processes: set[FakeProcess] = set()
        self._next_pid = 0x7FFF0000  # above pid_max: a stray kill() finds nothing

    def spawnProcess(
        self,
        processProtocol: IProcessProtocol,
        executable: bytes | str,
        args: Sequence[bytes | str],
        env: Mapping[AnyStr, AnyStr] | None = None,
        path: bytes | str | None = None,
        uid: int | None = None,
        gid: int | None = None,
        usePTY: bool = False,
        childFDs: Mapping[int, int | str] | None = None,
    ) -> FakeProcess:
        """Record the call and connect ``processProtocol`` to a `FakeProcess`."""
        if self.spawn_error is not None:
            raise self.spawn_error
        self._next_pid += 1
        proc = FakeProcess(
            reactor=self,
            proto=processProtocol,
            args=tuple(args),
            env=_str_env(env),
            path=path if path is None or isinstance(path, str) else path.decode(),
            uid=uid,
            gid=gid,
            usePTY=usePTY,
            executable=executable
            if isinstance(executable, str)
            else executable.decode(),
            childFDs=dict(childFDs) if childFDs is not None else None,
            pid=self._next_pid,
            term_delay=self.term_delay,
        )
        self.processes.append(proc)
        self.live_processes.add(proc)
        processProtocol.makeConnection(proc)
        return proc
