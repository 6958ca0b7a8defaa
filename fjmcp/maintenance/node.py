# -*- test-case-name: tests.maintenance.test_node -*-
"""
This node's claim on its ``node_id`` in the shared store.

At start the broker claims its id (`NodePresence.claim`): a node id held by
another live node is refused, since session ids carry it and the balancer
routes on it. While the node runs its claim is renewed every
``interval`` seconds; at a clean stop it is released (see
`fjmcp.store.nodes`).
"""

from __future__ import annotations

import os
from typing import ClassVar, Final

from attrs import define
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from fjmcp.maintenance.loop import LoopingService
from fjmcp.store.nodes import claim_node_txn, release_node_txn, seen_node_txn
from fjmcp.store.runner import TxnRunner

__all__ = ["NodePresence", "pid_alive"]

#: Seconds between renewals, and after which an unrenewed claim is stale.
RENEW_INTERVAL: Final = 10.0
STALE_AFTER: Final = 3 * RENEW_INTERVAL


def pid_alive(pid: int) -> bool:
    """Whether a process ``pid`` runs on this host."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it runs, as another user
        return True
    return True


@define
class NodePresence(LoopingService):
    """Claims, renews and releases this node's id."""

    _store: TxnRunner
    _clock: IReactorTime
    node_id: str
    host: str
    pid: int

    log: ClassVar[Logger] = Logger()
    label: ClassVar[str] = "node presence"

    def __attrs_post_init__(self) -> None:
        LoopingService.__init__(self)

    @property
    def interval(self) -> float:
        """Seconds between renewals."""
        return RENEW_INTERVAL

    async def claim(self) -> str | None:
        """Claim the node id; why not when another live node holds it."""
        refusal: str | None = await self._store.run(
            claim_node_txn,
            self.node_id,
            self.host,
            self.pid,
            STALE_AFTER,
            pid_alive,
        )
        return refusal

    async def tick(self) -> None:
        """Renew the claim (a missing claim is taken again, with a warning)."""
        held = await self._store.run(seen_node_txn, self.node_id, self.host, self.pid)
        if not held:
            self.log.warn("node id {node} was not held any more", node=self.node_id)
            refusal = await self.claim()
            if refusal is not None:
                self.log.error("{refusal}", refusal=refusal)

    def stopService(self) -> Deferred[None]:  # noqa: N802 - twisted's name
        """Stop renewing, then release the claim."""
        stopped = super().stopService()
        return Deferred.fromCoroutine(self._release(stopped))

    async def _release(self, stopped: Deferred[None]) -> None:
        await stopped
        try:
            await self._store.run(release_node_txn, self.node_id, self.host, self.pid)
        except Exception:  # the store may be gone already: the claim goes stale
            self.log.failure("releasing node id {node} failed", node=self.node_id)
