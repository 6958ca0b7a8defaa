# -*- test-case-name: tests.test_buildinfo -*-
"""Tests for `fjmcp.buildinfo`: stamp file, git checkout, unknown fallbacks."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from fjmcp.buildinfo import UNKNOWN, build_info, read_build_info, stamp


def test_stamp_file_wins(tmp_path: Path) -> None:
    """Values stamped at build time are reported as they are."""
    package = tmp_path / "fjmcp"
    package.mkdir()
    (package / "_build_info.json").write_text(
        json.dumps({"git_revision": "abc", "build_date": "2026-01-02T03:04:05Z"})
    )
    info = read_build_info(package, version="9.9")
    assert info.as_dict() == {
        "version": "9.9",
        "git_revision": "abc",
        "build_date": "2026-01-02T03:04:05Z",
    }


def test_unknown_without_stamp_or_git(tmp_path: Path) -> None:
    """Outside a checkout and without a stamp, revision and date are unknown."""
    package = tmp_path / "fjmcp"
    package.mkdir()
    (package / "_build_info.json").write_text("not json")
    info = read_build_info(package, version="1.0")
    assert (info.git_revision, info.build_date) == (UNKNOWN, UNKNOWN)


def test_checkout_reads_git() -> None:
    """Running from this checkout, the revision is a git commit id."""
    info = build_info()
    assert info.version != UNKNOWN
    revision = info.git_revision.removesuffix("-dirty")
    assert revision == UNKNOWN or len(revision) == 40


def test_version_is_the_installed_one() -> None:
    """The version reported (from fjmcp._version) is the one pip installed
    (pyproject.toml reads the same module)."""
    from importlib import metadata

    assert read_build_info().version == metadata.version("fjmcp")


def test_stamp_writes_file(tmp_path: Path) -> None:
    """stamp() records the build time in UTC and a revision."""
    package = tmp_path / "fjmcp"
    package.mkdir()
    target = stamp(package, now=datetime(2026, 5, 6, 7, 8, 9, tzinfo=UTC))
    data = json.loads(target.read_text())
    assert data["build_date"] == "2026-05-06T07:08:09Z"
    assert data["git_revision"] == UNKNOWN
