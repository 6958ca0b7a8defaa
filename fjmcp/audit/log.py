# -*- test-case-name: tests.audit.test_audit -*-
"""
The audit events: one per MCP request that reached a child, one per call
the policy refused, and one per OAuth grant, refresh, revocation and
consent decision.

Each is one JSON object, formatted here, once, and handed as one line to
the sink the composition root gives (`fjmcp.audit.file.AuditFile`, which
writes those lines in batches). A request's line holds the time, the
Forgejo user, the OAuth client, the session's short id, the JSON-RPC
method and, for ``tools/call``, the tool's name, the outcome and the
latency: never the arguments or the result, which may hold anything the
user's repositories hold. A refusal's line names the user, the client, the
session, the tool (or resource or prompt) and the rule that refused it,
never the arguments either.

A request's line is written once per MCP call, so it is put together from
pieces rather than by encoding a dictionary: the part that names the user,
the client and the session is encoded once per session and remembered
(for the last `MAX_REMEMBERED` sessions); every string still goes through
the JSON encoder's own escaping, and the line is the same text
``json.dumps`` with the same key order would give.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from datetime import UTC, datetime
from json.encoder import encode_basestring
from typing import Any, Final

from attrs import define, field
from twisted.internet.interfaces import IReactorTime

from fjmcp.interfaces import Identity

__all__ = ["AuditLog"]

#: Longest method or tool name written (a client chooses them).
MAX_NAME: Final = 128
#: Sessions whose line prefix is remembered.
MAX_REMEMBERED: Final = 1024

#: One encoder for every line (``json.dumps`` with options builds one per call).
_ENCODER: Final = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


def _iso_exact(when: float) -> str:
    return datetime.fromtimestamp(when, UTC).isoformat(timespec="milliseconds")


class _Timestamps:
    """
    ``_iso_exact`` with the date and time of day formatted once a second:
    the time is split into whole seconds and microseconds the way
    ``datetime.fromtimestamp`` splits it (half-even rounding, a carry into
    the next second), so the text is the same.
    """

    def __init__(self) -> None:
        self._second = -1.0
        self._prefix = ""

    def __call__(self, when: float) -> str:
        fraction, second = math.modf(when)
        micro = round(fraction * 1e6)
        if micro >= 1_000_000:
            micro -= 1_000_000
            second += 1.0
        elif micro < 0:
            return _iso_exact(when)
        if second != self._second:
            self._prefix = _iso_exact(second)[:-10]
            self._second = second
        return f"{self._prefix}.{micro // 1000:03d}+00:00"


_iso: Final = _Timestamps()


def _string(value: str | None) -> str:
    """A JSON string (as ``ensure_ascii=False`` writes it) or ``null``."""
    return "null" if value is None else encode_basestring(value)


@define
class AuditLog:
    """
    Formats audit events (implements `fjmcp.interfaces.ICallObserver`,
    `IPolicyObserver` and `IOAuthObserver`) and gives each line to
    ``write_line``.
    """

    _clock: IReactorTime
    _write_line: Callable[[str], None]
    _who: dict[tuple[str, str, str], str] = field(factory=dict, init=False)

    def _emit(self, record: dict[str, Any]) -> None:
        self._write_line(
            _ENCODER.encode({"time": _iso(self._clock.seconds()), **record})
        )

    def _who_of(self, identity: Identity, session: str) -> str:
        """``"user":…,"client_id":…,"session":…`` for one session, remembered."""
        key = (identity.user, identity.client_id, session)
        who = self._who.get(key)
        if who is None:
            if len(self._who) >= MAX_REMEMBERED:
                self._who.clear()
            who = self._who[key] = (
                f'"user":{_string(identity.user)},'
                f'"client_id":{_string(identity.client_id)},'
                f'"session":{_string(session)}'
            )
        return who

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
        when = _iso(self._clock.seconds())
        who = self._who_of(identity, session)
        name = _string(method[:MAX_NAME])
        tool_name = _string(tool[:MAX_NAME] if tool is not None else None)
        latency = round(seconds * 1000.0, 1)
        self._write_line(
            f'{{"time":"{when}","event":"mcp.request",{who},"method":{name},'
            f'"tool":{tool_name},"outcome":{_string(outcome)},"latency_ms":{latency!r}}}'
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
