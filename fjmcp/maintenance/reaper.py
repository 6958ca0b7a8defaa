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

from typing import ClassVar, Protocol

from attrs import define, field
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from fjmcp.maintenance.loop import LoopingService
from fjmcp.maintenance.settings import MaintenanceSettings

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
class IdleReaper(LoopingService):
    """
    A service that ends sessions idle for ``settings.idle_timeout`` seconds,
    every ``settings.reaper_interval`` seconds.
    """

    log: ClassVar[Logger] = Logger()
    label: ClassVar[str] = "idle reaper"

    _sessions: IIdleSessions
    _clock: IReactorTime
    _settings: MaintenanceSettings
    reaped_total: int = field(default=0, init=False)
    """Sessions ended by the reaper since it started (for status and metrics)."""

    @property
    def interval(self) -> float:
        """Seconds between ticks."""
        return self._settings.reaper_interval

    @property
    def idle_timeout(self) -> float:
        """Seconds of inactivity after which a session ends."""
        return self._settings.idle_timeout

    async def tick(self) -> None:
        """One tick of the loop: `reap_once`."""
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
