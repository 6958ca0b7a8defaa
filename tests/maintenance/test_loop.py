# -*- test-case-name: tests.maintenance.test_loop -*-
"""Tests for `fjmcp.maintenance.loop.LoopingService`: the shared tick bookkeeping."""

from __future__ import annotations

from typing import ClassVar

from attrs import define, field
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import Clock
from twisted.internet.testing import EventLoggingObserver
from twisted.logger import Logger, globalLogPublisher

from fjmcp.maintenance.loop import LoopingService

INTERVAL = 10.0


@define(eq=False)
class Counter(LoopingService):
    """A timer whose ticks follow a script: a Deferred to wait on, or an error."""

    log: ClassVar[Logger] = Logger()
    label: ClassVar[str] = "test counter"

    _clock: IReactorTime
    interval: float
    script: list[Deferred[None] | Exception] = field(factory=list)
    ticks: int = 0

    async def tick(self) -> None:
        """Count the tick, then do what the script says (nothing when empty)."""
        self.ticks += 1
        if self.script:
            step = self.script.pop(0)
            if isinstance(step, Exception):
                raise step
            await step


def test_first_tick_one_interval_after_start_then_every_interval() -> None:
    """No tick at start; one per interval of the injected clock after it."""
    clock = Clock()
    counter = Counter(clock, INTERVAL)
    counter.startService()
    assert counter.ticks == 0
    clock.advance(INTERVAL - 1)
    assert counter.ticks == 0
    clock.advance(1)
    clock.advance(INTERVAL)
    assert counter.ticks == 2
    counter.stopService()


def test_failing_tick_is_logged_with_the_label_and_the_loop_goes_on() -> None:
    """An exception from tick is logged (naming the timer) and the next tick runs."""
    events = EventLoggingObserver()
    globalLogPublisher.addObserver(events)
    try:
        clock = Clock()
        counter = Counter(clock, INTERVAL, script=[RuntimeError("boom")])
        counter.startService()
        clock.advance(INTERVAL)
        failures = [e for e in events if "log_failure" in e]
        assert len(failures) == 1
        assert isinstance(failures[0]["log_failure"].value, RuntimeError)
        assert failures[0]["log_format"].startswith("test counter tick failed")
        clock.advance(INTERVAL)
        assert counter.ticks == 2
        assert counter.running
        counter.stopService()
    finally:
        globalLogPublisher.removeObserver(events)


def test_stop_waits_for_the_tick_in_flight_and_no_tick_follows() -> None:
    """stopService fires once the running tick ends; the clock starts no more."""
    clock = Clock()
    slow: Deferred[None] = Deferred()
    counter = Counter(clock, INTERVAL, script=[slow])
    counter.startService()
    clock.advance(INTERVAL)
    clock.advance(INTERVAL)
    assert counter.ticks == 1  # a slow tick is not overlapped
    fired: list[object] = []
    counter.stopService().addBoth(fired.append)
    assert fired == []
    slow.callback(None)
    assert fired == [None]
    clock.advance(10 * INTERVAL)
    assert counter.ticks == 1
    assert clock.getDelayedCalls() == []


def test_stop_when_idle_or_never_started_fires_at_once() -> None:
    """With no tick running, or never started, stopService has already fired."""
    for started in (True, False):
        counter = Counter(Clock(), INTERVAL)
        if started:
            counter.startService()
        fired: list[object] = []
        counter.stopService().addBoth(fired.append)
        assert fired == [None]
