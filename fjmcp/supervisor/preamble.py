# -*- test-case-name: tests.supervisor.test_preamble -*-
"""
The one shell a child starts in when it needs one: it moves itself into
its cgroups, lowers its rlimits, then execs the rest of the argv.

Each exec on the way to the server costs about half a millisecond of every
session start, so the two jobs share one ``/bin/sh`` instead of a shell for
the cgroups and ``prlimit`` for the limits. The child does both to itself
before the next program runs, so nothing of it escapes either (a parent
setting them from outside would race the child's first fork).

``ulimit`` with neither ``-H`` nor ``-S`` sets the soft and the hard limit,
as ``prlimit`` does; the flags used (``-n`` open files, ``-t`` CPU seconds,
``-v`` address space in KiB) mean the same in dash, bash and busybox sh.
RLIMIT_NPROC has no portable flag, so a child that needs it keeps
``prlimit`` (`fjmcp.supervisor.sandbox`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

__all__ = ["NAME", "SCRIPT", "SH", "preamble", "with_joins"]

SH: Final = "/bin/sh"
#: The shell's ``$0`` (what ``ps`` shows until the exec).
NAME: Final = "fjmcp-child"
#: Before ``--``: ``-n``/``-t``/``-v`` VALUE pairs for ``ulimit``, and join
#: files (a cgroup's ``tasks`` or ``cgroup.procs``), into which the shell
#: writes ``0``: itself. After it: the argv to exec.
SCRIPT: Final = (
    'while [ "$1" != -- ]; do case $1 in '
    '-?) ulimit "$1" "$2" || exit 125; shift ;; '
    '*) echo 0 > "$1" || exit 125 ;; esac; shift; done; shift; exec "$@"'
)
_HEAD: Final = (SH, "-c", SCRIPT, NAME)


def preamble(joins: Sequence[str] = (), limits: Sequence[str] = ()) -> list[str]:
    """The shell's argv up to ``--``: join ``joins``, then set ``limits``."""
    return [*_HEAD, *joins, *limits, "--"]


def with_joins(argv: Sequence[str], joins: Sequence[str]) -> list[str]:
    """``argv`` whose preamble also joins ``joins`` first: the preamble it
    starts with, or a new one put before it."""
    if tuple(argv[: len(_HEAD)]) == _HEAD:
        return [*_HEAD, *joins, *argv[len(_HEAD) :]]
    return [*preamble(joins), *argv]
