# -*- test-case-name: tests.test_conventions -*-
"""
The tree's written conventions, checked with `ast` so they cannot drift.

``docs/architecture.md`` asks that every module start with a
``# -*- test-case-name: ... -*-`` line (after an optional shebang) and a
docstring saying why it exists, and that every test function carry a
docstring stating the behaviour it checks. ruff covers public functions and
methods; these tests cover what ruff does not: the header line, and test
functions (``D103`` is off for ``tests/``).
"""

from __future__ import annotations

import ast
import re
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

#: Top-level directories whose Python files are ours.
ROOTS = ("fjmcp", "twisted/plugins", "tests", "bench")

#: Directories never walked (third-party or generated).
SKIP_DIRS = frozenset({"node_modules", "__pycache__", ".venv", ".venv-sdk"})

HEADER = re.compile(
    r"^# -\*- test-case-name: [A-Za-z_][\w.]*(, *[A-Za-z_][\w.]*)* -\*-$"
)


def python_files(repo: Path = REPO) -> list[Path]:
    """Every ``.py`` file of the project, outside third-party directories."""
    found: list[Path] = []
    for root in ROOTS:
        base = repo / root
        if not base.is_dir():
            continue
        for path in sorted(base.rglob("*.py")):
            if SKIP_DIRS.isdisjoint(path.relative_to(repo).parts):
                found.append(path)
    return found


def header_problems(path: Path, text: str) -> list[str]:
    """What is wrong with a module's header line and docstring (empty: nothing)."""
    problems = []
    lines = text.splitlines()
    if lines and lines[0].startswith("#!"):
        lines = lines[1:]
    if not lines or not HEADER.match(lines[0]):
        problems.append(f"{path}: first line is not '# -*- test-case-name: ... -*-'")
    try:
        tree = ast.parse(text, filename=str(path))
    except SyntaxError as e:
        return [*problems, f"{path}: does not parse: {e}"]
    doc = ast.get_docstring(tree)
    if not doc or not doc.strip():
        problems.append(f"{path}: no module docstring")
    return problems


def missing_test_docstrings(path: Path, text: str) -> list[str]:
    """Test functions (``test_*``, also in classes) that have no docstring."""
    tree = ast.parse(text, filename=str(path))
    problems = []
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and (
            node.name.startswith("test_")
        ):
            doc = ast.get_docstring(node)
            if not doc or not doc.strip():
                problems.append(f"{path}:{node.lineno}: {node.name} has no docstring")
    return problems


def _is_test_module(path: Path) -> bool:
    return path.name.startswith("test_") and "tests" in path.parts


def test_the_walk_sees_the_tree() -> None:
    """The file walk finds the package, the plugin and the tests (not nothing)."""
    files = {p.relative_to(REPO).as_posix() for p in python_files()}
    assert "fjmcp/config.py" in files
    assert "twisted/plugins/fjmcp_plugin.py" in files
    assert "tests/test_conventions.py" in files
    assert not any("node_modules" in f for f in files)


def test_checks_catch_what_they_should(tmp_path: Path) -> None:
    """The checkers flag a missing header, docstring and test docstring."""
    bad = "import os\n\n\ndef test_x():\n    pass\n\n\nasync def test_y():\n    pass\n"
    path = tmp_path / "test_bad.py"
    assert len(header_problems(path, bad)) == 2
    missing = missing_test_docstrings(path, bad)
    assert [m.split(": ")[-1] for m in missing] == [
        "test_x has no docstring",
        "test_y has no docstring",
    ]
    good = (
        "#!/usr/bin/env python3\n"
        "# -*- test-case-name: tests.test_a, tests.test_b -*-\n"
        '"""Why."""\n\n\nclass TestA:\n    def test_z(self):\n        """Does."""\n'
    )
    assert header_problems(path, good) == []
    assert missing_test_docstrings(path, good) == []
    assert header_problems(path, '"""Doc but no header."""\n') != []


@pytest.mark.parametrize(
    "path", python_files(), ids=lambda p: p.relative_to(REPO).as_posix()
)
def test_module_header_and_docstring(path: Path) -> None:
    """Each module starts with its test-case-name line and has a docstring."""
    assert header_problems(path, path.read_text(encoding="utf-8")) == []


@pytest.mark.parametrize(
    "path",
    [p for p in python_files() if _is_test_module(p)],
    ids=lambda p: p.relative_to(REPO).as_posix(),
)
def test_every_test_function_has_a_docstring(path: Path) -> None:
    """Each test function states, in its docstring, the behaviour it checks."""
    assert missing_test_docstrings(path, path.read_text(encoding="utf-8")) == []


def _requirement_name(requirement: str) -> str:
    name = re.split(r"[\s<>=!~;\[]", requirement.strip(), maxsplit=1)[0]
    return name.lower()


def test_every_dependency_is_explained_in_deps_md() -> None:
    """docs/deps.md names every dependency of pyproject.toml (with its reason)."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    names = {_requirement_name(r) for r in project["build-system"]["requires"]}
    names |= {_requirement_name(r) for r in project["project"]["dependencies"]}
    for extra in project["project"]["optional-dependencies"].values():
        names |= {_requirement_name(r) for r in extra}
    assert {"twisted", "klein", "pytest", "setuptools"} <= names
    text = (REPO / "docs" / "deps.md").read_text(encoding="utf-8").lower()
    listed = set(re.findall(r"`([a-z0-9_.@/-]+)(?:\[[a-z,]+\])?(?:==[^`]*)?`", text))
    assert sorted(names - listed) == []
