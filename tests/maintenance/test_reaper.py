# -*- test-case-name: tests.maintenance.test_reaper -*-
"""
Tests for `fjmcp.maintenance.reaper`: the loop's timing, its resilience and
its shutdown, on a `Clock` (no sleeps).
"""

from __future__ import annotations

import pytest
from attrs import define, field
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.task import Clock
from twisted.internet.testing import EventLoggingObserver
from twisted.logger import globalLogPublisher

from fjmcp.interfaces import ChildSpec, Identity
from fjmcp.maintenance.reaper import IdleReaper
from fjmcp.sessions.owner import ChildOwner
from fjmcp.sessions.registry import (
    SessionNotFoundError,
    SessionRegistry,
    SessionSettings,
    new_session_id,
)
from fjmcp.testing import FakeSpawner
from fjmcp.upstream.forgejo import ForgejoTokens
from tests.maintenance.support import MemoryTokens, maintenance_settings
from tests.sessions.support import QuietRouter
from tests.standin.support import result_of

INTERVAL = 30.0
IDLE = 1800.0
SETTINGS = maintenance_settings(reaper_interval=INTERVAL, idle_timeout=IDLE)


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
    return IdleReaper(sessions, clock, SETTINGS)


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


# --- with the real session registry ---------------------------------------------


@define
class Broker:
    """A registry on fake children, and the reaper over it."""

    clock: Clock
    spawner: FakeSpawner
    registry: SessionRegistry
    reaper: IdleReaper

    def open_session(self, user: str = "alice") -> tuple[ChildOwner, QuietRouter]:
        """A live session of ``user`` with its router."""
        router = QuietRouter()
        session = result_of(
            Deferred.fromCoroutine(
                self.registry.create(
                    new_session_id(), Identity(user, "client"), lambda s: router
                )
            )
        )
        return session, router


def make_broker() -> Broker:
    clock = Clock()
    clock.advance(5000)
    tokens = MemoryTokens()
    for user in ("alice", "bob"):
        tokens.put(user, ForgejoTokens("at-" + user, "bearer", 3600, "rt"), 5000)
    spawner = FakeSpawner()
    registry = SessionRegistry(
        spawner,
        tokens,
        lambda token, label: ChildSpec(("mcp-server",), {}, label),
        clock,
        SessionSettings(max_children=10, max_children_per_user=10, drain_timeout=120.0),
    )
    reaper = IdleReaper(registry, clock, SETTINGS)
    return Broker(clock, spawner, registry, reaper)


def test_idle_session_is_ended_and_its_child_stopped() -> None:
    """A session unused for longer than the idle timeout is ended by the next
    tick: its child is stopped, its id gets 404, and an active session of
    another user stays."""
    broker = make_broker()
    idle, router = broker.open_session("alice")
    busy_user, _ = broker.open_session("bob")
    broker.reaper.startService()
    for _ in range(int(IDLE / INTERVAL)):  # idle for exactly the timeout
        broker.clock.advance(INTERVAL)
        busy_user.touch(broker.clock.seconds())
    assert broker.clock.seconds() - idle.last_activity == IDLE
    assert broker.registry.get(idle.id) is not None  # not before the timeout
    broker.clock.advance(INTERVAL)
    assert broker.registry.get(idle.id) is None
    assert router.closed == ["idle"]
    assert broker.spawner.children[0].stop_calls == 1
    with pytest.raises(SessionNotFoundError):
        broker.registry.lookup(idle.id, idle.identity)
    assert broker.registry.get(busy_user.id) is not None
    assert broker.reaper.reaped_total == 1
    broker.reaper.stopService()


def test_session_with_a_request_in_flight_is_not_idle() -> None:
    """A session that is busy (a request in flight or a GET stream open) is
    never reaped, however long ago its last activity; once it is no longer
    busy and still idle, the next tick ends it."""
    broker = make_broker()
    session, router = broker.open_session()
    router.busy = True
    broker.reaper.startService()
    broker.clock.pump([INTERVAL] * int(3 * IDLE / INTERVAL))
    assert broker.registry.get(session.id) is not None
    assert broker.spawner.children[0].stop_calls == 0
    router.busy = False
    broker.clock.advance(INTERVAL)
    assert broker.registry.get(session.id) is None
    broker.reaper.stopService()
