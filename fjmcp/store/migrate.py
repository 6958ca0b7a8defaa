# -*- test-case-name: tests.store.test_migrate -*-
"""
Numbered SQL migrations, each applied once, in its own transaction.

The schema lives in ``NNNN_name.sql`` files shipped as package data
(`fjmcp.store.migrations`). `migrate` applies the files not yet recorded in
``schema_migrations``, in order, each inside one ``BEGIN IMMEDIATE`` ...
``COMMIT``, so a failing file leaves neither a half-built table nor a
record of itself. Before it changes an existing, non-empty store, it writes
a ``VACUUM INTO`` copy beside it (``<store>.backup-<UTC time>-v<N>``, ``N``
being the version the copy holds), the mailbox server's habit: an upgrade
that goes wrong can be undone by moving a file back.

Statements are run one by one (``executescript`` would commit an open
transaction first), and a migration may not manage transactions itself
(``BEGIN``, ``COMMIT``, ``SAVEPOINT``, ``VACUUM``...): that would break the
one-transaction-per-file guarantee. Foreign keys are off while a file runs,
as SQLite's table-rebuild procedure requires (a ``DROP TABLE`` would
otherwise cascade into the rows it was meant to keep), and
``PRAGMA foreign_key_check`` must come back empty before the file commits.
"""

from __future__ import annotations

import hashlib
import os
import re
import sqlite3
import time
from collections.abc import Sequence
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

from attrs import frozen

from fjmcp.store.dialect import SQLITE, MigrationDialect, OnlineBackup
from fjmcp.store.errors import StoreError, wrap_os_error

__all__ = [
    "FORBIDDEN_STATEMENTS",
    "MIGRATIONS_PACKAGE",
    "migrations_for",
    "Migration",
    "MigrationResult",
    "MigrationSource",
    "backup_path_for",
    "first_keyword",
    "load_migrations",
    "migrate",
    "parse_migration_name",
    "split_statements",
]

#: Where the shipped migrations live.
MIGRATIONS_PACKAGE = "fjmcp.store.migrations"


def migrations_for(dialect_name: str) -> Traversable:
    """
    The shipped migrations of one engine: SQLite's in `MIGRATIONS_PACKAGE`,
    every other engine's in its subpackage (``migrations/postgresql``), with
    the same version numbers for the same schema.
    """
    root = resources.files(MIGRATIONS_PACKAGE)
    return root if dialect_name == SQLITE.name else root / dialect_name


#: Statements a migration file may not contain: they manage the transaction
#: the runner owns, or cannot run inside one.
FORBIDDEN_STATEMENTS = frozenset(
    {
        "BEGIN",
        "COMMIT",
        "END",
        "ROLLBACK",
        "SAVEPOINT",
        "RELEASE",
        "VACUUM",
        "ATTACH",
        "DETACH",
    }
)

_NAME = re.compile(r"(?P<version>[0-9]{4})_(?P<label>[a-z0-9][a-z0-9_]*)\.sql")

#: A directory of migration files: a package resource, a path, or a string.
MigrationSource = Traversable | str | os.PathLike[str]

_CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    INTEGER PRIMARY KEY,
    name       TEXT NOT NULL,
    applied_at TEXT NOT NULL,
    checksum   TEXT NOT NULL DEFAULT ''
)
"""


@frozen
class Migration:
    """One migration file: its number, its file name and its SQL."""

    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        """SHA-256 of the file's text, recorded to notice later edits."""
        return hashlib.sha256(self.sql.encode("utf-8")).hexdigest()


@frozen
class MigrationResult:
    """What `migrate` did."""

    version: int
    """The schema version after migrating (0 for no migrations at all)."""
    applied: tuple[str, ...] = ()
    """File names applied now, in order."""
    backup: str | None = None
    """The backup written before applying them, if any."""
    changed: tuple[str, ...] = ()
    """Applied files whose text differs from what was applied: a warning."""


def parse_migration_name(filename: str) -> int | None:
    """
    The version number of a migration file name, or ``None`` if the file is
    not a migration at all (does not end in ``.sql``).

    A ``.sql`` file must be named ``NNNN_name.sql`` (four digits from 0001,
    then lower-case letters, digits and underscores): anything else raises
    `StoreError`, because a misnamed migration silently skipped would leave
    the schema behind.
    """
    if not filename.endswith(".sql"):
        return None
    match = _NAME.fullmatch(filename)
    if match is None:
        raise StoreError(
            f"migration file {filename!r} is misnamed: expected NNNN_name.sql "
            "(four digits, then lower-case letters, digits or underscores)",
            path=filename,
        )
    version = int(match["version"])
    if version == 0:
        raise StoreError(
            f"migration file {filename!r}: versions start at 0001", path=filename
        )
    return version


def _as_traversable(source: MigrationSource | None) -> Traversable:
    if source is None:
        return resources.files(MIGRATIONS_PACKAGE)
    if isinstance(source, str | os.PathLike):
        return Path(source)
    return source


def load_migrations(source: MigrationSource | None = None) -> tuple[Migration, ...]:
    """
    Read every migration in ``source`` (default: the shipped package), in
    version order. Files not ending in ``.sql`` are ignored; a misnamed
    ``.sql`` file, a duplicate version or a file with a forbidden statement
    raises `StoreError` naming the file.
    """
    root = _as_traversable(source)
    found: dict[int, Migration] = {}
    for entry in root.iterdir():
        if not entry.is_file():
            continue
        version = parse_migration_name(entry.name)
        if version is None:
            continue
        if version in found:
            raise StoreError(
                f"migrations {found[version].name} and {entry.name} share "
                f"version {version:04d}",
                path=entry.name,
            )
        migration = Migration(version, entry.name, entry.read_text(encoding="utf-8"))
        _check_statements(migration)
        found[version] = migration
    return tuple(found[v] for v in sorted(found))


def split_statements(sql: str) -> list[str]:
    """
    Split a script into complete SQL statements, as SQLite would read it.

    Semicolons inside strings, comments and trigger bodies do not split
    (`sqlite3.complete_statement` decides). Leading whitespace and comments
    are dropped from each statement, and so are empty statements and
    comment-only text; a trailing statement without a semicolon is kept.
    Raises ``ValueError`` for text containing a NUL character, which
    SQLite cannot read.
    """
    if "\x00" in sql:
        raise ValueError("SQL text contains a NUL character")
    statements: list[str] = []
    buffer = ""
    for piece in sql.split(";"):
        buffer += piece
        if sqlite3.complete_statement(buffer + ";"):
            start = _skip_comments(buffer)
            if start < len(buffer):
                statements.append(buffer[start:].rstrip() + ";")
            buffer = ""
        else:
            buffer += ";"
    # What is left never completed: either comments, or a last statement
    # without its semicolon (the loop added one too many).
    rest = buffer[:-1] if buffer.endswith(";") else buffer
    start = _skip_comments(rest)
    if start < len(rest):
        statements.append(rest[start:].rstrip())
    return statements


def _skip_comments(text: str) -> int:
    """The index of the first character that is not whitespace, ``;`` or comment."""
    i, n = 0, len(text)
    while i < n:
        if text[i].isspace() or text[i] == ";":
            i += 1
        elif text.startswith("--", i):
            end = text.find("\n", i)
            i = n if end < 0 else end + 1
        elif text.startswith("/*", i):
            end = text.find("*/", i + 2)
            i = n if end < 0 else end + 2
        else:
            return i
    return n


def first_keyword(statement: str) -> str | None:
    """
    The statement's first word in upper case, after leading whitespace and
    comments; ``None`` if there is no word (empty or comment-only text).
    """
    i = _skip_comments(statement)
    if i == len(statement):
        return None
    match = re.match(r"[A-Za-z_]+", statement[i:])
    return match.group(0).upper() if match else statement[i]


def _check_statements(migration: Migration) -> None:
    try:
        statements = split_statements(migration.sql)
    except ValueError as e:
        raise StoreError(f"migration {migration.name}: {e}", path=migration.name) from e
    for number, statement in enumerate(statements, 1):
        keyword = first_keyword(statement)
        if keyword in FORBIDDEN_STATEMENTS:
            raise StoreError(
                f"migration {migration.name}: statement {number} is {keyword}; "
                "each migration already runs in its own transaction, so it may "
                f"not contain {', '.join(sorted(FORBIDDEN_STATEMENTS))}",
                path=migration.name,
            )


def backup_path_for(store_path: str, version: int, now: float) -> str:
    """
    A free name for a backup of ``store_path`` at schema ``version``:
    ``<store>.backup-<YYYYmmddTHHMMSSZ>-v<version>``, with ``.1``, ``.2``...
    appended if that name is taken.
    """
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now))
    base = f"{store_path}.backup-{stamp}-v{version}"
    candidate, n = base, 0
    while os.path.lexists(candidate):
        n += 1
        candidate = f"{base}.{n}"
    return candidate


def migrate(
    conn: Any,
    migrations: MigrationSource | Sequence[Migration] | None = None,
    *,
    store_path: str | None = None,
    now: float | None = None,
    dialect: MigrationDialect = SQLITE,
) -> MigrationResult:
    """
    Bring the database on ``conn`` up to the newest migration.

    Each pending file runs in its own transaction and is recorded in
    ``schema_migrations`` in that same transaction; running `migrate` again
    changes nothing. The dialect's migration lock is held throughout (a
    PostgreSQL advisory lock: two nodes starting at once apply each file
    once; SQLite's file lock is already held). With ``store_path``, a
    non-empty database that has pending migrations is first copied where the
    engine can (SQLite's ``VACUUM INTO``). A database recording a version
    newer than any known file (written by a newer fjmcp) is refused.
    Failures raise `StoreError` naming the migration file; if the first
    pending file fails, the store is unchanged and its backup removed.

    :param migrations: a directory of files, or the loaded migrations;
        default the dialect's shipped ones (`migrations_for`).
    :param now: the wall-clock time for ``applied_at`` and the backup name.
    :param dialect: the engine's migration transaction, lock, checks and backup.
    """
    if migrations is None:
        loaded = load_migrations(migrations_for(dialect.name))
    elif isinstance(migrations, str | os.PathLike | Traversable):
        loaded = load_migrations(migrations)
    else:
        loaded = tuple(sorted(migrations, key=lambda m: m.version))
        for m in loaded:
            _check_statements(m)
    when = time.time() if now is None else now
    label = store_path or dialect.describe(conn)
    if dialect.in_transaction(conn):
        raise StoreError(
            f"store {label}: cannot migrate inside an open transaction",
            path=store_path,
        )
    # Autocommit mode: the runner issues BEGIN/COMMIT itself, so the driver
    # must not open or commit transactions behind its back.
    saved = dialect.enter_autocommit(conn)
    try:
        dialect.lock_migrations(conn)
        try:
            return _migrate_locked(
                dialect, conn, loaded, label=label, store_path=store_path, when=when
            )
        finally:
            dialect.unlock_migrations(conn)
    finally:
        dialect.leave_autocommit(conn, saved)


def _migrate_locked(
    dialect: MigrationDialect,
    conn: Any,
    loaded: tuple[Migration, ...],
    *,
    label: str,
    store_path: str | None,
    when: float,
) -> MigrationResult:
    non_empty = dialect.has_tables(conn)
    dialect.execute(conn, _CREATE_TABLE)
    applied = {
        int(version): (str(name), str(checksum))
        for version, name, checksum in dialect.execute(
            conn, "SELECT version, name, checksum FROM schema_migrations"
        ).fetchall()
    }
    current = max(applied, default=0)
    newest_known = max((m.version for m in loaded), default=0)
    if current > newest_known:
        raise StoreError(
            f"store {label} is at schema version {current} "
            f"({applied[current][0]}), newer than this fjmcp knows "
            f"(version {newest_known}): it was written by a newer fjmcp; "
            "upgrade fjmcp, or restore a backup",
            path=store_path,
        )
    pending = [m for m in loaded if m.version not in applied]
    changed = tuple(
        m.name
        for m in loaded
        if m.version in applied
        and applied[m.version][1]
        and applied[m.version][1] != m.checksum
    )
    backup = None
    if (
        pending
        and non_empty
        and store_path is not None
        and isinstance(dialect, OnlineBackup)
    ):
        backup = _backup(dialect, conn, store_path, current, when)
    foreign_keys = dialect.foreign_keys(conn, False)
    try:
        for count, migration in enumerate(pending):
            try:
                _apply(dialect, conn, migration, label, when)
            except BaseException:
                # Nothing committed yet: the store is exactly the backup,
                # which would otherwise pile up on every restart attempt.
                if count == 0 and backup is not None:
                    _remove_quietly(backup)
                raise
    finally:
        if foreign_keys:
            dialect.foreign_keys(conn, True)
    version = max([current, *(m.version for m in pending)])
    return MigrationResult(
        version=version,
        applied=tuple(m.name for m in pending),
        backup=backup,
        changed=changed,
    )


def _backup(
    dialect: OnlineBackup,
    conn: Any,
    store_path: str,
    version: int,
    now: float,
) -> str:
    target = backup_path_for(store_path, version, now)
    try:
        # Created first, empty and private: the store holds sealed tokens and
        # the engine (VACUUM INTO) would create it with the umask's permissions.
        os.close(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except OSError as e:
        raise wrap_os_error(target, e, doing="create the backup") from e
    try:
        dialect.backup_to(conn, target)
    except sqlite3.Error as e:
        _remove_quietly(target)
        raise StoreError(
            f"store {store_path}: backup to {target} before migrating failed, "
            f"so no migration was applied: {e}",
            path=target,
        ) from e
    return target


def _remove_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def _apply(
    dialect: MigrationDialect,
    conn: Any,
    migration: Migration,
    label: str,
    now: float,
) -> None:
    applied_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))
    dialect.begin_migration(conn)
    try:
        for number, statement in enumerate(split_statements(migration.sql), 1):
            try:
                dialect.execute_script(conn, statement)
            except dialect.error as e:
                raise StoreError(
                    f"store {label}: migration {migration.name} failed at "
                    f"statement {number} ({_summary(statement)}): {e}; "
                    "nothing of it was applied",
                    path=migration.name,
                ) from e
        violations = dialect.foreign_key_violations(conn)
        if violations:
            raise StoreError(
                f"store {label}: migration {migration.name} leaves "
                f"{len(violations)} foreign key violation(s), the first in "
                f"table {violations[0][0]}; nothing of it was applied",
                path=migration.name,
            )
        dialect.execute(
            conn,
            "INSERT INTO schema_migrations (version, name, applied_at, checksum)"
            " VALUES (?, ?, ?, ?)",
            (migration.version, migration.name, applied_at, migration.checksum),
        )
        dialect.execute(conn, "COMMIT")
    except BaseException:
        if dialect.in_transaction(conn):
            dialect.execute(conn, "ROLLBACK")
        raise


def _summary(statement: str, limit: int = 60) -> str:
    text = " ".join(statement.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
