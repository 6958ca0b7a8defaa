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
