# -*- test-case-name: tests.store.test_errors -*-
"""Tests for wrapping sqlite3 and OS errors at the store boundary."""

from __future__ import annotations

import errno
import sqlite3

import pytest

from fjmcp.store.errors import (
    StoreConstraintError,
    StoreError,
    wrap_os_error,
    wrap_sqlite_error,
)


@pytest.mark.parametrize(
    ("error", "hint"),
    [
        (sqlite3.DatabaseError("file is not a database"), "not an SQLite database"),
        (sqlite3.DatabaseError("database disk image is malformed"), "corrupt"),
        (sqlite3.OperationalError("database is locked"), "locked by another process"),
        (sqlite3.OperationalError("unable to open database file"), "writable"),
        (sqlite3.OperationalError("attempt to write a readonly database"), "read-only"),
        (sqlite3.OperationalError("disk I/O error"), "I/O error"),
    ],
)
def test_known_errors_get_a_hint_and_the_file(error: sqlite3.Error, hint: str) -> None:
    """Errors an operator can act on name the file, explain, and keep SQLite's words."""
    wrapped = wrap_sqlite_error("/srv/fjmcp.db", error, doing="opening")
    text = str(wrapped)
    assert text.startswith("store /srv/fjmcp.db (opening): ")
    assert hint in text
    assert str(error) in text
    assert wrapped.path == "/srv/fjmcp.db"
    assert wrapped.__cause__ is error
    assert type(wrapped) is StoreError


def test_other_errors_keep_their_message() -> None:
    """An error without a hint is still wrapped with the file name."""
    wrapped = wrap_sqlite_error("s.db", sqlite3.OperationalError("no such table: x"))
    assert str(wrapped) == "store s.db: no such table: x"


def test_constraint_violations_have_their_own_type() -> None:
    """Integrity errors become `StoreConstraintError`, still a `StoreError`."""
    wrapped = wrap_sqlite_error(
        "s.db", sqlite3.IntegrityError("UNIQUE constraint failed: c.id")
    )
    assert isinstance(wrapped, StoreConstraintError)
    assert isinstance(wrapped, StoreError)
    assert "UNIQUE constraint failed" in str(wrapped)


def test_os_errors_name_the_path_and_the_action() -> None:
    """An ``OSError`` reads as: cannot <action> <path>: <reason>."""
    error = OSError(errno.EACCES, "Permission denied")
    wrapped = wrap_os_error("/srv/x", error, doing="create the store directory")
    assert (
        str(wrapped)
        == "store: cannot create the store directory /srv/x: Permission denied"
    )
    assert wrapped.__cause__ is error
