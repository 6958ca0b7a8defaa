# -*- test-case-name: tests.store.test_migrate -*-
"""Tests for numbered migrations: naming, splitting, transactions, backups."""

from __future__ import annotations

import os
import re
import sqlite3
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fjmcp.store.errors import StoreError
from fjmcp.store.migrate import (
    FORBIDDEN_STATEMENTS,
    Migration,
    backup_path_for,
    first_keyword,
    load_migrations,
    migrate,
    parse_migration_name,
    split_statements,
)
from fjmcp.store.pool import configure_connection
from tests.store.support import (
    V1,
    V2,
    recorded,
    table_names_in,
    tables,
    write_migrations,
)

# 2026-01-02T03:04:05Z
NOW = 1767323045.0


def _connect(path: str | Path = ":memory:") -> sqlite3.Connection:
    conn = sqlite3.connect(path)
    configure_connection(conn)
    return conn


@pytest.fixture
def conn() -> Iterator[sqlite3.Connection]:
    c = _connect()
    yield c
    c.close()


def _backups(path: Path) -> list[Path]:
    return sorted(path.parent.glob(path.name + ".backup-*"))


# --- file names ---------------------------------------------------------------


@given(
    version=st.integers(min_value=1, max_value=9999),
    label=st.from_regex(r"[a-z0-9][a-z0-9_]{0,30}", fullmatch=True),
)
def test_migration_names_round_trip(version: int, label: str) -> None:
    """Any well-formed ``NNNN_label.sql`` parses back to its number."""
    assert parse_migration_name(f"{version:04d}_{label}.sql") == version


@given(st.text(max_size=40))
def test_any_file_name_is_skipped_parsed_or_refused(name: str) -> None:
    """
    A name not ending in ``.sql`` is no migration (``None``); a ``.sql`` name
    either parses to a positive version matching the pattern or is refused
    with `StoreError` naming it; nothing else ever escapes.
    """
    try:
        version = parse_migration_name(name)
    except StoreError as e:
        assert name.endswith(".sql")
        assert repr(name) in str(e)
        return
    if version is None:
        assert not name.endswith(".sql")
    else:
        assert re.fullmatch(r"[0-9]{4}_[a-z0-9][a-z0-9_]*\.sql", name)
        assert version == int(name[:4]) >= 1


@pytest.mark.parametrize(
    "name",
    [
        "1_init.sql",
        "0001-init.sql",
        "0001_Init.sql",
        "0001_.sql",
        "00001_x.sql",
        "0000_zero.sql",
        "0001_init.SQL.sql",
        "init.sql",
    ],
)
def test_misnamed_sql_files_are_refused(name: str) -> None:
    """Misnamed ``.sql`` files raise instead of being skipped silently."""
    with pytest.raises(StoreError, match=re.escape(name)):
        parse_migration_name(name)


def test_load_ignores_other_files_and_sorts(tmp_path: Path) -> None:
    """`load_migrations` reads only ``.sql`` files, in version order."""
    write_migrations(
        tmp_path,
        {
            "0010_late.sql": "CREATE TABLE late (x);",
            "0002_early.sql": "CREATE TABLE early (x);",
            "__init__.py": "",
            "README.md": "not a migration",
        },
    )
    (tmp_path / "__pycache__").mkdir()
    loaded = load_migrations(tmp_path)
    assert [(m.version, m.name) for m in loaded] == [
        (2, "0002_early.sql"),
        (10, "0010_late.sql"),
    ]
    assert loaded[0].sql == "CREATE TABLE early (x);"


def test_duplicate_versions_are_refused(tmp_path: Path) -> None:
    """Two files with one version number name both files in the error."""
    write_migrations(tmp_path, {"0001_a.sql": "SELECT 1;", "0001_b.sql": "SELECT 2;"})
    with pytest.raises(
        StoreError, match=r"0001_a\.sql and 0001_b\.sql|0001_b\.sql and 0001_a\.sql"
    ):
        load_migrations(tmp_path)


def test_shipped_migrations_load_and_apply(conn: sqlite3.Connection) -> None:
    """The package's own migrations load, start at 0001 and apply cleanly."""
    loaded = load_migrations()
    assert loaded, "fjmcp.store.migrations ships no migration"
    assert loaded[0].version == 1
    result = migrate(conn)
    assert result.version == loaded[-1].version
    assert [v for v, _ in recorded(conn)] == [m.version for m in loaded]


# --- statements -----------------------------------------------------------------


_plain_text = st.text(
    alphabet=st.characters(exclude_categories=["Cs"], exclude_characters="\x00"),
    max_size=12,
)


@given(
    st.lists(_plain_text, min_size=1, max_size=6),
    st.sampled_from(["\n", " ", "\n-- c;\n", "/* ; */"]),
)
def test_split_keeps_semicolons_inside_strings(
    values: list[str], separator: str
) -> None:
    """
    Statements whose string literals contain ``;``, quotes or comment
    markers split exactly at the real statement ends, and each piece runs.
    """
    statements = [
        # Quoted by hand on purpose: the literal itself is under test.
        "INSERT INTO t VALUES ('" + v.replace("'", "''") + "');"  # noqa: S608
        for v in values
    ]
    script = "CREATE TABLE t (v TEXT);" + separator + separator.join(statements)
    pieces = split_statements(script)
    assert pieces == ["CREATE TABLE t (v TEXT);", *statements]
    c = sqlite3.connect(":memory:")
    try:
        for piece in pieces:
            c.execute(piece)
        assert [r[0] for r in c.execute("SELECT v FROM t ORDER BY rowid")] == values
    finally:
        c.close()


@given(st.text(max_size=200))
def test_split_never_raises(script: str) -> None:
    """
    Any text without NUL splits into statements that each start with a
    word or symbol, not a comment; text with NUL raises ``ValueError``.
    """
    if "\x00" in script:
        with pytest.raises(ValueError, match="NUL"):
            split_statements(script)
        return
    for piece in split_statements(script):
        assert first_keyword(piece) is not None
        assert not piece[0].isspace() and not piece.startswith(("--", "/*"))


def test_nul_in_a_migration_is_refused(tmp_path: Path) -> None:
    """A migration file containing NUL is refused, naming the file."""
    write_migrations(tmp_path, {"0001_nul.sql": "SELECT 1;\x00"})
    with pytest.raises(StoreError, match=r"0001_nul\.sql: .*NUL"):
        load_migrations(tmp_path)


def test_split_keeps_trigger_bodies_whole() -> None:
    """The semicolons inside ``CREATE TRIGGER ... BEGIN ... END`` do not split."""
    script = (
        "CREATE TABLE t (x);\n"
        "CREATE TRIGGER t_ins AFTER INSERT ON t BEGIN\n"
        "  UPDATE t SET x = x + 1 WHERE rowid = new.rowid;\n"
        "  SELECT 1;\n"
        "END;\n"
        "-- trailing comment only\n"
    )
    pieces = split_statements(script)
    assert len(pieces) == 2
    assert pieces[1].startswith("CREATE TRIGGER") and pieces[1].endswith("END;")


def test_split_keeps_a_last_statement_without_semicolon() -> None:
    """A final statement without ``;`` (even with a trailing comment) is kept."""
    assert split_statements("SELECT 1; SELECT 2 -- no semicolon") == [
        "SELECT 1;",
        "SELECT 2 -- no semicolon",
    ]
    assert split_statements("  -- nothing\n/* at all */ ;; ") == []


@pytest.mark.parametrize(
    ("text", "keyword"),
    [
        ("  -- c\n /* d */ create table x (y)", "CREATE"),
        ("/* unterminated", None),
        ("-- only", None),
        ("\n\tbegin transaction", "BEGIN"),
        ("(select 1)", "("),
    ],
)
def test_first_keyword_skips_comments(text: str, keyword: str | None) -> None:
    """`first_keyword` reads past whitespace and both kinds of comment."""
    assert first_keyword(text) == keyword


@pytest.mark.parametrize("keyword", sorted(FORBIDDEN_STATEMENTS))
def test_transaction_control_in_a_migration_is_refused(
    tmp_path: Path, keyword: str
) -> None:
    """A file managing transactions itself is refused before anything runs."""
    write_migrations(
        tmp_path, {"0001_sneaky.sql": f"CREATE TABLE a (x);\n{keyword} ;\n"}
    )
    with pytest.raises(
        StoreError, match=r"0001_sneaky\.sql: statement 2 is " + keyword
    ):
        load_migrations(tmp_path)


# --- applying -----------------------------------------------------------------


def test_fresh_database_gets_every_migration(
    conn: sqlite3.Connection, tmp_path: Path
) -> None:
    """A fresh database gets all files, each recorded with its name and time."""
    result = migrate(conn, write_migrations(tmp_path, V2), now=NOW)
    assert result.version == 2
    assert result.applied == ("0001_init.sql", "0002_grants.sql")
    assert result.backup is None
    assert tables(conn) == {"schema_migrations", "clients", "grants"}
    rows = conn.execute(
        "SELECT version, name, applied_at, checksum FROM schema_migrations"
    ).fetchall()
    assert [r[:3] for r in rows] == [
        (1, "0001_init.sql", "2026-01-02T03:04:05Z"),
        (2, "0002_grants.sql", "2026-01-02T03:04:05Z"),
    ]
    assert all(re.fullmatch(r"[0-9a-f]{64}", r[3]) for r in rows)


def test_migrating_twice_changes_nothing(
    conn: sqlite3.Connection, tmp_path: Path
) -> None:
    """A second run applies nothing and records nothing new."""
    source = write_migrations(tmp_path, V2)
    migrate(conn, source, now=NOW)
    again = migrate(conn, source, now=NOW + 60)
    assert again.applied == ()
    assert again.version == 2
    assert recorded(conn) == [(1, "0001_init.sql"), (2, "0002_grants.sql")]


def test_a_failing_migration_rolls_back_entirely(
    conn: sqlite3.Connection, tmp_path: Path
) -> None:
    """
    A file that fails half-way leaves none of its tables or rows, is not
    recorded, and the error names the file and the failing statement;
    earlier files stay applied, and the fixed file applies later.
    """
    source = write_migrations(
        tmp_path,
        {
            **V1,
            "0002_broken.sql": (
                "CREATE TABLE half (x);\n"
                "INSERT INTO clients VALUES ('c1', 'one');\n"
                "CREATE TABLE oops (x;\n"
            ),
        },
    )
    with pytest.raises(StoreError) as caught:
        migrate(conn, source)
    message = str(caught.value)
    assert "0002_broken.sql" in message
    assert "statement 3 (CREATE TABLE oops (x;)" in message
    assert caught.value.path == "0002_broken.sql"
    assert tables(conn) == {"schema_migrations", "clients"}
    assert conn.execute("SELECT count(*) FROM clients").fetchone() == (0,)
    assert recorded(conn) == [(1, "0001_init.sql")]
    assert not conn.in_transaction

    (tmp_path / "0002_broken.sql").write_text("CREATE TABLE half (x);")
    assert migrate(conn, source).applied == ("0002_broken.sql",)


def test_a_migration_breaking_foreign_keys_is_rolled_back(
    conn: sqlite3.Connection, tmp_path: Path
) -> None:
    """Foreign keys are checked before commit even though they are off meanwhile."""
    source = write_migrations(
        tmp_path,
        {**V2, "0003_orphan.sql": "INSERT INTO grants VALUES ('g', 'nobody');"},
    )
    with pytest.raises(StoreError, match=r"0003_orphan\.sql leaves 1 foreign key"):
        migrate(conn, source)
    assert conn.execute("SELECT count(*) FROM grants").fetchone() == (0,)
    assert recorded(conn)[-1] == (2, "0002_grants.sql")
    assert conn.execute("PRAGMA foreign_keys").fetchone() == (1,)


def test_table_rebuild_keeps_dependent_rows(
    conn: sqlite3.Connection, tmp_path: Path
) -> None:
    """
    SQLite's table-rebuild recipe (new table, copy, drop, rename) does not
    cascade into the rows of referencing tables: foreign keys are off while
    a file runs, and back on afterwards.
    """
    source = write_migrations(tmp_path, V2)
    migrate(conn, source)
    conn.execute("INSERT INTO clients VALUES ('c1', 'one')")
    conn.execute("INSERT INTO grants VALUES ('g1', 'c1')")
    write_migrations(
        tmp_path,
        {
            "0003_rebuild_clients.sql": (
                "CREATE TABLE clients_new (id TEXT PRIMARY KEY, name TEXT NOT NULL"
                " DEFAULT '', created REAL NOT NULL DEFAULT 0);\n"
                "INSERT INTO clients_new (id, name) SELECT id, name FROM clients;\n"
                "DROP TABLE clients;\n"
                "ALTER TABLE clients_new RENAME TO clients;\n"
            )
        },
    )
    migrate(conn, source)
    assert conn.execute("SELECT code, client_id FROM grants").fetchall() == [
        ("g1", "c1")
    ]
    assert conn.execute("PRAGMA foreign_keys").fetchone() == (1,)
    with pytest.raises(sqlite3.IntegrityError):
        conn.execute("INSERT INTO grants VALUES ('g2', 'nobody')")


def test_a_newer_schema_is_refused(conn: sqlite3.Connection, tmp_path: Path) -> None:
    """A store written by a newer fjmcp (unknown higher version) is refused."""
    migrate(conn, write_migrations(tmp_path / "new", V2))
    with pytest.raises(
        StoreError,
        match=r"schema version 2 .*newer than this fjmcp knows \(version 1\)",
    ):
        migrate(conn, write_migrations(tmp_path / "old", V1))


def test_edited_applied_migrations_are_reported(
    conn: sqlite3.Connection, tmp_path: Path
) -> None:
    """A file edited after it was applied is reported, not re-applied."""
    source = write_migrations(tmp_path, V1)
    migrate(conn, source)
    (tmp_path / "0001_init.sql").write_text(
        "CREATE TABLE clients (id TEXT);\n-- edited"
    )
    result = migrate(conn, source)
    assert result.applied == ()
    assert result.changed == ("0001_init.sql",)


def test_loaded_migrations_can_be_passed_directly(conn: sqlite3.Connection) -> None:
    """`migrate` takes `Migration` values as well as a directory."""
    result = migrate(conn, [Migration(1, "0001_x.sql", "CREATE TABLE x (y);")])
    assert result.applied == ("0001_x.sql",)
    assert "x" in tables(conn)


def test_migrate_refuses_an_open_transaction(
    conn: sqlite3.Connection, tmp_path: Path
) -> None:
    """Migrating inside a caller's transaction would break atomicity: refused."""
    conn.execute("BEGIN")
    with pytest.raises(StoreError, match="open transaction"):
        migrate(conn, write_migrations(tmp_path, V1))


# --- backups --------------------------------------------------------------------


def test_backup_before_upgrading_an_existing_store(tmp_path: Path) -> None:
    """
    New migrations on an existing, non-empty store are preceded by a private
    ``VACUUM INTO`` copy named after the time and the version it holds.
    """
    db = tmp_path / "fjmcp.db"
    source = write_migrations(tmp_path / "m", V1)
    c = _connect(db)
    try:
        migrate(c, source, store_path=str(db), now=NOW)
        c.execute("INSERT INTO clients VALUES ('c1', 'one')")
        assert _backups(db) == []
        write_migrations(tmp_path / "m", V2)
        result = migrate(c, source, store_path=str(db), now=NOW + 3600)
    finally:
        c.close()
    expected = tmp_path / "fjmcp.db.backup-20260102T040405Z-v1"
    assert result.backup == str(expected)
    assert _backups(db) == [expected]
    assert stat.S_IMODE(os.stat(expected).st_mode) == 0o600
    assert table_names_in(expected) == {"schema_migrations", "clients"}
    copy = sqlite3.connect(expected)
    try:
        assert copy.execute("SELECT id FROM clients").fetchall() == [("c1",)]
    finally:
        copy.close()


def test_no_backup_for_a_fresh_store_or_without_changes(tmp_path: Path) -> None:
    """A fresh (empty) store and a store with nothing pending get no backup."""
    db = tmp_path / "fjmcp.db"
    source = write_migrations(tmp_path / "m", V2)
    c = _connect(db)
    try:
        assert migrate(c, source, store_path=str(db), now=NOW).backup is None
        assert migrate(c, source, store_path=str(db), now=NOW).backup is None
    finally:
        c.close()
    assert _backups(db) == []


def test_backup_is_dropped_when_the_first_new_migration_fails(tmp_path: Path) -> None:
    """
    When nothing could be applied, the store equals its backup, so the
    backup is removed: a restart loop must not fill the disk with copies.
    """
    db = tmp_path / "fjmcp.db"
    source = write_migrations(tmp_path / "m", V1)
    c = _connect(db)
    try:
        migrate(c, source, store_path=str(db), now=NOW)
        write_migrations(tmp_path / "m", {"0002_bad.sql": "CREATE TABLE (;"})
        with pytest.raises(StoreError, match=r"0002_bad\.sql"):
            migrate(c, source, store_path=str(db), now=NOW)
        assert _backups(db) == []
        # A later failure, after an earlier file committed, keeps the backup.
        write_migrations(
            tmp_path / "m",
            {"0002_bad.sql": "CREATE TABLE good (x);", "0003_bad.sql": "nope;"},
        )
        with pytest.raises(StoreError, match=r"0003_bad\.sql"):
            migrate(c, source, store_path=str(db), now=NOW)
        assert len(_backups(db)) == 1
        assert recorded(c)[-1] == (2, "0002_bad.sql")
    finally:
        c.close()


def test_backup_names_never_collide(tmp_path: Path) -> None:
    """Two backups in the same second get distinct names."""
    store = str(tmp_path / "s.db")
    first = backup_path_for(store, 3, NOW)
    assert first == store + ".backup-20260102T030405Z-v3"
    Path(first).touch()
    second = backup_path_for(store, 3, NOW)
    assert second == first + ".1"
    Path(second).touch()
    assert backup_path_for(store, 3, NOW) == first + ".2"
