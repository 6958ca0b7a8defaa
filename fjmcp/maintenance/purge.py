# -*- test-case-name: tests.maintenance.test_purge -*-
"""
The purger: every ``interval`` seconds, expired codes, tokens, logins and
kept refresh answers are deleted, and dynamic registrations idle for longer
than ``client_retention`` with no live token (`fjmcp.store.purge`).

Nothing in memory refers to a purged row (the bearer cache only holds live
tokens, which are never purged), so it only needs the store. ``fjmcp admin
purge-expired`` runs the same `ExpiredPurger.purge_once` on demand.
"""

from __future__ import annotations

from typing import ClassVar

from attrs import define
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from fjmcp.maintenance.loop import LoopingService
from fjmcp.store.purge import purge_txn
from fjmcp.store.runner import TxnRunner

__all__ = ["ExpiredPurger"]


@define(eq=False)
class ExpiredPurger(LoopingService):
    """
    A service that purges the store every ``interval`` seconds.

    :param client_retention: seconds an unused registration without live
        tokens is kept (``client_retention``).
    """

    log: ClassVar[Logger] = Logger()
    label: ClassVar[str] = "purger"

    _store: TxnRunner
    _clock: IReactorTime
    interval: float
    client_retention: float

    async def tick(self) -> None:
        """One tick of the loop: `purge_once`."""
        await self.purge_once()

    async def purge_once(self) -> dict[str, int]:
        """Purge now; how many rows of each kind went."""
        counts: dict[str, int] = await self._store.run(
            purge_txn, self._clock.seconds(), self.client_retention
        )
        if any(counts.values()):
            self.log.info(
                "purged {clients} idle client(s), {tokens} token(s), {codes} "
                "code(s), {pending} login(s) in progress",
                clients=counts.get("clients", 0),
                tokens=counts.get("tokens", 0),
                codes=counts.get("codes", 0),
                pending=counts.get("pending", 0),
            )
        return counts
