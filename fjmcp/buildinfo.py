# -*- test-case-name: tests.test_buildinfo -*-
"""
What build of fjmcp is running: version, git revision and build date.

``/healthz`` and ``fjmcp version`` report these so an operator can tell which
code answers. The version comes from `fjmcp._version` (which
``pyproject.toml`` reads too); the revision and date are stamped into
``fjmcp/_build_info.json`` when an image or wheel is built (``python -m
fjmcp.buildinfo stamp``). Running from a git checkout without a stamp, they
are read from ``git`` once; otherwise they are ``unknown``. Nothing here
runs per request: `build_info` is computed once and cached.
"""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any, Final

from attrs import asdict, frozen

from fjmcp._version import __version__

__all__ = ["UNKNOWN", "BuildInfo", "build_info", "read_build_info", "stamp"]

UNKNOWN: Final = "unknown"
_STAMP_NAME: Final = "_build_info.json"
_PACKAGE_DIR: Final = Path(__file__).resolve().parent


@frozen
class BuildInfo:
    """The identity of the running build; every field falls back to ``unknown``."""

    version: str = UNKNOWN
    git_revision: str = UNKNOWN
    build_date: str = UNKNOWN

    def as_dict(self) -> dict[str, str]:
        """The fields as a JSON-ready mapping."""
        return asdict(self)


def _from_stamp(path: Path) -> dict[str, str]:
    try:
        data: Any = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {
        k: v
        for k, v in data.items()
        if k in ("git_revision", "build_date") and isinstance(v, str) and v
    }


def _git(checkout: Path, *args: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", "-C", str(checkout), *args],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    out = done.stdout.strip()
    return out if done.returncode == 0 and out else None


def _from_git(checkout: Path) -> dict[str, str]:
    if not (checkout / ".git").exists():
        return {}
    found: dict[str, str] = {}
    revision = _git(checkout, "rev-parse", "HEAD")
    if revision:
        found["git_revision"] = revision
        dirty = _git(checkout, "status", "--porcelain", "--untracked-files=no")
        if dirty:
            found["git_revision"] += "-dirty"
    date = _git(checkout, "log", "-1", "--format=%cI")
    if date:
        found["build_date"] = date
    return found


def read_build_info(
    package_dir: Path = _PACKAGE_DIR, *, version: str | None = None
) -> BuildInfo:
    """
    Work out the build identity: the stamp file first, then git, then unknown.

    ``package_dir`` is the directory holding the ``fjmcp`` package; a checkout
    is recognised by a ``.git`` beside it.
    """
    fields = _from_stamp(package_dir / _STAMP_NAME)
    if len(fields) < 2:
        fields = {**_from_git(package_dir.parent), **fields}
    return BuildInfo(
        version=version if version is not None else __version__,
        git_revision=fields.get("git_revision", UNKNOWN),
        build_date=fields.get("build_date", UNKNOWN),
    )


@cache
def build_info() -> BuildInfo:
    """The running build's identity, computed once per process."""
    return read_build_info()


def stamp(package_dir: Path = _PACKAGE_DIR, *, now: datetime | None = None) -> Path:
    """
    Write ``_build_info.json`` for a build (image or wheel) from this checkout.

    The build date is the time of stamping, in UTC.
    """
    when = (now or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")
    revision = _from_git(package_dir.parent).get("git_revision", UNKNOWN)
    target = package_dir / _STAMP_NAME
    target.write_text(
        json.dumps({"git_revision": revision, "build_date": when}) + "\n",
        encoding="utf-8",
    )
    return target


if __name__ == "__main__":  # pragma: no cover - build tooling entry point
    if sys.argv[1:] == ["stamp"]:
        print(stamp())
    else:
        print(json.dumps(build_info().as_dict()))
