# -*- test-case-name: tests.maintenance.test_reaper -*-
"""
The idle reaper: sessions end when nobody has used them for a while.

Every session holds a child process, so a client that walks away without a
``DELETE`` would otherwise pin a process forever. Every ``reaper_interval``
seconds the reaper asks the session registry to end every session idle for
longer than ``session_idle_timeout``; the registry knows which sessions are
busy (a request in flight, an open GET stream) and never counts those as
idle. A reaped session's next request gets 404 and the client initializes
again.

The reaper holds no state of its own: it is a clock and a question. A tick
that fails is logged and the loop goes on, because one bad session must not
leave every other idle child running until the next restart.
"""

from __future__ import annotations

from typing import Any, ClassVar, Protocol

from attrs import define, field
from twisted.application.service import Service
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

__all__ = ["IIdleSessions", "IdleReaper"]


class IIdleSessions(Protocol):
    """What the reaper asks of the session registry."""

    def reap_idle(self, now: float, idle_timeout: float) -> Deferred[int]:
        """
        End every session whose last activity is more than ``idle_timeout``
        seconds before ``now`` and that has no request in flight and no open
        GET stream; fires with how many ended once their children are
        stopped.
        """


@define(eq=False)
class IdleReaper(Service):
    """
    A service that ends idle sessions every ``interval`` seconds.

    :param interval: seconds between ticks (``reaper_interval``).
    :param idle_timeout: seconds of inactivity after which a session ends
        (``session_idle_timeout``).
    """

    log: ClassVar[Logger] = Logger()

    _sessions: IIdleSessions
    _clock: IReactorTime
    interval: float
    idle_timeout: float
    _loop: LoopingCall | None = field(default=None, init=False)
    _looping: Deferred[LoopingCall] | None = field(default=None, init=False)
    _tick_in_flight: Deferred[None] | None = field(default=None, init=False)
    reaped_total: int = field(default=0, init=False)
    """Sessions ended by the reaper since it started (for status and metrics)."""

    def startService(self) -> None:
        """Start ticking; the first tick comes one interval after start."""
        super().startService()  # type: ignore[no-untyped-call]
        self._loop = LoopingCall(self._tick)
        self._loop.clock = self._clock
        self._looping = self._loop.start(self.interval, now=False)
        # _tick never fails, so this only catches a bug in LoopingCall itself.
        self._looping.addErrback(
            lambda f: self.log.failure("the idle reaper loop died", f)
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
        d: Deferred[None] = Deferred.fromCoroutine(self._reap_quietly())
        self._tick_in_flight = d

        def _done(result: Any) -> Any:
            if self._tick_in_flight is d:
                self._tick_in_flight = None
            return result

        d.addBoth(_done)
        return d

    async def _reap_quietly(self) -> None:
        await self.reap_once()

    async def reap_once(self) -> int:
        """
        Ask the registry to end the idle sessions now; returns how many
        ended. Any failure is logged and counts as none, so the loop goes on.
        """
        now = self._clock.seconds()
        try:
            count = await self._sessions.reap_idle(now, self.idle_timeout)
        except Exception:
            # Catch-and-log: a single failing tick must not stop the loop.
            self.log.failure("idle reaper tick failed; trying again next tick")
            return 0
        if count:
            self.reaped_total += count
            self.log.info(
                "ended {count} session(s) idle for more than {timeout:g}s",
                count=count,
                timeout=self.idle_timeout,
            )
        return count
