# -*- test-case-name: tests.store.test_errors -*-
"""
The one exception the store raises, so callers never see ``sqlite3`` errors.

Every store failure (a bad path, a corrupt file, another daemon on the same
store, a failing migration, a query error) reaches the rest of fjmcp as a
`StoreError` whose message names the file and says what to do about it.
Raw ``sqlite3`` messages such as ``unable to open database file`` name no
file and suggest no cause; `wrap_sqlite_error` adds both at the boundary.
"""

from __future__ import annotations

import sqlite3

__all__ = [
    "StoreConstraintError",
    "StoreError",
    "StoreInUseError",
    "wrap_os_error",
    "wrap_sqlite_error",
]


class StoreError(Exception):
    """
    The store cannot do what was asked; the message names the file.

    :param path: the file concerned (the store, its lock, a backup or a
        migration file), or ``None`` when there is none.
    """

    def __init__(self, message: str, *, path: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.path = path

    def __str__(self) -> str:
        return self.message


class StoreInUseError(StoreError):
    """Another process (another fjmcp daemon) holds the store's lock file."""


class StoreConstraintError(StoreError):
    """A write broke a constraint (unique key, foreign key, NOT NULL, CHECK)."""


# Substrings of SQLite's messages, and what they mean for an operator.
_HINTS: tuple[tuple[str, str], ...] = (
    (
        "file is not a database",
        "the file is not an SQLite database (corrupt, or some other file); "
        "restore it from a backup or move it away",
    ),
    (
        "malformed",
        "the database is corrupt; restore it from a backup",
    ),
    (
        "database is locked",
        "the database is locked by another process (busy for longer than the "
        "busy timeout)",
    ),
    (
        "database is busy",
        "the database is locked by another process (busy for longer than the "
        "busy timeout)",
    ),
    (
        "unable to open database file",
        "cannot open the database file (does its directory exist, and is it "
        "writable by this user?)",
    ),
    (
        "readonly database",
        "the database file (or its directory) is read-only for this user",
    ),
    (
        "disk i/o error",
        "an I/O error on the database file (disk full or failing, or the file "
        "was removed)",
    ),
)


def _hint(error: Exception) -> str | None:
    text = str(error).lower()
    for needle, hint in _HINTS:
        if needle in text:
            return hint
    return None


def wrap_sqlite_error(
    path: str,
    error: Exception,
    *,
    doing: str | None = None,
    integrity: type[Exception] = sqlite3.IntegrityError,
) -> StoreError:
    """
    Turn a ``sqlite3`` error into a `StoreError` naming ``path``.

    The message keeps SQLite's own words and adds a hint for the errors an
    operator can act on. Constraint violations become `StoreConstraintError`
    so that callers can tell "already exists" from "broken".

    :param doing: what the store was doing, e.g. ``"applying migrations"``.
    :param integrity: the driver's constraint error class (the dialect's).
    """
    where = f"store {path}"
    if doing:
        where += f" ({doing})"
    hint = _hint(error)
    message = f"{where}: {hint}: {error}" if hint else f"{where}: {error}"
    cls = StoreConstraintError if isinstance(error, integrity) else StoreError
    wrapped = cls(message, path=path)
    wrapped.__cause__ = error
    return wrapped


def wrap_os_error(
    path: str, error: OSError, *, doing: str, store: str | None = None
) -> StoreError:
    """
    Turn an ``OSError`` on ``path`` (mkdir, open, lock) into a `StoreError`
    reading "store <store>: cannot <doing> <path>: <reason>".
    """
    reason = error.strerror or str(error)
    where = f"store {store}" if store else "store"
    wrapped = StoreError(f"{where}: cannot {doing} {path}: {reason}", path=path)
    wrapped.__cause__ = error
    return wrapped
