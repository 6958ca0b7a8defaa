# -*- test-case-name: tests.test_architecture -*-
"""
Two of the three lines ``docs/architecture.md`` says not to cross, checked on
the source with `ast` and on the running interpreter, so they cannot drift:

1. the supervisor knows no HTTP (no ``twisted.web``, Klein or treq, directly
   or through what it imports);
3. production code never imports ``fjmcp.standin`` (only the stand-in's own
   package and the demo may, and the demo is itself loaded lazily by name).

The second line (the per-message path of ``/mcp`` never touches the store)
is a behaviour, tested in ``tests/web/test_mcp_hot_path.py``.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from tests.support import REPO, assert_python_succeeds

PACKAGE = REPO / "fjmcp"

HTTP_MODULES = ("twisted.web", "klein", "treq")
#: Modules allowed to import the stand-in (it is theirs to start).
STANDIN_USERS = ("fjmcp/standin/", "fjmcp/demo.py")


def imported_modules(path: Path) -> list[str]:
    """Every module an ``import`` or ``from ... import`` in ``path`` names."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append(node.module)
            found.extend(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def _matches(module: str, prefixes: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def test_imported_modules_sees_every_import_form(tmp_path: Path) -> None:
    """The scanner finds plain, from-, nested and function-level imports."""
    source = tmp_path / "m.py"
    source.write_text(
        "import os, treq\n"
        "from twisted import web\n"
        "def f():\n"
        "    from klein import Klein\n"
        "    import twisted.web.server\n",
        encoding="utf-8",
    )
    found = imported_modules(source)
    assert {"os", "treq", "twisted.web", "klein", "twisted.web.server"} <= set(found)
    assert [m for m in found if _matches(m, HTTP_MODULES)]


def test_supervisor_source_imports_no_http() -> None:
    """No module of ``fjmcp/supervisor`` imports twisted.web, Klein, treq, fjmcp.web."""
    files = sorted((PACKAGE / "supervisor").rglob("*.py"))
    assert files, "the supervisor package moved"
    bad = {
        str(path.relative_to(REPO)): m
        for path in files
        for m in imported_modules(path)
        if _matches(m, (*HTTP_MODULES, "fjmcp.web", "fjmcp.bridge"))
    }
    assert bad == {}


def test_supervisor_loads_no_http_transitively() -> None:
    """Importing the supervisor (and what it imports) loads no HTTP module."""
    code = (
        "import sys\n"
        "import fjmcp.supervisor.supervisor, fjmcp.supervisor.protocol\n"
        "import fjmcp.supervisor.environment\n"
        f"bad = [m for m in sys.modules if m.startswith({HTTP_MODULES!r})]\n"
        "print(bad)\n"
        "sys.exit(1 if bad else 0)\n"
    )
    assert_python_succeeds(code)


@pytest.mark.parametrize(
    "path",
    [
        p
        for p in sorted(PACKAGE.rglob("*.py"))
        if not str(p.relative_to(REPO)).startswith(STANDIN_USERS)
    ],
    ids=lambda p: str(p.relative_to(REPO)),
)
def test_production_code_never_imports_the_standin(path: Path) -> None:
    """Outside the stand-in and the demo, no module imports the stand-in or demo."""
    bad = [
        m
        for m in imported_modules(path)
        if _matches(m, ("fjmcp.standin", "fjmcp.demo"))
    ]
    assert bad == []


def test_sessions_source_imports_no_bridge_or_web() -> None:
    """
    No module of ``fjmcp/sessions`` imports ``fjmcp.bridge`` or ``fjmcp.web``
    (not even for type checking): sessions own children and know no MCP.
    """
    files = sorted((PACKAGE / "sessions").rglob("*.py"))
    assert files, "the sessions package moved"
    bad = {
        str(path.relative_to(REPO)): m
        for path in files
        for m in imported_modules(path)
        if _matches(m, ("fjmcp.bridge", "fjmcp.web"))
    }
    assert bad == {}


# --- all SQL lives in the store -------------------------------------------------

#: Where database drivers and SQL may appear: the store, and the stand-in
#: (a test double with no store of its own, outside the daemon).
SQL_OWNERS = ("fjmcp/store/", "fjmcp/standin/")
DRIVER_MODULES = ("sqlite3", "psycopg", "psycopg2", "psycopg_pool", "apsw")

#: The start of an SQL statement in a string literal. Each keyword needs the
#: word that follows it in SQL, so that "DELETE" (an HTTP method) or
#: "Update the page" in prose does not count; fjmcp writes SQL keywords in
#: capitals, so lower-case prose never matches.
SQL_STATEMENT = re.compile(
    r"\s*(SELECT\s+\S|INSERT\s+INTO\s|UPDATE\s+\w+\s+SET\s|DELETE\s+FROM\s"
    r"|CREATE\s+(UNIQUE\s+)?(TABLE|INDEX|VIEW|TRIGGER)\s|PRAGMA\s+\w"
    r"|ALTER\s+TABLE\s|DROP\s+(TABLE|INDEX)\s|VACUUM\b)"
)


def sql_literals(path: Path) -> list[str]:
    """The string literals (and f-string openings) in ``path`` that start SQL."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: list[str] = []
    for node in ast.walk(tree):
        text: str | None = None
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            text = node.value
        elif isinstance(node, ast.JoinedStr) and node.values:
            first = node.values[0]
            if isinstance(first, ast.Constant) and isinstance(first.value, str):
                text = first.value
        if text is not None and SQL_STATEMENT.match(text):
            found.append(text)
    return found


def _outside_store() -> list[Path]:
    return [
        path
        for path in sorted(PACKAGE.rglob("*.py"))
        if not str(path.relative_to(REPO)).startswith(SQL_OWNERS)
    ]


def test_sql_scanner_finds_statements_not_prose(tmp_path: Path) -> None:
    """The SQL scanner sees statements in literals and f-strings, not prose."""
    source = tmp_path / "m.py"
    source.write_text(
        "A = 'SELECT id FROM users WHERE login = ?'\n"
        "B = f'INSERT INTO t ({1}) VALUES (?)'\n"
        "C = ('UPDATE tokens SET revoked_at = ? '\n     'WHERE user_id = ?')\n"
        "D = 'delete from x'\n"
        "E = b'DELETE'\n"
        "F = 'DELETE'\n"
        "G = 'Select the client to update'\n"
        "H = '  PRAGMA foreign_keys = ON'\n",
        encoding="utf-8",
    )
    found = set(sql_literals(source))
    assert len(found) == 4
    assert "SELECT id FROM users WHERE login = ?" in found
    assert "INSERT INTO t (" in found
    assert any(f.startswith("UPDATE") for f in found)
    assert any("PRAGMA" in f for f in found)


def test_no_sql_outside_the_store() -> None:
    """No module outside ``fjmcp/store`` (and the stand-in) holds an SQL statement."""
    files = _outside_store()
    assert len(files) > 20, "the package moved"
    bad = {
        str(path.relative_to(REPO)): literals
        for path in files
        if (literals := sql_literals(path))
    }
    assert bad == {}


def test_sessions_load_no_bridge_transitively() -> None:
    """Importing the sessions package (and what it imports) loads no bridge or web."""
    code = (
        "import sys\n"
        "import fjmcp.sessions.registry, fjmcp.sessions.owner\n"
        "import fjmcp.sessions.handshake, fjmcp.sessions.respawn\n"
        "bad = [m for m in sys.modules\n"
        "       if m.startswith(('fjmcp.bridge', 'fjmcp.web'))]\n"
        "print(bad)\n"
        "sys.exit(1 if bad else 0)\n"
    )
    assert_python_succeeds(code)


def test_no_database_driver_outside_the_store() -> None:
    """No module outside ``fjmcp/store`` (and the stand-in) imports a DB driver."""
    bad = {
        str(path.relative_to(REPO)): m
        for path in _outside_store()
        for m in imported_modules(path)
        if _matches(m, DRIVER_MODULES)
    }
    assert bad == {}
