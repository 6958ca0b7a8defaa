# -*- test-case-name: tests.store.test_clients -*-
"""
OAuth client records: dynamic registrations (RFC 7591), and room for
client ID metadata documents and operator-known clients.

Each query is a synchronous ``_txn(cursor, ...)`` function (tested on an
in-memory store) with a thin async wrapper over `TxnRunner.run`. A client's
secret is stored only as a SHA-256 digest.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from attrs import field, frozen

from fjmcp.store.runner import Cursor, TxnRunner

__all__ = [
    "ADMIN_CLIENT_ID",
    "ClientRecord",
    "get_client",
    "get_client_txn",
    "insert_client",
    "insert_client_txn",
    "save_document_client_txn",
    "touch_client_txn",
]

#: The built-in client of ``fjmcp admin issue-token`` (inserted by 0001).
ADMIN_CLIENT_ID = "admin-cli"


def _tuple(value: Any) -> tuple[str, ...]:
    return tuple(value)


@frozen
class ClientRecord:
    """A client as the authorization server sees it."""

    client_id: str
    kind: str
    """``dcr``, ``cimd``, ``known`` or ``builtin``."""
    auth_method: str
    """``none``, ``client_secret_basic`` or ``client_secret_post``."""
    grant_types: tuple[str, ...] = field(converter=_tuple)
    redirect_uris: tuple[str, ...] = field(converter=_tuple)
    client_name: str | None = None
    metadata: Mapping[str, Any] = field(factory=dict)
    secret_hash: str | None = field(default=None, repr=False)
    created_at: float = 0.0
    last_used_at: float | None = None

    @property
    def confidential(self) -> bool:
        """Whether the client authenticates with a secret."""
        return self.auth_method != "none"

    @property
    def refresh_allowed(self) -> bool:
        """Refresh tokens are issued exactly when ``grant_types`` has them."""
        return "refresh_token" in self.grant_types


_COLUMNS = (
    "client_id, kind, auth_method, grant_types, redirect_uris, client_name, "
    "metadata, secret_hash, created_at, last_used_at"
)


def _from_row(row: tuple[Any, ...]) -> ClientRecord:
    return ClientRecord(
        client_id=row[0],
        kind=row[1],
        auth_method=row[2],
        grant_types=json.loads(row[3]),
        redirect_uris=json.loads(row[4]),
        client_name=row[5],
        metadata=json.loads(row[6]),
        secret_hash=row[7],
        created_at=row[8],
        last_used_at=row[9],
    )


def insert_client_txn(cursor: Cursor, record: ClientRecord) -> None:
    """Store a new client (a constraint error if the id exists)."""
    cursor.execute(
        f"INSERT INTO clients ({_COLUMNS}) "  # noqa: S608 - constant columns
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            record.client_id,
            record.kind,
            record.auth_method,
            json.dumps(list(record.grant_types)),
            json.dumps(list(record.redirect_uris)),
            record.client_name,
            json.dumps(dict(record.metadata), sort_keys=True),
            record.secret_hash,
            record.created_at,
            record.last_used_at,
        ),
    )


def get_client_txn(cursor: Cursor, client_id: str) -> ClientRecord | None:
    """The client with this id, or ``None``."""
    row = cursor.execute(
        f"SELECT {_COLUMNS} FROM clients WHERE client_id = ?",  # noqa: S608
        (client_id,),
    ).fetchone()
    return None if row is None else _from_row(row)


def save_document_client_txn(
    cursor: Cursor, record: ClientRecord, expires_at: float | None
) -> None:
    """
    Store or refresh a client known by its metadata document (``cimd``) or
    an operator's record (``known``): what the document says is replaced,
    its creation and last use are kept. A registered or built-in client of
    the same id is never overwritten.
    """
    cursor.execute(
        f"INSERT INTO clients ({_COLUMNS}, metadata_expires_at) "  # noqa: S608
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
        "ON CONFLICT (client_id) DO UPDATE SET kind = excluded.kind, "
        "auth_method = excluded.auth_method, grant_types = excluded.grant_types, "
        "redirect_uris = excluded.redirect_uris, "
        "client_name = excluded.client_name, metadata = excluded.metadata, "
        "metadata_expires_at = excluded.metadata_expires_at "
        "WHERE clients.kind IN ('cimd', 'known')",
        (
            record.client_id,
            record.kind,
            record.auth_method,
            json.dumps(list(record.grant_types)),
            json.dumps(list(record.redirect_uris)),
            record.client_name,
            json.dumps(dict(record.metadata), sort_keys=True),
            None,
            record.created_at,
            None,
            expires_at,
        ),
    )


def touch_client_txn(cursor: Cursor, client_id: str, now: float) -> None:
    """Record that the client was used (for retention of idle registrations)."""
    cursor.execute(
        "UPDATE clients SET last_used_at = ? WHERE client_id = ?", (now, client_id)
    )


async def insert_client(store: TxnRunner, record: ClientRecord) -> None:
    """Store a new client."""
    await store.run(insert_client_txn, record)


async def get_client(store: TxnRunner, client_id: str) -> ClientRecord | None:
    """The client with this id, or ``None``."""
    return await store.run(get_client_txn, client_id)
