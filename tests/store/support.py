# -*- test-case-name: tests.store -*-
"""Helpers for the store tests: throwaway migration directories, table lists."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path


def write_migrations(directory: Path, files: dict[str, str]) -> Path:
    """Write ``files`` (name -> SQL) into ``directory`` and return it."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, sql in files.items():
        (directory / name).write_text(sql, encoding="utf-8")
    return directory


def tables(conn: sqlite3.Connection) -> set[str]:
    """The names of the ordinary tables in ``conn``'s main database."""
    return {
        row[0]
        for row in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table'"
            " AND name NOT LIKE 'sqlite_%'"
        )
    }


def table_names_in(path: str | Path) -> set[str]:
    """The tables of the database file at ``path``, read with a throwaway connection."""
    conn = sqlite3.connect(path)
    try:
        return tables(conn)
    finally:
        conn.close()


def recorded(conn: sqlite3.Connection) -> list[tuple[int, str]]:
    """The ``(version, name)`` rows of ``schema_migrations``, in order."""
    return [
        (int(v), str(n))
        for v, n in conn.execute(
            "SELECT version, name FROM schema_migrations ORDER BY version"
        )
    ]


def open_fds() -> set[str]:
    """The file descriptors this process holds, with their targets."""
    fds = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            fds.add(f"{fd}->{os.readlink(f'/proc/self/fd/{fd}')}")
        except OSError:  # the directory's own descriptor, closed meanwhile
            pass
    return fds


V1 = {"0001_init.sql": "CREATE TABLE clients (id TEXT PRIMARY KEY, name TEXT);\n"}
V2 = {
    **V1,
    "0002_grants.sql": (
        "-- grants belong to clients\n"
        "CREATE TABLE grants (\n"
        "    code TEXT PRIMARY KEY,\n"
        "    client_id TEXT NOT NULL REFERENCES clients (id) ON DELETE CASCADE\n"
        ");\n"
        "CREATE INDEX grants_by_client ON grants (client_id);\n"
    ),
}
