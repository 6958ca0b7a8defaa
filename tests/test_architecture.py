# -*- test-case-name: tests.test_architecture -*-
"""
The lines ``docs/architecture.md`` says not to cross, checked on the source
with `ast` and on the running interpreter, so they cannot drift:

1. the supervisor knows no HTTP (no ``twisted.web``, Klein or treq, directly
   or through what it imports);
3. production code never imports ``fjmcp.standin`` (only the stand-in's own
   package and the demo may, and the demo is itself loaded lazily by name);
4. all SQL and every database driver stay in ``fjmcp/store``;
5. ``fjmcp/sessions`` imports nothing of the bridge or the web;
6. no runtime import circle among fjmcp modules;
7. no component imports ``Config``;
8. a started broker that has served nothing has not imported what only
   some requests need (treq, PyJWT, the admin commands: each at its first
   use), nor what it never needs in that setup (importlib.metadata;
   prometheus_client with metrics off; the PostgreSQL driver on SQLite; the
   stand-in and test tools), keeping the idle daemon's memory down
   (``docs/benchmarks.md``, "Start-up and memory").

The second line (the per-message path of ``/mcp`` never touches the store)
is a behaviour, tested in ``tests/web/test_mcp_hot_path.py``.
"""

from __future__ import annotations

import ast
import re
import shutil
import tempfile
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


# --- no import circle among fjmcp modules ----------------------------------------


def _is_type_checking(test: ast.expr) -> bool:
    """``if TYPE_CHECKING:`` or ``if typing.TYPE_CHECKING:``."""
    if isinstance(test, ast.Name):
        return test.id == "TYPE_CHECKING"
    return isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"


def _module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _runtime_imports(tree: ast.AST, module: str, is_package: bool) -> set[str]:
    """
    Every module named by an import that runs (at import time or inside a
    function), resolving relative imports; ``if TYPE_CHECKING:`` blocks skipped.
    """
    found: set[str] = set()
    package = module if is_package else module.rpartition(".")[0]

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for statement in node.orelse:
                visit(statement)
            return
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def import_graph(root: Path) -> dict[str, set[str]]:
    """
    The runtime import graph of the package at ``root``: each module to the
    modules of the same package it imports. ``from pkg import name`` counts
    as importing ``pkg.name`` when that is a module, else ``pkg``.
    """
    modules = {_module_name(root, p): p for p in sorted(root.rglob("*.py"))}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        targets = _runtime_imports(tree, name, path.name == "__init__.py")
        graph[name] = {t for t in targets if t in modules and t != name}
    return graph


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected set of more than one module (Tarjan), sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                connect(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return sorted(cycles)


def _write_package(root: Path, files: dict[str, str]) -> Path:
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


def test_cycle_checker_finds_a_circle_through_a_function_import(
    tmp_path: Path,
) -> None:
    """A circle closed by an import inside a function is still a circle, and
    every module on it is named."""
    pkg = _write_package(
        tmp_path / "pkg",
        {
            "__init__.py": "",
            "a.py": "from pkg.b import thing\n",
            "b.py": "def thing():\n    from pkg.sub import c\n",
            "sub/__init__.py": "",
            "sub/c.py": "import pkg.a\n",
            "d.py": "from pkg import a\n",
        },
    )
    assert import_cycles(import_graph(pkg)) == [["pkg.a", "pkg.b", "pkg.sub.c"]]


def test_cycle_checker_resolves_relative_imports(tmp_path: Path) -> None:
    """``from . import x`` and ``from ..y import z`` are followed too."""
    pkg = _write_package(
        tmp_path / "pkg",
        {
            "__init__.py": "",
            "sub/__init__.py": "",
            "sub/x.py": "from ..y import z\n",
            "y.py": "from .sub import x\nz = 1\n",
        },
    )
    assert import_cycles(import_graph(pkg)) == [["pkg.sub.x", "pkg.y"]]


def test_cycle_checker_ignores_type_checking_imports(tmp_path: Path) -> None:
    """Imports under ``if TYPE_CHECKING:`` never run, so they close no circle;
    an ``else:`` branch of that ``if`` does run."""
    pkg = _write_package(
        tmp_path / "pkg",
        {
            "__init__.py": "",
            "a.py": "import pkg.b\n",
            "b.py": (
                "import typing\n"
                "from typing import TYPE_CHECKING\n"
                "if TYPE_CHECKING:\n    import pkg.a\n"
                "if typing.TYPE_CHECKING:\n    from pkg import a\n"
            ),
        },
    )
    assert import_cycles(import_graph(pkg)) == []
    (pkg / "b.py").write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    pass\nelse:\n    import pkg.a\n",
        encoding="utf-8",
    )
    assert import_cycles(import_graph(pkg)) == [["pkg.a", "pkg.b"]]


def test_no_import_circle_in_fjmcp() -> None:
    """No fjmcp module imports, at run time (``TYPE_CHECKING`` imports aside),
    one that imports it back, directly or through others."""
    assert import_cycles(import_graph(PACKAGE)) == []


#: The components: each takes its own settings (`fjmcp.settings` cuts them
#: out of the configuration), never the whole `Config`.
COMPONENTS = (
    "store",
    "oauth",
    "upstream",
    "supervisor",
    "sessions",
    "bridge",
    "maintenance",
    "web",
    "metrics",
    "audit",
)


def test_no_component_reads_the_whole_configuration() -> None:
    """No module of a component package imports ``fjmcp.config.Config``."""
    files = [p for c in COMPONENTS for p in sorted((PACKAGE / c).rglob("*.py"))]
    assert len(files) > 20, "the packages moved"
    bad = {
        str(path.relative_to(REPO)): m
        for path in files
        for m in imported_modules(path)
        if m == "fjmcp.config.Config"
    }
    assert bad == {}


#: What an idle broker (SQLite, metrics off) must not have imported yet.
NOT_AT_IDLE = (
    "treq",
    "twisted.web.client",
    "jwt",
    "importlib.metadata",
    "prometheus_client",
    "psycopg",
    "fjmcp.standin",
    "fjmcp.testing",
    "fjmcp.demo",
    "fjmcp.admin.commands",
    "fjmcp.admin.inventory",
    "fjmcp.admin.purge",
    "fjmcp.admin.revoke",
    "fjmcp.admin.rotation",
    "fjmcp.admin.tokens",
    "hypothesis",
    "pytest",
)


def test_an_idle_broker_has_not_imported_what_only_some_requests_need(
    tmp_path: Path,
) -> None:
    """
    A broker built and started as ``twistd fjmcp`` does (`fjmcp.tap`'s
    options and ``makeService``, the real reactor, a SQLite store, metrics
    off), once listening, has loaded none of `NOT_AT_IDLE`.
    """
    sockets = Path(tempfile.mkdtemp(prefix="fjmcp-arch-", dir="/tmp"))
    code = f"""
import json, sys
from pathlib import Path
from twisted.internet import reactor
from fjmcp.oauth.keys import prepend_new_key
from fjmcp.tap import Options, makeService

state = Path({str(tmp_path)!r})
prepend_new_key(state / "token-keys")
config = state / "fjmcp.toml"
config.write_text('''
listen = "tcp:0:interface=127.0.0.1"
public_url = "http://127.0.0.1:8080"
forgejo_url = "https://forgejo.invalid"
forgejo_client_id = "client"
forgejo_client_secret = "architecture-test-secret"
child_command = ["true"]
child_sandbox = "none"
store_path = "{tmp_path}/fjmcp.sqlite3"
token_keys_file = "{tmp_path}/token-keys"
admin_socket = "{sockets}/admin.sock"
log_level = "error"
''')
options = Options()
options.parseOptions(["--config", str(config)])
service = makeService(options)
outcome = {{}}

def listening(_):
    outcome["loaded"] = sorted(
        m for m in {NOT_AT_IDLE!r} if m in sys.modules
    )

def stop(_):
    reactor.callLater(0, reactor.stop)

service.ready.addCallback(listening).addErrback(
    lambda f: outcome.setdefault("failed", str(f.value))
).addBoth(lambda _: service.stopService()).addBoth(stop)
reactor.callWhenRunning(service.startService)
reactor.callLater(30, reactor.stop)
reactor.run()
print(json.dumps(outcome))
sys.exit(0 if outcome.get("loaded") == [] else 1)
"""
    try:
        assert_python_succeeds(code)
    finally:
        shutil.rmtree(sockets, ignore_errors=True)
