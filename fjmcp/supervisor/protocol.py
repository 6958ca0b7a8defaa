# -*- test-case-name: tests.supervisor.test_supervisor -*-
"""
One child process as seen from the broker: its pipes, its framing, its end.

`ChildProtocol` is the `ProcessProtocol` of one child and the `IChild` the
rest of the broker holds. It frames stdout into newline-delimited JSON-RPC
lines (bounded: a child that writes a line over ``max_line_bytes`` is
stopped), drains stderr into the broker's log line by line (each line
redacted of the child's own token, and rate-limited so a noisy child cannot
flood the log), and stops the child the way Twisted's ``procmon`` does:
close stdin, SIGTERM, SIGKILL after the grace. It knows nothing of HTTP.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from typing import Any, Final

from attrs import define, field
from twisted.internet import error
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.internet.protocol import ProcessProtocol
from twisted.logger import Logger
from twisted.python.failure import Failure

from fjmcp.fdwrite import direct_target, write_now
from fjmcp.interfaces import ChildExit, ChildReceiver, ChildSpec
from fjmcp.logs import REDACTED

__all__ = [
    "ChildProtocol",
    "LineFramer",
    "StderrDrain",
    "TokenBucket",
    "redact",
]

#: The longest stderr line logged; the rest of a longer line is dropped.
STDERR_LINE_MAX: Final = 8 * 1024
#: Stderr lines a child may log in a burst, and per second after it.
STDERR_BURST: Final = 50
STDERR_RATE: Final = 10.0
#: After the child is reaped, how long its pipes may stay open (held by a
#: descendant) before the broker closes its ends and ends the child.
PIPE_DRAIN_TIMEOUT: Final = 1.0

_REDACTED_BYTES: Final = REDACTED.encode()

#: What a child's fatal signal most likely says about its limits.
_SIGNAL_CAUSES: Final[dict[int, str]] = {
    signal.SIGKILL: " (killed: out of memory in its cgroup, or stopped from outside)",
    signal.SIGXCPU: " (CPU time limit, child_limits.cpu_seconds)",
    signal.SIGXFSZ: " (file size limit)",
    signal.SIGSEGV: " (crashed; or out of address space, child_limits.memory)",
}


# --- framing ------------------------------------------------------------------


@define
class LineFramer:
    """
    Splits a byte stream into lines, at most ``max_line`` bytes each.

    A trailing ``\\r`` is dropped (CRLF tolerated) and empty lines are
    skipped. Partial lines are kept as a list of chunks and joined once,
    when their newline arrives, so a 16 MiB line sent in 4 KiB chunks costs
    linear time. Once a line (complete or still partial) is over the limit,
    ``overflow`` holds its size so far and every later chunk is ignored.
    """

    max_line: int
    overflow: int | None = None
    _parts: list[bytes] = field(factory=list)
    _size: int = 0

    @property
    def pending(self) -> int:
        """Bytes of a partial line waiting for their newline."""
        return self._size

    def feed(self, data: bytes) -> list[bytes]:
        """The lines completed by ``data``, in order (those before any overflow)."""
        if self.overflow is not None:
            return []
        lines: list[bytes] = []
        start = 0
        while True:
            nl = data.find(b"\n", start)
            if nl < 0:
                break
            if self._parts:
                self._parts.append(data[start:nl])
                line = b"".join(self._parts)
                self._parts = []
                self._size = 0
            else:
                line = data[start:nl]
            start = nl + 1
            if line.endswith(b"\r"):
                line = line[:-1]
            if len(line) > self.max_line:
                self.overflow = len(line)
                return lines
            if line:
                lines.append(line)
        if start < len(data):
            rest = data[start:]
            self._size += len(rest)
            self._parts.append(rest)
            # one byte of slack: a line of exactly max_line may end in \r\n
            if self._size > self.max_line + 1:
                self.overflow = self._size
                self._parts = []
        return lines

    def remainder(self) -> bytes:
        """The partial line still buffered (at end of stream), and forget it."""
        rest = b"".join(self._parts)
        self._parts = []
        self._size = 0
        return rest


def redact(line: bytes, secrets: tuple[bytes, ...]) -> bytes:
    """
    ``line`` with every occurrence of each secret replaced by ``[REDACTED]``.

    ``secrets`` should be sorted longest first (so a secret that contains
    another is masked whole); empty secrets are ignored.
    """
    for secret in secrets:
        if secret and secret in line:
            line = line.replace(secret, _REDACTED_BYTES)
    return line


def _cut_partial_secret(head: bytes, secrets: tuple[bytes, ...]) -> bytes:
    """Drop a tail of ``head`` that could be the start of a secret cut in two."""
    cut = 0
    for secret in secrets:
        for n in range(min(len(secret) - 1, len(head)), cut, -1):
            if head.endswith(secret[:n]):
                cut = n
                break
    return head[: len(head) - cut] if cut else head


@define
class TokenBucket:
    """
    ``burst`` events at once, then ``rate`` per second, on an injected clock.
    """

    clock: IReactorTime
    burst: float
    rate: float
    _tokens: float = field(init=False)
    _last: float = field(init=False)

    def __attrs_post_init__(self) -> None:
        self._tokens = self.burst
        self._last = self.clock.seconds()

    def take(self) -> bool:
        """Whether one more event may pass now (and count it if so)."""
        now = self.clock.seconds()
        self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
        self._last = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False


@define
class StderrDrain:
    """
    A child's stderr, turned into log events: one per line, redacted,
    truncated to ``STDERR_LINE_MAX``, rate-limited by a `TokenBucket`; lines
    over the rate are counted and reported in a single "suppressed" event
    when logging resumes or the child ends.
    """

    log: Logger
    label: str
    secrets: tuple[bytes, ...] = field(repr=False)  # never in a log's repr
    bucket: TokenBucket
    max_line: int = STDERR_LINE_MAX
    suppressed: int = 0
    _parts: list[bytes] = field(factory=list)
    _size: int = 0
    _discarding: bool = False

    def feed(self, data: bytes) -> None:
        """Log every line ``data`` completes."""
        start = 0
        while start < len(data):
            nl = data.find(b"\n", start)
            end = len(data) if nl < 0 else nl
            if not self._discarding:
                self._parts.append(data[start:end])
                self._size += end - start
                if self._size > self.max_line:
                    head = b"".join(self._parts)[: self.max_line]
                    self._parts, self._size = [], 0
                    self._emit(
                        _cut_partial_secret(redact(head, self.secrets), self.secrets),
                        truncated=True,
                    )
                    self._discarding = True
            if nl < 0:
                break
            if self._discarding:
                self._discarding = False
            else:
                self._emit(redact(b"".join(self._parts), self.secrets))
            self._parts, self._size = [], 0
            start = nl + 1

    def close(self) -> None:
        """End of stderr: log a partial last line and any suppressed count."""
        if self._parts and not self._discarding:
            self._emit(redact(b"".join(self._parts), self.secrets))
        self._parts, self._size, self._discarding = [], 0, False
        self._report_suppressed()

    def _emit(self, line: bytes, truncated: bool = False) -> None:
        line = line.rstrip(b"\r")
        if not line.strip():
            return
        if not self.bucket.take():
            self.suppressed += 1
            return
        self._report_suppressed()
        self.log.info(
            "child {label} stderr: {line}",
            label=self.label,
            line=line.decode("utf-8", "replace")
            + (" [truncated]" if truncated else ""),
            stream="stderr",
        )

    def _report_suppressed(self) -> None:
        if self.suppressed:
            count, self.suppressed = self.suppressed, 0
            self.log.warn(
                "child {label} stderr: suppressed {count} lines (rate limit)",
                label=self.label,
                count=count,
                stream="stderr",
            )


# --- the child -------------------------------------------------------------------


@define(eq=False, repr=False)
class ChildProtocol(ProcessProtocol):
    """
    The protocol of one child process, and the `IChild` handle on it.

    ``receiver`` gets every stdout line, then ``child_exited`` exactly once,
    after the process has exited, been reaped and its pipes are closed
    (``processEnded``); the Deferreds from `ended` fire at the same moment.
    ``kill_group`` (the child leads its own session) makes the final SIGKILL
    go to the child's whole process group, so a wrapper's or server's own
    children die with it.
    """

    log = Logger(namespace="fjmcp.child")

    spec: ChildSpec
    receiver: ChildReceiver
    clock: IReactorTime
    kill_group: Callable[[int, int], None] | None = None
    _framer: LineFramer = field(init=False)
    _stderr: StderrDrain = field(init=False)
    _pid: int | None = None
    _exit: ChildExit | None = None
    _stop_reason: str | None = None
    _kill_call: IDelayedCall | None = None
    _drain_call: IDelayedCall | None = None
    _waiters: list[Deferred[ChildExit]] = field(factory=list)

    def __attrs_post_init__(self) -> None:
        self._framer = LineFramer(self.spec.max_line_bytes)
        secrets = tuple(
            sorted({s.encode() for s in self.spec.secrets if s}, key=len, reverse=True)
        )
        self._stderr = StderrDrain(
            log=self.log,
            label=self.spec.label,
            secrets=secrets,
            bucket=TokenBucket(self.clock, STDERR_BURST, STDERR_RATE),
        )

    def __repr__(self) -> str:  # the log_source of events: no secrets in it
        return f"<ChildProtocol {self.spec.label} pid={self._pid}>"

    # -- IChild -------------------------------------------------------------------

    @property
    def pid(self) -> int | None:
        """The process id until the child is reaped."""
        return None if self._exit is not None else self._pid

    @property
    def spawned_pid(self) -> int | None:
        """The process id it was started with (kept after it is reaped)."""
        return self._pid

    @property
    def ended(self) -> Deferred[ChildExit]:
        """A new Deferred that fires with the `ChildExit` once the child is reaped."""
        if self._exit is not None:
            return succeed(self._exit)
        d: Deferred[ChildExit] = Deferred()
        self._waiters.append(d)
        return d

    @property
    def stopping(self) -> bool:
        """Whether the broker has begun stopping this child."""
        return self._stop_reason is not None

    def write_line(self, line: bytes) -> None:
        """
        Write ``line`` and a newline to the child's stdin.

        Raises `ValueError` for a line containing a newline (it would break
        the framing) and `ProcessExitedAlready` once the child is stopping
        or gone.
        """
        if 0x0A in line:  # an int needle: see fjmcp.bridge.jsonrpc._CR
            raise ValueError("a JSON-RPC line must not contain a newline")
        if self._exit is not None or self._stop_reason is not None:
            raise error.ProcessExitedAlready()
        if self.transport is None:
            raise error.ProcessExitedAlready()
        # Straight to the pipe when nothing is queued on it (`write_now`);
        # a transport without a stdin pipe object (a test's fake) buffers.
        pipes = getattr(self.transport, "pipes", None)
        stdin = direct_target(pipes.get(0)) if isinstance(pipes, dict) else None
        if stdin is None:
            self.transport.writeSequence([line, b"\n"])
        else:
            write_now(stdin, [line, b"\n"])

    def stop(self) -> Deferred[None]:
        """
        Close stdin, send SIGTERM, SIGKILL after ``stop_grace``.

        Fires (with None) once the child is reaped; calling it again, or on
        a child that has already exited, just waits for (or reports) that.
        """
        done = self.ended
        if self._exit is None:
            self._begin_stop("stopped")
        return done.addCallback(lambda _: None)

    # -- ProcessProtocol ---------------------------------------------------------

    def connectionMade(self) -> None:
        """Remember the pid: the transport forgets it once reaped."""
        if self.transport is not None:
            self._pid = self.transport.pid
            for fd, data in self.spec.inputs.items():
                # a pipe holds 64 KiB: a token is written whole at once
                self.transport.writeToChild(fd, data)
                self.transport.closeChildFD(fd)

    def childDataReceived(self, childFD: int, data: bytes) -> None:
        """Frame stdout into lines for the receiver; drain stderr into the log."""
        if childFD == 1:
            self._stdout(data)
        elif childFD == 2:
            self._stderr.feed(data)

    def childConnectionLost(self, childFD: int) -> None:
        """At the end of stdout, a partial last line is dropped with a warning."""
        if childFD == 1:
            rest = self._framer.remainder()
            if rest.strip() and self._framer.overflow is None:
                self.log.warn(
                    "child {label}: dropped {size} bytes of stdout without a newline",
                    label=self.spec.label,
                    size=len(rest),
                )
        elif childFD == 2:
            self._stderr.close()

    def processExited(self, reason: Failure) -> None:
        """
        Reaped. ``processEnded`` follows once the pipes close; if a
        descendant keeps them open, close our ends after a short drain.
        """
        if self._exit is None and self._drain_call is None:
            self._drain_call = self.clock.callLater(
                PIPE_DRAIN_TIMEOUT, self._close_pipes
            )

    def processEnded(self, reason: Failure) -> None:
        """Exited, reaped, pipes closed: report the end exactly once."""
        if self._exit is not None:
            return
        self._cancel_timers()
        self._stderr.close()
        value = reason.value
        code: int | None = 0
        sig: int | None = None
        if isinstance(value, error.ProcessTerminated):
            code, sig = value.exitCode, value.signal
        if self._stop_reason is not None:
            kind = self._stop_reason
        elif sig is not None:
            kind = "signalled"
        else:
            kind = "exited"
        self._exit = ChildExit(kind, exit_code=code, signal=sig)
        if self._stop_reason is None:
            self.log.info(
                "child {label} ended on its own: {how}",
                label=self.spec.label,
                how=f"signal {sig}{_SIGNAL_CAUSES.get(sig, '')}"
                if sig is not None
                else f"exit status {code}",
            )
        try:
            self.receiver.child_exited(self._exit)
        except Exception:
            self.log.failure("receiver of child {label} failed", label=self.spec.label)
        waiters, self._waiters = self._waiters, []
        for d in waiters:
            d.callback(self._exit)

    # -- internals -----------------------------------------------------------

    def _stdout(self, data: bytes) -> None:
        lines = self._framer.feed(data)
        for line in lines:
            try:
                self.receiver.line_received(line)
            except Exception:
                self.log.failure(
                    "receiver of child {label} failed on a line", label=self.spec.label
                )
        if self._framer.overflow is not None and self._stop_reason != "line-too-long":
            self.log.error(
                "child {label} wrote a stdout line over {limit} bytes; stopping it",
                label=self.spec.label,
                limit=self.spec.max_line_bytes,
            )
            self._begin_stop("line-too-long")

    def _begin_stop(self, reason: str) -> None:
        if self._stop_reason is not None:
            return
        self._stop_reason = reason
        transport = self.transport
        if transport is None:
            return
        try:
            transport.closeStdin()
        except Exception:
            self.log.failure("closing stdin of child {label}", label=self.spec.label)
        self._signal("TERM")
        if self._exit is None:
            self._kill_call = self.clock.callLater(self.spec.stop_grace, self._kill)

    def _kill(self) -> None:
        self._kill_call = None
        if self._exit is None:
            self.log.warn(
                "child {label} still running {grace}s after SIGTERM; killing it",
                label=self.spec.label,
                grace=self.spec.stop_grace,
            )
            self._signal("KILL")

    def _signal(self, name: str) -> None:
        transport: Any = self.transport
        pid = transport.pid if transport is not None else None
        try:
            transport.signalProcess(name)
        except (error.ProcessExitedAlready, AttributeError):
            return
        if name == "KILL" and pid is not None and self.kill_group is not None:
            try:
                self.kill_group(pid, signal.SIGKILL)
            except OSError:
                pass  # the group is gone already

    def _close_pipes(self) -> None:
        self._drain_call = None
        if self._exit is None and self.transport is not None:
            self.log.warn(
                "child {label} exited but its pipes are still held open; closing",
                label=self.spec.label,
            )
            self.transport.loseConnection()

    def _cancel_timers(self) -> None:
        for call in (self._kill_call, self._drain_call):
            if call is not None and call.active():
                call.cancel()
        self._kill_call = self._drain_call = None


def default_kill_group(pgid: int, signum: int) -> None:
    """Signal a whole process group (the child leads its own session)."""
    os.killpg(pgid, signum)
