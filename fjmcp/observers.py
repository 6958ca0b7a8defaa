# -*- test-case-name: tests.test_observers -*-
"""
The observers of `fjmcp.interfaces` that do nothing or fan out.

Components take an observer at construction and call it where an event
happens; with metrics and the audit log off they get `NO_OBSERVER`, whose
calls return at once, so no component tests for "is anyone listening".
`Observers` tells several (metrics and the audit log) in turn.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from attrs import frozen

from fjmcp.interfaces import (
    ICallObserver,
    Identity,
    IOAuthObserver,
    IPolicyObserver,
    IResponseObserver,
    ISpawnObserver,
)

__all__ = ["NO_OBSERVER", "NullObserver", "Observers"]


class NullObserver:
    """Hears everything and does nothing."""

    def spawned(self, seconds: float) -> None:
        """Nothing."""

    def call_done(
        self,
        identity: Identity,
        session: str,
        method: str,
        tool: str | None,
        outcome: str,
        seconds: float,
    ) -> None:
        """Nothing."""

    def responded(self, status: int) -> None:
        """Nothing."""

    def endpoint_outcome(self, endpoint: str, outcome: str) -> None:
        """Nothing."""

    def oauth_event(
        self, event: str, user: str | None, client_id: str | None, outcome: str
    ) -> None:
        """Nothing."""

    def policy_refused(
        self, identity: Identity, session: str, what: str, name: str, rule: str
    ) -> None:
        """Nothing."""


NO_OBSERVER: Final = NullObserver()


@frozen
class Observers:
    """Tells each of ``parts`` of every event, in order."""

    calls: Sequence[ICallObserver] = ()
    oauth: Sequence[IOAuthObserver] = ()

    def call_done(
        self,
        identity: Identity,
        session: str,
        method: str,
        tool: str | None,
        outcome: str,
        seconds: float,
    ) -> None:
        """Tell every call observer."""
        for part in self.calls:
            part.call_done(identity, session, method, tool, outcome, seconds)

    def endpoint_outcome(self, endpoint: str, outcome: str) -> None:
        """Tell every OAuth observer."""
        for part in self.oauth:
            part.endpoint_outcome(endpoint, outcome)

    def oauth_event(
        self, event: str, user: str | None, client_id: str | None, outcome: str
    ) -> None:
        """Tell every OAuth observer."""
        for part in self.oauth:
            part.oauth_event(event, user, client_id, outcome)


def _check_types() -> None:  # pragma: no cover - mypy checks the protocols
    _spawn: ISpawnObserver = NO_OBSERVER
    _call: ICallObserver = NO_OBSERVER
    _resp: IResponseObserver = NO_OBSERVER
    _oauth: IOAuthObserver = NO_OBSERVER
    _policy: IPolicyObserver = NO_OBSERVER
    _fan_call: ICallObserver = Observers()
    _fan_oauth: IOAuthObserver = Observers()
