# -*- test-case-name: tests.bridge.test_idle -*-
"""The idle waiters the bridges share (`fjmcp.bridge.idle`)."""

from __future__ import annotations

from attrs import frozen

from fjmcp.bridge.idle import IdleWaiters


@frozen
class _Request:
    generation: int


def test_nothing_in_flight_fires_at_once() -> None:
    """With no request in flight, waiting for idle (any or one generation) is done."""
    waiters = IdleWaiters({})
    assert waiters.wait(None).called
    assert waiters.wait(3).called


def test_a_generation_waiter_fires_when_its_requests_end() -> None:
    """A waiter on one generation ignores the others; the overall one waits for all."""
    in_flight = {"1": _Request(1), "2": _Request(2)}
    waiters = IdleWaiters(in_flight)
    old, everything = waiters.wait(1), waiters.wait(None)
    in_flight.pop("2")
    waiters.check()
    assert (old.called, everything.called) == (False, False)
    in_flight.pop("1")
    waiters.check()
    assert (old.called, everything.called) == (True, True)
