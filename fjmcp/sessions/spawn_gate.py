# -*- test-case-name: tests.sessions.test_spawn_gate -*-
"""
A bound on children starting at once, with the time they queued for it.

A burst of new sessions (64 ``initialize`` requests at once) would otherwise
fork 64 interpreters together, which then share the cores and all finish
late. `SpawnGate` lets ``limit`` children start at a time; a child holds its
slot until its first stdout line (its start-up is over), its exit, or
``hold_timeout`` seconds, whichever comes first, so a child that never
speaks cannot block the others. Waiters are served first come, first
served. The seconds each start waited are counted (`waits`, `waited_total`,
`wait_buckets`: cumulative counts of waits up to each bound, a histogram a
metrics exporter can read as it is) and passed to ``observe`` if given.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable
from typing import Final

from attrs import define, field
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IDelayedCall, IReactorTime

from fjmcp.interfaces import ChildExit, ChildReceiver

__all__ = ["SpawnGate", "GatedReceiver", "default_spawn_limit", "WAIT_BOUNDS"]

#: Upper bounds (seconds) of the queueing-time histogram.
WAIT_BOUNDS: Final = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, float("inf"))
#: Seconds a started child may hold its slot without printing a line.
DEFAULT_HOLD_TIMEOUT: Final = 10.0


def default_spawn_limit() -> int:
    """Four starts at once per core the broker may run on."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        cores = os.cpu_count() or 1
    return 4 * max(1, cores)


@define(eq=False)
class SpawnGate:
    """
    ``limit`` child starts at a time (`acquire`, then `release` once).

    :param observe: called with the seconds each start waited (0 when a
        slot was free), e.g. a metrics histogram's ``observe``.
    """

    _clock: IReactorTime
    limit: int
    hold_timeout: float = DEFAULT_HOLD_TIMEOUT
    observe: Callable[[float], None] | None = None
    _busy: int = field(default=0, init=False)
    _queue: deque[tuple[float, Deferred[Callable[[], None]]]] = field(
        factory=deque, init=False
    )
    waits: int = field(default=0, init=False)
    """Starts that passed the gate."""
    waited_total: float = field(default=0.0, init=False)
    """Seconds they waited, summed."""
    wait_buckets: list[int] = field(factory=lambda: [0] * len(WAIT_BOUNDS), init=False)
    """Cumulative counts: waits of at most ``WAIT_BOUNDS[i]`` seconds."""

    def __attrs_post_init__(self) -> None:
        if self.limit < 1:
            raise ValueError("the spawn limit must be at least 1")

    @property
    def starting(self) -> int:
        """Children holding a slot now."""
        return self._busy

    @property
    def queued(self) -> int:
        """Starts waiting for a slot now."""
        return len(self._queue)

    def acquire(self) -> Deferred[Callable[[], None]]:
        """
        Fires with the slot's ``release`` (idempotent) once a slot is free;
        cancelling the Deferred gives the place in the queue up.
        """
        now = self._clock.seconds()
        if self._busy < self.limit and not self._queue:
            return succeed(self._grant(now, now))
        waiter: Deferred[Callable[[], None]] = Deferred(lambda d: self._abandon(d))
        self._queue.append((now, waiter))
        return waiter

    def _abandon(self, waiter: Deferred[Callable[[], None]]) -> None:
        for entry in self._queue:
            if entry[1] is waiter:
                self._queue.remove(entry)
                return

    def _grant(self, queued_at: float, now: float) -> Callable[[], None]:
        self._busy += 1
        self._count(now - queued_at)
        done = False
        timer: IDelayedCall | None = None

        def release() -> None:
            nonlocal done
            if done:
                return
            done = True
            if timer is not None and timer.active():
                timer.cancel()
            self._busy -= 1
            self._next()

        timer = self._clock.callLater(self.hold_timeout, release)
        return release

    def _count(self, waited: float) -> None:
        self.waits += 1
        self.waited_total += waited
        for i, bound in enumerate(WAIT_BOUNDS):
            if waited <= bound:
                self.wait_buckets[i] += 1
        if self.observe is not None:
            self.observe(waited)

    def _next(self) -> None:
        while self._queue and self._busy < self.limit:
            queued_at, waiter = self._queue.popleft()
            waiter.callback(self._grant(queued_at, self._clock.seconds()))


@define(eq=False)
class GatedReceiver:
    """
    A `ChildReceiver` that gives its gate slot back at the child's first
    line or its exit, and passes everything on to ``receiver``.
    """

    receiver: ChildReceiver
    release: Callable[[], None]

    def line_received(self, line: bytes) -> None:
        """The child speaks: its start-up is over."""
        self.release()
        self.receiver.line_received(line)

    def child_exited(self, exit: ChildExit) -> None:
        """The child ended (perhaps before it ever spoke)."""
        self.release()
        self.receiver.child_exited(exit)
