# -*- test-case-name: tests.maintenance.test_reaper -*-
"""
Tests for `fjmcp.maintenance.reaper`: the loop's timing, its resilience and
its shutdown, on a `Clock` (no sleeps).
"""

from __future__ import annotations

from attrs import define, field
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.task import Clock
from twisted.internet.testing import EventLoggingObserver
from twisted.logger import globalLogPublisher

from fjmcp.maintenance.reaper import IdleReaper

INTERVAL = 30.0
IDLE = 1800.0


@define
class ScriptedSessions:
    """
    An `IIdleSessions` that records each question and answers from a script:
    an int, an exception to fail with, or a Deferred the test fires later.
    """

    answers: list[int | Exception | Deferred[int]] = field(factory=list)
    calls: list[tuple[float, float]] = field(factory=list)

    def reap_idle(self, now: float, idle_timeout: float) -> Deferred[int]:
        """Record the call; answer with the next scripted result (0 when none)."""
        self.calls.append((now, idle_timeout))
        answer = self.answers.pop(0) if self.answers else 0
        if isinstance(answer, Deferred):
            return answer
        if isinstance(answer, Exception):
            return fail(answer)
        return succeed(answer)


def make_reaper(sessions: ScriptedSessions, clock: Clock) -> IdleReaper:
    return IdleReaper(sessions, clock, interval=INTERVAL, idle_timeout=IDLE)


def test_ticks_every_interval_with_the_clock_time() -> None:
    """The reaper asks the registry once per interval, never at start, passing
    the clock's time and the idle timeout."""
    clock = Clock()
    clock.advance(1000)
    sessions = ScriptedSessions()
    reaper = make_reaper(sessions, clock)
    reaper.startService()
    assert sessions.calls == []
    clock.advance(INTERVAL - 1)
    assert sessions.calls == []
    clock.advance(1)
    assert sessions.calls == [(1000 + INTERVAL, IDLE)]
    clock.advance(INTERVAL)
    assert sessions.calls[-1] == (1000 + 2 * INTERVAL, IDLE)
    reaper.stopService()


def test_counts_and_logs_reaped_sessions() -> None:
    """Sessions the registry ended are counted and logged; a tick that ends
    none logs nothing."""
    events = EventLoggingObserver()
    globalLogPublisher.addObserver(events)
    try:
        clock = Clock()
        sessions = ScriptedSessions(answers=[0, 3, 2])
        reaper = make_reaper(sessions, clock)
        reaper.startService()
        clock.advance(INTERVAL)
        assert not [e for e in events if "idle for more" in e["log_format"]]
        clock.advance(INTERVAL)
        clock.advance(INTERVAL)
        assert reaper.reaped_total == 5
        logged = [e["count"] for e in events if "idle for more" in e["log_format"]]
        assert logged == [3, 2]
        reaper.stopService()
    finally:
        globalLogPublisher.removeObserver(events)


def test_failing_tick_is_logged_and_the_loop_goes_on() -> None:
    """A tick whose registry call fails is logged with its traceback, and the
    next tick still runs and reaps."""
    events = EventLoggingObserver()
    globalLogPublisher.addObserver(events)
    try:
        clock = Clock()
        sessions = ScriptedSessions(answers=[RuntimeError("boom"), 4])
        reaper = make_reaper(sessions, clock)
        reaper.startService()
        clock.advance(INTERVAL)
        failures = [e for e in events if "log_failure" in e]
        assert len(failures) == 1
        assert isinstance(failures[0]["log_failure"].value, RuntimeError)
        clock.advance(INTERVAL)
        assert len(sessions.calls) == 2
        assert reaper.reaped_total == 4
        assert reaper.running
        reaper.stopService()
    finally:
        globalLogPublisher.removeObserver(events)


def test_slow_tick_is_not_overlapped() -> None:
    """While a tick waits on the registry, later intervals start no second
    tick; the loop resumes once it finishes."""
    clock = Clock()
    slow: Deferred[int] = Deferred()
    sessions = ScriptedSessions(answers=[slow])
    reaper = make_reaper(sessions, clock)
    reaper.startService()
    clock.advance(INTERVAL)
    clock.advance(INTERVAL)
    clock.advance(INTERVAL)
    assert len(sessions.calls) == 1
    slow.callback(1)
    clock.advance(INTERVAL)
    assert len(sessions.calls) == 2
    reaper.stopService()


def test_stop_waits_for_the_tick_in_flight() -> None:
    """stopService returns a Deferred that fires only once the tick in flight
    has finished, and no tick runs after the stop."""
    clock = Clock()
    slow: Deferred[int] = Deferred()
    sessions = ScriptedSessions(answers=[slow])
    reaper = make_reaper(sessions, clock)
    reaper.startService()
    clock.advance(INTERVAL)
    stopped = reaper.stopService()
    fired: list[object] = []
    stopped.addBoth(fired.append)
    assert fired == []
    slow.callback(2)
    assert fired == [None]
    assert reaper.reaped_total == 2
    clock.advance(10 * INTERVAL)
    assert len(sessions.calls) == 1
    assert not reaper.running


def test_stop_when_idle_fires_at_once() -> None:
    """With no tick running, stopService has already fired, and the loop stops
    (no call after stop); stopping a reaper never started is harmless too."""
    clock = Clock()
    sessions = ScriptedSessions()
    reaper = make_reaper(sessions, clock)
    reaper.startService()
    clock.advance(INTERVAL)
    fired: list[object] = []
    reaper.stopService().addBoth(fired.append)
    assert fired == [None]
    clock.advance(10 * INTERVAL)
    assert len(sessions.calls) == 1
    assert clock.getDelayedCalls() == []
    never_started = make_reaper(ScriptedSessions(), Clock())
    fired2: list[object] = []
    never_started.stopService().addBoth(fired2.append)
    assert fired2 == [None]


def test_restart_after_stop_ticks_again() -> None:
    """A reaper stopped and started again (a service parent restarting) ticks
    on the interval again."""
    clock = Clock()
    sessions = ScriptedSessions()
    reaper = make_reaper(sessions, clock)
    reaper.startService()
    reaper.stopService()
    reaper.startService()
    clock.advance(INTERVAL)
    assert len(sessions.calls) == 1
    reaper.stopService()
