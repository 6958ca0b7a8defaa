# -*- test-case-name: tests.supervisor.test_preamble -*-
"""The preamble shell, run for real: joins, rlimits, then the exec."""

from __future__ import annotations

import subprocess
from pathlib import Path

from fjmcp.supervisor.preamble import NAME, SCRIPT, SH, preamble, with_joins

LIMITS_OF_SELF = (
    "grep",
    "-E",
    "^Max (open files|cpu time|address space)",
    "/proc/self/limits",
)


def _run(argv: list[str]) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(  # noqa: S603 - our own argv
        argv, capture_output=True, check=False, timeout=30
    )


def test_the_shell_joins_sets_limits_then_execs(tmp_path: Path) -> None:
    """``0`` (the shell itself) goes into each join file; each limit is set
    soft and hard; then the rest of the argv runs in the shell's place."""
    joins = [str(tmp_path / "a"), str(tmp_path / "b")]
    done = _run(
        [*preamble(joins, ["-n", "77", "-t", "9", "-v", "4194304"]), *LIMITS_OF_SELF]
    )
    assert done.returncode == 0, done.stderr
    assert [Path(j).read_text() for j in joins] == ["0\n", "0\n"]
    rows = {
        line[:24].strip(): line[24:].split()[:2]
        for line in done.stdout.decode().splitlines()
    }
    assert rows["Max cpu time"] == ["9", "9"]
    assert rows["Max open files"] == ["77", "77"]
    assert rows["Max address space"] == [str(4194304 * 1024)] * 2


def test_a_join_that_fails_stops_the_child(tmp_path: Path) -> None:
    """A join file that cannot be written: exit 125, nothing run."""
    done = _run([*preamble([str(tmp_path / "absent" / "tasks")]), "echo", "ran"])
    assert done.returncode == 125
    assert b"ran" not in done.stdout


def test_with_joins_shares_an_existing_preamble() -> None:
    """Joins go into the preamble the argv starts with (before its limits),
    or a new preamble is put in front."""
    limited = [*preamble(limits=["-n", "5"]), "/usr/bin/setpriv", "x"]
    assert with_joins(limited, ["/cg/tasks"]) == [
        SH,
        "-c",
        SCRIPT,
        NAME,
        "/cg/tasks",
        "-n",
        "5",
        "--",
        "/usr/bin/setpriv",
        "x",
    ]
    plain = ["/usr/bin/setpriv", "x"]
    assert with_joins(plain, ["/cg/tasks"]) == [*preamble(["/cg/tasks"]), *plain]
