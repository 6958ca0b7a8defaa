# -*- test-case-name: tests.test_testing -*-
"""
The shared fakes behave like the real things they stand in for, so tests
written against them mean something.
"""

from __future__ import annotations

import pytest
from twisted.internet import error

from fjmcp.interfaces import ChildExit, ChildSpec, IChild, ISpawner
from fjmcp.testing import FakeChild, FakeProcessReactor, FakeSpawner, RecordingReceiver

SPEC = ChildSpec(argv=("/bin/true",), env={}, label="session=t user=u")


def test_fake_spawner_satisfies_the_protocols() -> None:
    """FakeSpawner and FakeChild are usable where ISpawner and IChild are expected."""
    spawner: ISpawner = FakeSpawner()
    child: IChild = spawner.spawn(SPEC, RecordingReceiver())
    assert child.pid is not None
    assert spawner.live == 1


def test_fake_child_records_writes_and_emits_lines() -> None:
    """Written lines are recorded; emitted lines reach the receiver in order."""
    receiver = RecordingReceiver()
    spawner = FakeSpawner()
    child = spawner.spawn(SPEC, receiver)
    child.write_line(b'{"a":1}')
    child.emit(b"one")
    child.emit(b"two")
    assert child.written == [b'{"a":1}']
    assert receiver.lines == [b"one", b"two"]
    assert spawner.last is child


def test_fake_child_exit_notifies_once_and_fires_ended() -> None:
    """exit() calls child_exited exactly once and fires every ended Deferred."""
    receiver = RecordingReceiver()
    child = FakeSpawner().spawn(SPEC, receiver)
    before = child.ended
    child.exit(ChildExit("exited", exit_code=3))
    child.exit()
    assert receiver.exits == [ChildExit("exited", exit_code=3)]
    assert before.called and child.ended.called
    assert child.pid is None
    with pytest.raises(error.ProcessExitedAlready):
        child.write_line(b"late")


def test_fake_child_stop_and_hanging_stop() -> None:
    """stop() ends the child; with stop_hangs it waits until the test exits it."""
    receiver = RecordingReceiver()
    spawner = FakeSpawner(stop_hangs=True)
    child: FakeChild = spawner.spawn(SPEC, receiver)
    d = spawner.stop_all()
    fired: list[object] = []
    d.addCallback(fired.append)
    assert child.stdin_closed and fired == []
    child.exit(ChildExit("stopped", signal=9))
    assert fired == [None]
    assert spawner.live == 0
    assert FakeSpawner().stop_all().called


def test_fake_spawner_fail_with() -> None:
    """fail_with makes spawn raise, as a missing executable would."""
    spawner = FakeSpawner(fail_with=OSError("nope"))
    with pytest.raises(OSError, match="nope"):
        spawner.spawn(SPEC, RecordingReceiver())


def test_fake_process_term_then_kill() -> None:
    """A FakeProcess ends at once on KILL and never on TERM when it ignores it."""
    from twisted.internet.protocol import ProcessProtocol

    reactor = FakeProcessReactor(term_delay=None)
    proto = ProcessProtocol()
    proc = reactor.spawnProcess(proto, "/bin/x", ["/bin/x"])
    proc.signalProcess("TERM")
    reactor.advance(100)
    assert proc in reactor.live_processes
    proc.signalProcess("KILL")
    reactor.advance(0)
    assert proc not in reactor.live_processes
    assert proc.signals == ["TERM", "KILL"]
    with pytest.raises(error.ProcessExitedAlready):
        proc.signalProcess("KILL")
