# -*- test-case-name: tests.store.test_events -*-
"""
What one node's store changes tell the other nodes.

Several nodes keep caches in front of one store (the bearer cache, the
users' current Forgejo tokens) and children started from it. When a
transaction revokes a user's or a grant's tokens, or stores a new Forgejo
token, it publishes a `StoreEvent` in that same transaction: PostgreSQL
delivers it (``NOTIFY``) to every node's listener when, and only if, the
transaction commits. With SQLite there is one node and nothing to tell
(the dialect publishes nothing; the node's own fan-out does the work).
The payload is small JSON naming users and clients, never a token.
"""

from __future__ import annotations

import json
from typing import Final, Literal

from attrs import frozen

from fjmcp.store.runner import Cursor

__all__ = ["CHANNEL_PREFIX", "StoreEvent", "publish_txn"]

#: Notifications go to ``fjmcp_<schema>``: schemas in one database (test
#: runs, several brokers) do not hear each other.
CHANNEL_PREFIX: Final = "fjmcp_"

Kind = Literal["revoked", "upstream"]


@frozen
class StoreEvent:
    """
    ``revoked``: the tokens of ``user`` (through ``client_id``, or all of
    them when it is ``None``) were revoked. ``upstream``: the Forgejo token
    of ``user``'s upstream grant ``scopes`` (its scope key; ``None``: every
    grant of the user) is now at ``generation`` (0: deleted).
    """

    kind: Kind
    user: str
    client_id: str | None = None
    generation: int = 0
    scopes: str | None = None

    def encode(self) -> str:
        """The notification payload."""
        payload: dict[str, object] = {
            "k": self.kind,
            "u": self.user,
            "c": self.client_id,
            "g": self.generation,
        }
        if self.scopes is not None:
            payload["s"] = self.scopes
        return json.dumps(payload, separators=(",", ":"))

    @classmethod
    def decode(cls, payload: str) -> StoreEvent | None:
        """The event in ``payload``, or ``None`` for anything else."""
        try:
            data = json.loads(payload)
        except ValueError:
            return None
        if not isinstance(data, dict):
            return None
        kind, user, client, generation = (data.get(k) for k in "kucg")
        if kind not in ("revoked", "upstream") or not isinstance(user, str):
            return None
        if client is not None and not isinstance(client, str):
            return None
        if not isinstance(generation, int) or isinstance(generation, bool):
            return None
        scopes = data.get("s")
        if scopes is not None and not isinstance(scopes, str):
            return None
        return cls(kind, user, client, generation, scopes)


def publish_txn(cursor: Cursor, event: StoreEvent) -> None:
    """Announce ``event`` to every node when this transaction commits."""
    cursor.dialect.notify(cursor.cursor, event.encode())
