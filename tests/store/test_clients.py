# -*- test-case-name: tests.store.test_clients -*-
"""Tests for `fjmcp.store.clients` on a migrated in-memory store."""

from __future__ import annotations

import pytest

from fjmcp.store.clients import (
    ADMIN_CLIENT_ID,
    ClientRecord,
    get_client_txn,
    insert_client_txn,
    touch_client_txn,
)
from fjmcp.store.dialect import Dialect
from fjmcp.store.errors import StoreConstraintError
from tests.store.support import open_memory_store


def _record(**kw: object) -> ClientRecord:
    values: dict[str, object] = {
        "client_id": "fjc_1",
        "kind": "dcr",
        "auth_method": "client_secret_basic",
        "grant_types": ["authorization_code", "refresh_token"],
        "redirect_uris": ["https://app.example/cb"],
        "client_name": "App",
        "metadata": {"client_name": "App"},
        "secret_hash": "f" * 64,
        "created_at": 5.0,
    }
    values.update(kw)
    return ClientRecord(**values)  # type: ignore[arg-type]


def test_round_trip_and_touch(dialect: Dialect) -> None:
    """A stored client reads back equal; touch records last use."""
    with open_memory_store(dialect) as store:
        record = _record()
        store.run(insert_client_txn, record)
        assert store.run(get_client_txn, "fjc_1") == record
        store.run(touch_client_txn, "fjc_1", 9.0)
        touched = store.run(get_client_txn, "fjc_1")
        assert touched is not None and touched.last_used_at == 9.0
        assert touched.confidential and touched.refresh_allowed
        assert store.run(get_client_txn, "nope") is None


def test_admin_client_is_builtin_and_inert(dialect: Dialect) -> None:
    """The migration creates admin-cli: no redirect URIs, no grant types."""
    with open_memory_store(dialect) as store:
        admin = store.run(get_client_txn, ADMIN_CLIENT_ID)
        assert admin is not None
        assert admin.kind == "builtin"
        assert admin.redirect_uris == () and admin.grant_types == ()
        assert not admin.confidential


def test_secret_must_match_auth_method(dialect: Dialect) -> None:
    """The schema refuses a confidential client without secret and vice versa."""
    with open_memory_store(dialect) as store:
        with pytest.raises(StoreConstraintError):
            store.run(insert_client_txn, _record(secret_hash=None))
        with pytest.raises(StoreConstraintError):
            store.run(insert_client_txn, _record(client_id="x", auth_method="none"))
        with pytest.raises(StoreConstraintError):
            store.run(insert_client_txn, _record(client_id=ADMIN_CLIENT_ID))
