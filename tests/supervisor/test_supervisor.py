# -*- test-case-name: tests.supervisor.test_supervisor -*-
"""
The supervisor on a fake process reactor with a clock (after Twisted's
``runner/test/test_procmon.py``): spawning, framing, stderr, stopping.
"""

from __future__ import annotations

import signal
from functools import partial
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from twisted.internet import error
from twisted.logger import LogEvent, formatEvent

from fjmcp.config import ChildLimits
from fjmcp.interfaces import ChildExit, ChildSpec
from fjmcp.supervisor.cgroups import find_limiter
from fjmcp.supervisor.leader import spawn_session_leader
from fjmcp.supervisor.protocol import (
    STDERR_BURST,
    STDERR_LINE_MAX,
    ChildProtocol,
    LineFramer,
    redact,
)
from fjmcp.supervisor.supervisor import CHILD_FDS, Supervisor
from fjmcp.testing import FakeProcess, FakeProcessReactor, RecordingReceiver

TOKEN = "gto_s3cr3t-T0KEN-value"
SPEC = ChildSpec(
    argv=("/usr/bin/forgejo-mcp", "--stdio"),
    env={"PATH": "/usr/bin", "FORGEJO_ACCESS_TOKEN": TOKEN},
    label="session=ab12cd user=alice",
    secrets=(TOKEN,),
    max_line_bytes=64,
    stop_grace=3.0,
)


class Harness:
    """A supervisor on a fake reactor, one child and its receiver."""

    def __init__(self, term_delay: float | None = 1.0, spec: ChildSpec = SPEC) -> None:
        self.reactor = FakeProcessReactor(term_delay=term_delay)
        self.kills: list[tuple[int, int]] = []
        self.supervisor = Supervisor(
            self.reactor,
            kill_group=lambda pgid, sig: self.kills.append((pgid, sig)),
            start=self.reactor.spawnProcess,
        )
        self.receiver = RecordingReceiver()
        self.child = self.supervisor.spawn(spec, self.receiver)
        self.proc: FakeProcess = self.reactor.processes[-1]


def stderr_lines(events: list[LogEvent]) -> list[str]:
    """The formatted stderr events."""
    return [formatEvent(e) for e in events if e.get("stream") == "stderr"]


# --- spawning -----------------------------------------------------------------


def test_spawn_uses_the_argv_three_pipes_no_pty_and_exact_env() -> None:
    """The child runs the spec's argv as is (no setsid(1): it is spawned as a
    session leader), with only the spec's env, three pipes, no PTY."""
    h = Harness()
    assert h.proc.args == ("/usr/bin/forgejo-mcp", "--stdio")
    assert h.proc.executable == "/usr/bin/forgejo-mcp"
    assert h.proc.env == dict(SPEC.env)
    assert h.proc.childFDs == CHILD_FDS == {0: "w", 1: "r", 2: "r"}
    assert h.proc.usePTY is False
    assert (h.proc.uid, h.proc.gid) == (None, None)
    assert h.child.pid == h.proc.pid
    assert h.supervisor.live == 1


def test_children_are_spawned_as_session_leaders_by_default() -> None:
    """Without ``start``, a session-leading supervisor spawns through
    `spawn_session_leader`; one that does not, through the reactor."""
    reactor = FakeProcessReactor()
    leading = Supervisor(reactor)
    assert isinstance(leading._start, partial)
    assert leading._start.func is spawn_session_leader
    assert leading._start.args == (reactor,)
    plain = Supervisor(reactor, leads_session=False)
    assert plain._start == reactor.spawnProcess


def test_spawn_passes_uid_and_gid() -> None:
    """uid and gid from the spec reach spawnProcess."""
    spec = ChildSpec(argv=("/bin/x",), env={}, label="l", uid=1234, gid=5678)
    h = Harness(spec=spec)
    assert (h.proc.uid, h.proc.gid) == (1234, 5678)


def test_spawn_without_a_session_of_its_own() -> None:
    """With leads_session=False the argv is used as is and no group is killed."""
    reactor = FakeProcessReactor()
    Supervisor(reactor, leads_session=False).spawn(SPEC, RecordingReceiver())
    assert reactor.processes[0].args == SPEC.argv


def test_spawn_failure_leaves_nothing_behind() -> None:
    """A spawn that raises is reported to the caller and not counted as live."""
    reactor = FakeProcessReactor()
    reactor.spawn_error = OSError(2, "No such file")
    supervisor = Supervisor(reactor, leads_session=False)
    with pytest.raises(OSError):
        supervisor.spawn(SPEC, RecordingReceiver())
    assert supervisor.live == 0


def test_write_line_appends_newline() -> None:
    """write_line writes the line and a newline straight to stdin."""
    h = Harness()
    h.child.write_line(b'{"jsonrpc":"2.0","id":1,"method":"ping"}')
    h.child.write_line(b"{}")
    assert bytes(h.proc.stdin) == b'{"jsonrpc":"2.0","id":1,"method":"ping"}\n{}\n'


def test_write_line_refuses_newlines_and_after_stop() -> None:
    """A line with a newline is refused; so is any write once stopping."""
    h = Harness()
    with pytest.raises(ValueError):
        h.child.write_line(b"a\nb")
    h.child.stop()
    with pytest.raises(error.ProcessExitedAlready):
        h.child.write_line(b"{}")


# --- stdout framing -------------------------------------------------------------


def test_lines_split_across_chunks_are_reassembled() -> None:
    """A line arriving in pieces is delivered once, whole."""
    h = Harness()
    h.proc.emit_stdout(b'{"a"')
    h.proc.emit_stdout(b":1")
    assert h.receiver.lines == []
    h.proc.emit_stdout(b"}\n")
    assert h.receiver.lines == [b'{"a":1}']


def test_many_lines_in_one_chunk_and_crlf() -> None:
    """Several lines in one chunk are delivered in order; CRLF and blank lines too."""
    h = Harness()
    h.proc.emit_stdout(b"one\ntwo\r\n\r\n\nthree\npart")
    assert h.receiver.lines == [b"one", b"two", b"three"]
    h.proc.emit_stdout(b"ial\n")
    assert h.receiver.lines[-1] == b"partial"


def test_line_of_exactly_max_is_accepted() -> None:
    """A line of exactly max_line_bytes (with LF or CRLF) passes."""
    h = Harness()
    h.proc.emit_stdout(b"x" * 64 + b"\r\n")
    h.proc.emit_stdout(b"y" * 64 + b"\n")
    assert h.receiver.lines == [b"x" * 64, b"y" * 64]
    assert h.proc.signals == []


def test_over_long_line_stops_child(logged: list[LogEvent]) -> None:
    """Over max_line_bytes the child is stopped; the receiver gets line-too-long."""
    h = Harness()
    h.proc.emit_stdout(b"ok\n" + b"x" * 40)
    h.proc.emit_stdout(b"x" * 40)
    assert h.receiver.lines == [b"ok"]
    assert h.proc.stdin_closed
    assert h.proc.signals == ["TERM"]
    h.proc.emit_stdout(b"more\n")
    assert h.receiver.lines == [b"ok"]
    h.reactor.advance(1)
    assert h.receiver.exits == [ChildExit("line-too-long", exit_code=None, signal=15)]
    assert any("over 64 bytes" in formatEvent(e) for e in logged)


def test_over_long_complete_line_in_one_chunk_stops_child() -> None:
    """A complete over-long line is not delivered; lines before it are."""
    h = Harness()
    h.proc.emit_stdout(b"a\n" + b"z" * 65 + b"\nb\n")
    assert h.receiver.lines == [b"a"]
    assert h.proc.signals == ["TERM"]


def test_partial_last_line_is_dropped_at_exit(logged: list[LogEvent]) -> None:
    """A last line without newline is not delivered as a message, but noted."""
    h = Harness()
    h.proc.emit_stdout(b'{"jsonrpc":"2.0","id":')
    h.proc.exit(1)
    assert h.receiver.lines == []
    assert h.receiver.exits == [ChildExit("exited", exit_code=1)]
    assert any("without a newline" in formatEvent(e) for e in logged)


@given(
    lines=st.lists(
        st.binary(max_size=80).map(lambda b: b.replace(b"\n", b"").rstrip(b"\r")),
        max_size=20,
    ),
    cuts=st.lists(st.integers(min_value=0, max_value=2000), max_size=30),
    crlf=st.booleans(),
)
def test_framing_reassembles_any_split(
    lines: list[bytes], cuts: list[int], crlf: bool
) -> None:
    """However the stream is cut into chunks, the same lines come out, exactly."""
    end = b"\r\n" if crlf else b"\n"
    stream = b"".join(line + end for line in lines)
    framer = LineFramer(max_line=80)
    out: list[bytes] = []
    points = sorted({c % (len(stream) + 1) for c in cuts})
    prev = 0
    for p in [*points, len(stream)]:
        out += framer.feed(stream[prev:p])
        prev = p
    assert framer.overflow is None
    assert out == [line for line in lines if line]


@given(
    data=st.binary(max_size=3000),
    cuts=st.lists(st.integers(min_value=0, max_value=3000), max_size=20),
    limit=st.integers(min_value=1, max_value=300),
)
def test_framing_never_crashes_and_respects_the_limit(
    data: bytes, cuts: list[int], limit: int
) -> None:
    """Random bytes (invalid UTF-8, huge lines) never crash; no line exceeds the limit,
    and until an overflow every complete line comes out as split() would give it."""
    framer = LineFramer(max_line=limit)
    out: list[bytes] = []
    prev = 0
    for p in [*sorted({c % (len(data) + 1) for c in cuts}), len(data)]:
        out += framer.feed(data[prev:p])
        prev = p
    assert all(0 < len(line) <= limit for line in out)
    expected = [
        x.removesuffix(b"\r") for x in data.split(b"\n")[:-1] if x.removesuffix(b"\r")
    ]
    if framer.overflow is None:
        assert out == expected
    else:
        assert out == expected[: len(out)]


def test_huge_line_is_linear() -> None:
    """A 16 MiB line in 4 KiB chunks is framed in one join (no quadratic copying)."""
    framer = LineFramer(max_line=16 * 1024 * 1024)
    chunk = b"x" * 4096
    for _ in range(4096):
        assert framer.feed(chunk) == []
    assert framer.pending == 16 * 1024 * 1024
    assert framer.feed(b"\n") == [chunk * 4096]


# --- stderr -------------------------------------------------------------------------


def test_stderr_is_logged_with_label_and_token_redacted(
    logged: list[LogEvent],
) -> None:
    """Each stderr line is logged with the label; the token never appears."""
    h = Harness()
    h.proc.emit_stderr(b"starting with token " + TOKEN[:5].encode())
    h.proc.emit_stderr(TOKEN[5:].encode() + b" ok\nsecond line\n")
    lines = stderr_lines(logged)
    assert lines == [
        "child session=ab12cd user=alice stderr: starting with token [REDACTED] ok",
        "child session=ab12cd user=alice stderr: second line",
    ]
    assert all(TOKEN not in repr(e) for e in logged)


def test_stderr_long_line_truncated_without_half_a_token(
    logged: list[LogEvent],
) -> None:
    """A stderr line over the cap is truncated; a token cut at the cap is not leaked."""
    h = Harness()
    pad = b"p" * (STDERR_LINE_MAX - 6)
    h.proc.emit_stderr(pad + TOKEN.encode() + b"tail" * 5000 + b"\nnext\n")
    lines = stderr_lines(logged)
    assert len(lines) == 2
    assert lines[0].endswith("[truncated]")
    assert TOKEN[:6] not in lines[0]
    assert lines[1].endswith("stderr: next")


def test_stderr_rate_limited_with_one_suppressed_note(
    logged: list[LogEvent],
) -> None:
    """Past the burst, lines are dropped and reported once as 'suppressed K lines'."""
    h = Harness()
    h.proc.emit_stderr(b"".join(b"line %d\n" % i for i in range(STDERR_BURST + 30)))
    lines = stderr_lines(logged)
    assert len(lines) == STDERR_BURST
    h.reactor.advance(10)
    h.proc.emit_stderr(b"after the pause\n")
    lines = stderr_lines(logged)
    assert lines[STDERR_BURST].endswith("suppressed 30 lines (rate limit)")
    assert lines[-1].endswith("after the pause")


def test_suppressed_count_reported_at_exit(logged: list[LogEvent]) -> None:
    """Lines suppressed until the child ends are still reported once."""
    h = Harness()
    h.proc.emit_stderr(b"x\n" * (STDERR_BURST + 5))
    h.proc.exit(0)
    assert stderr_lines(logged)[-1].endswith("suppressed 5 lines (rate limit)")


def test_redact_longest_first() -> None:
    """A secret containing another is masked whole; empty secrets are ignored."""
    assert redact(b"a-abc-b", (b"abc", b"b", b"")) == b"a-[REDACTED]-[REDACTED]"


# --- stopping ------------------------------------------------------------------------


def test_stop_term_then_kill_after_grace() -> None:
    """stop(): stdin closed, TERM now, KILL exactly stop_grace later, fires on reap."""
    h = Harness(term_delay=None)
    pid = h.proc.pid
    d = h.child.stop()
    fired: list[object] = []
    d.addCallback(fired.append)
    assert h.proc.stdin_closed
    assert h.proc.signals == ["TERM"]
    h.reactor.advance(SPEC.stop_grace - 1)
    assert h.proc.signals == ["TERM"]
    assert fired == []
    h.reactor.advance(1)
    assert h.proc.signals == ["TERM", "KILL"]
    assert h.kills == [(pid, signal.SIGKILL)]
    h.reactor.pump([0, 0])
    assert fired == [None]
    assert h.receiver.exits == [ChildExit("stopped", exit_code=None, signal=9)]
    assert h.supervisor.live == 0


def test_stop_child_that_honours_term_is_not_killed() -> None:
    """A child that exits on TERM in the grace gets no KILL; no timer is left."""
    h = Harness(term_delay=1.0)
    d = h.child.stop()
    h.reactor.advance(1)
    assert d.called
    assert h.proc.signals == ["TERM"]
    assert h.reactor.getDelayedCalls() == []
    assert h.receiver.exits == [ChildExit("stopped", exit_code=None, signal=15)]


def test_stop_twice_and_after_exit() -> None:
    """A second stop waits for the same end; stop of an exited child fires at once."""
    h = Harness(term_delay=2.0)
    first, second = h.child.stop(), h.child.stop()
    assert h.proc.signals == ["TERM"]
    h.reactor.advance(2)
    assert first.called and second.called
    assert h.child.stop().called
    assert h.proc.signals == ["TERM"]
    assert len(h.receiver.exits) == 1


def test_stop_of_reaped_but_not_ended_child_swallows_exited_already() -> None:
    """TERM to a process that was reaped meanwhile raises nothing."""
    h = Harness()
    h.proc.pid = None  # reaped, pipes not yet closed
    d = h.child.stop()
    assert not d.called
    h.reactor.advance(SPEC.stop_grace)
    assert h.proc.signals == []


def test_child_exiting_on_its_own_is_reported_once() -> None:
    """An exit nobody asked for reaches child_exited exactly once, with its status."""
    h = Harness()
    ended = h.child.ended
    h.proc.exit(3)
    h.proc.exit(3)
    assert h.receiver.exits == [ChildExit("exited", exit_code=3)]
    assert ended.called
    assert h.child.pid is None
    assert h.supervisor.live == 0


def test_child_killed_by_signal_is_reported() -> None:
    """A child killed by someone else is 'signalled'."""
    h = Harness()
    h.proc._end(signal=signal.SIGSEGV)
    assert h.receiver.exits == [ChildExit("signalled", signal=signal.SIGSEGV)]


def test_pipes_held_open_after_exit_are_closed() -> None:
    """If the child is reaped but a descendant holds the pipes, they are closed."""
    h = Harness()
    proto: ChildProtocol = h.child
    from twisted.python.failure import Failure

    proto.processExited(Failure(error.ProcessDone(0)))
    h.reactor.advance(1)
    assert h.proc.lost_connection


def test_stop_all_stops_every_child() -> None:
    """stop_all stops every live child and fires once all are reaped."""
    reactor = FakeProcessReactor(term_delay=None)
    supervisor = Supervisor(reactor, leads_session=False)
    receivers = [RecordingReceiver() for _ in range(3)]
    for r in receivers:
        supervisor.spawn(SPEC, r)
    reactor.processes[0].exit(0)
    assert supervisor.live == 2
    d = supervisor.stop_all()
    reactor.advance(SPEC.stop_grace)
    assert d.called
    assert supervisor.live == 0
    assert [len(r.exits) for r in receivers] == [1, 1, 1]
    assert supervisor.stop_all().called


def test_receiver_errors_do_not_break_the_child(logged: list[LogEvent]) -> None:
    """A receiver that raises is logged; later lines and the exit still arrive."""

    class Broken(RecordingReceiver):
        def line_received(self, line: bytes) -> None:
            super().line_received(line)
            raise RuntimeError("bug")

    reactor = FakeProcessReactor()
    receiver = Broken()
    Supervisor(reactor, leads_session=False).spawn(SPEC, receiver)
    reactor.processes[0].emit_stdout(b"a\nb\n")
    reactor.processes[0].exit(0)
    assert receiver.lines == [b"a", b"b"]
    assert len(receiver.exits) == 1
    assert any(e.get("log_failure") for e in logged)


@given(
    pieces=st.lists(
        st.one_of(
            st.binary(max_size=40),
            st.just(b"\n"),
            st.just(TOKEN.encode()),
            st.just(TOKEN.encode()[:7]),
        ),
        max_size=40,
    ),
    cuts=st.lists(st.integers(min_value=0, max_value=2000), max_size=20),
    cap=st.integers(min_value=8, max_value=120),
)
def test_stderr_never_logs_the_token(
    pieces: list[bytes], cuts: list[int], cap: int
) -> None:
    """Whatever bytes a child writes to stderr, cut anywhere, with long lines
    truncated at any cap, the token never appears in a log event."""
    from twisted.internet.task import Clock
    from twisted.logger import Logger

    from fjmcp.supervisor.protocol import StderrDrain, TokenBucket

    events: list[LogEvent] = []
    drain = StderrDrain(
        log=Logger(observer=events.append),  # type: ignore[arg-type]
        label="l",
        secrets=(TOKEN.encode(),),
        bucket=TokenBucket(Clock(), burst=10_000, rate=1),
        max_line=cap,
    )
    stream = b"".join(pieces)
    prev = 0
    for p in [*sorted({c % (len(stream) + 1) for c in cuts}), len(stream)]:
        drain.feed(stream[prev:p])
        prev = p
    drain.close()
    for event in events:
        assert TOKEN not in formatEvent(event)
        assert len(event.get("line", "")) <= cap + len(" [truncated]")


def test_each_child_takes_a_cgroup_made_in_advance(tmp_path: Path) -> None:
    """The first child's cgroup is made at its spawn; once the reactor turn
    is over a spare is made for the next child, which only takes it (its
    preamble joins it); stop_all removes the spare."""
    root = tmp_path / "cgroup"
    (root / "pids").mkdir(parents=True)
    (root / "memory").mkdir()
    limiter = find_limiter(ChildLimits(memory=1 << 28, processes=32), root)
    assert limiter is not None
    reactor = FakeProcessReactor(term_delay=None)
    supervisor = Supervisor(reactor, cgroups=limiter, start=reactor.spawnProcess)
    parent = root / "pids" / "fjmcp"
    supervisor.spawn(SPEC, RecordingReceiver())
    assert sorted(d.name for d in parent.iterdir()) == [f"{limiter.owner}-1"]
    reactor.advance(0)
    assert sorted(d.name for d in parent.iterdir())[-1] == f"{limiter.owner}-2"
    supervisor.spawn(SPEC, RecordingReceiver())
    second = reactor.processes[1].args
    assert str(parent / f"{limiter.owner}-2" / "tasks") in second
    assert not (parent / f"{limiter.owner}-3").exists()  # not within the spawn
    reactor.advance(0)
    assert (parent / f"{limiter.owner}-3").exists()
    for spare in root.glob(f"*/fjmcp/{limiter.owner}-3"):
        for limit in spare.iterdir():  # a real cgroup's files go with its rmdir
            limit.unlink()
    supervisor.stop_all()
    assert not (parent / f"{limiter.owner}-3").exists()
    reactor.advance(0)
    assert not (parent / f"{limiter.owner}-4").exists()
