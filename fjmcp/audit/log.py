# -*- test-case-name: tests.audit.test_audit -*-
"""
The audit events: one per MCP request that reached a child, and one per
OAuth grant, refresh, revocation and consent decision.

Each is one JSON object, formatted here, once, and emitted as a
`twisted.logger` event in the `AUDIT_NAMESPACE` namespace with the line in
``audit_line``; `fjmcp.audit.file.AuditFile` writes those lines and nothing
else. The composition root gives both a publisher of their own, so an
event per MCP request never passes through the main log's observers (which
leave audit events out anyway). A request's line holds the time,
the Forgejo user, the OAuth client, the session's short id, the JSON-RPC
method and, for ``tools/call``, the tool's name, the outcome and the
latency: never the arguments or the result, which may hold anything the
user's repositories hold.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any, Final

from attrs import define, field
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from fjmcp.audit import AUDIT_NAMESPACE
from fjmcp.interfaces import Identity

__all__ = ["AuditLog"]

#: Longest method or tool name written (a client chooses them).
MAX_NAME: Final = 128


#: One encoder for every line (``json.dumps`` with options builds one per call).
_ENCODER: Final = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


def _iso(when: float) -> str:
    return datetime.fromtimestamp(when, UTC).isoformat(timespec="milliseconds")


@define
class AuditLog:
    """
    Formats audit events (implements `fjmcp.interfaces.ICallObserver` and
    `IOAuthObserver`).
    """

    _clock: IReactorTime
    _log: Logger = field(factory=lambda: Logger(namespace=AUDIT_NAMESPACE))

    def _emit(self, record: dict[str, Any]) -> None:
        line = _ENCODER.encode({"time": _iso(self._clock.seconds()), **record})
        self._log.info("{audit_line}", audit_line=line)

    def call_done(
        self,
        identity: Identity,
        session: str,
        method: str,
        tool: str | None,
        outcome: str,
        seconds: float,
    ) -> None:
        """One MCP request answered (or failed) by a child."""
        self._emit(
            {
                "event": "mcp.request",
                "user": identity.user,
                "client_id": identity.client_id,
                "session": session,
                "method": method[:MAX_NAME],
                "tool": tool[:MAX_NAME] if tool is not None else None,
                "outcome": outcome,
                "latency_ms": round(seconds * 1000.0, 1),
            }
        )

    def endpoint_outcome(self, endpoint: str, outcome: str) -> None:
        """Endpoint answers are metrics, not audit events."""

    def oauth_event(
        self, event: str, user: str | None, client_id: str | None, outcome: str
    ) -> None:
        """A grant, refresh, revocation or consent decision."""
        self._emit(
            {
                "event": f"oauth.{event}",
                "user": user,
                "client_id": client_id,
                "outcome": outcome,
            }
        )
