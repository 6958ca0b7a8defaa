# -*- test-case-name: tests.test_packaging -*-
"""The wheel's explicit package list names every package of fjmcp."""

from __future__ import annotations

import tomllib

from tests.support import REPO


def test_every_fjmcp_package_is_in_the_wheel() -> None:
    """A new subpackage missing from pyproject's list would be left out of
    the wheel and the image (only an editable checkout would still work)."""
    listed = set(
        tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"][
            "packages"
        ]
    )
    found = {
        ".".join(init.parent.relative_to(REPO).parts)
        for init in (REPO / "fjmcp").rglob("__init__.py")
    }
    assert found - listed == set()
