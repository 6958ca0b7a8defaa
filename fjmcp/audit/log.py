# -*- test-case-name: tests.audit.test_audit -*-
"""
The audit events: one per MCP request that reached a child, one per call
the policy refused, and one per OAuth grant, refresh, revocation and
consent decision.

Each is one JSON object, formatted here, once, and emitted as a
`twisted.logger` event in the `AUDIT_NAMESPACE` namespace with the line in
``audit_line``; `fjmcp.audit.file.AuditFile` writes those lines and nothing
else, and the main log leaves them out. A request's line holds the time,
the Forgejo user, the OAuth client, the session's short id, the JSON-RPC
method and, for ``tools/call``, the tool's name, the outcome and the
latency: never the arguments or the result, which may hold anything the
user's repositories hold. A refusal's line names the user, the client, the
session, the tool (or resource or prompt) and the rule that refused it,
never the arguments either.
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


def _iso(when: float) -> str:
    return datetime.fromtimestamp(when, UTC).isoformat(timespec="milliseconds")


@define
class AuditLog:
    """
    Formats audit events (implements `fjmcp.interfaces.ICallObserver`,
    `IPolicyObserver` and `IOAuthObserver`).
    """

    _clock: IReactorTime
    _log: Logger = field(factory=lambda: Logger(namespace=AUDIT_NAMESPACE))

    def _emit(self, record: dict[str, Any]) -> None:
        line = json.dumps(
            {"time": _iso(self._clock.seconds()), **record},
            separators=(",", ":"),
            ensure_ascii=False,
        )
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

    def policy_refused(
        self, identity: Identity, session: str, what: str, name: str, rule: str
    ) -> None:
        """A call the policy refused: who, what, and the rule; no arguments."""
        self._emit(
            {
                "event": "policy.refused",
                "user": identity.user,
                "client_id": identity.client_id,
                "session": session,
                what: name[:MAX_NAME],
                "rule": rule[:MAX_NAME],
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
