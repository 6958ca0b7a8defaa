# -*- test-case-name: tests.maintenance.test_loop -*-
"""
The tick bookkeeping the maintenance timers share.

The idle reaper and the token refresher are both "run this every
``interval`` seconds on the injected clock" services. They need the same
care: the first tick one interval after start, a failing tick logged and the
loop kept going (one bad tick must not stop every later one), no second tick
while one is still running (`LoopingCall` waits on the Deferred), and a
``stopService`` that fires only once the tick in flight has finished, so
nothing touches the store after shutdown closed it.

`LoopingService` holds that once. It is a plain base, not an attrs class, so
the attrs subclasses keep their own field order: each declares ``_clock`` as
a field, provides ``interval`` (from its settings), sets ``label`` (used in
its log lines) and implements `LoopingService.tick`.
"""

from __future__ import annotations

from typing import Any, ClassVar

from twisted.application.service import Service
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

__all__ = ["LoopingService"]


class LoopingService(Service):
    """
    A service that awaits `tick` every ``interval`` seconds of ``_clock``.

    Subclasses provide ``_clock``, ``interval``, ``log`` and ``label``
    (e.g. ``"idle reaper"``).
    """

    log: ClassVar[Logger]
    label: ClassVar[str]
    _clock: IReactorTime
    _loop: LoopingCall | None = None
    _tick_in_flight: Deferred[None] | None = None

    @property
    def interval(self) -> float:
        """Seconds between ticks."""
        raise NotImplementedError

    async def tick(self) -> None:
        """One round of the timer's work; an exception is logged, not fatal."""
        raise NotImplementedError

    def startService(self) -> None:
        """Start ticking; the first tick comes one interval after start."""
        super().startService()  # type: ignore[no-untyped-call]
        self._loop = LoopingCall(self._tick)
        self._loop.clock = self._clock
        # _tick never fails, so this only catches a bug in LoopingCall itself.
        self._loop.start(self.interval, now=False).addErrback(
            lambda f: self.log.failure(f"the {self.label} loop died", f)
        )

    def stopService(self) -> Deferred[None]:
        """Stop ticking; fires when a tick still running has finished."""
        super().stopService()  # type: ignore[no-untyped-call]
        loop, self._loop = self._loop, None
        if loop is not None and loop.running:
            loop.stop()
        tick = self._tick_in_flight
        if tick is None:
            return succeed(None)
        # A second Deferred so the caller's callbacks cannot disturb the tick's.
        done: Deferred[None] = Deferred()
        tick.addBoth(lambda _: done.callback(None))
        return done

    def _tick(self) -> Deferred[None]:
        """One tick, as the Deferred the loop waits on (never fails)."""
        d: Deferred[None] = Deferred.fromCoroutine(self._tick_quietly())
        self._tick_in_flight = d

        def _done(result: Any) -> Any:
            if self._tick_in_flight is d:
                self._tick_in_flight = None
            return result

        d.addBoth(_done)
        return d

    async def _tick_quietly(self) -> None:
        try:
            await self.tick()
        except Exception:
            # Catch-and-log: one bad tick must not stop every later one.
            self.log.failure(f"{self.label} tick failed; trying again next tick")
