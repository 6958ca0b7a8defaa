# -*- test-case-name: tests.supervisor.test_cgroups -*-
"""
A cgroup per child, where the broker may make one: ``pids.max`` (and the
memory limit) bound a child's whole tree, whatever its uid.

``RLIMIT_NPROC`` counts processes per uid and does not bind uid 0, so a
fork bomb of a child that shares the broker's uid (or runs as root in a
user namespace) is bounded here instead. The child joins its cgroup itself,
race-free, before anything else runs: its preamble shell
(`fjmcp.supervisor.preamble`, shared with the rlimits) writes ``0``
(itself) into each cgroup's join file, then execs the rest. Where no
controller is writable (an unprivileged broker, a read-only
``/sys/fs/cgroup``) nothing is done and the PID namespace, per-user uids
or systemd's ``TasksMax`` are what remain.

**Why ``tasks`` on cgroup v1.** Moving a whole process (``cgroup.procs``)
takes the kernel's global threadgroup lock for writing, which waits for an
RCU grace period: 5-15 ms per join on an otherwise idle machine, paid by
every session start. A single-threaded process moving only itself
(``0`` into v1's ``tasks``) skips that lock; the ``sh`` is single-threaded,
so the move is the same. cgroup v2 has no per-thread file outside
threaded subtrees, so there the join stays on ``cgroup.procs``.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Final

from attrs import define, field, frozen
from twisted.logger import Logger

from fjmcp.config import ChildLimits
from fjmcp.supervisor.leftovers import read_stat

__all__ = ["CgroupLimiter", "ChildCgroup", "find_limiter"]

#: The join file of a v1 hierarchy (per thread: no global lock) and of v2.
V1_JOIN: Final = "tasks"
V2_JOIN: Final = "cgroup.procs"
CGROUP_ROOT: Final = Path("/sys/fs/cgroup")


@frozen
class ChildCgroup:
    """The cgroup directories of one child."""

    directories: tuple[Path, ...]
    join_file: str = V2_JOIN

    def joins(self) -> list[str]:
        """The files the child writes itself into (its preamble's joins)."""
        return [str(d / self.join_file) for d in self.directories]


def broker_tag(pid: int | None = None, proc: Path = Path("/proc")) -> str:
    """
    ``<pid>.<start time>`` of a broker: the prefix of its children's
    cgroups, so that a sweep never touches those of a broker still running
    (several may share one machine) and a reused pid is not taken for one.
    """
    pid = os.getpid() if pid is None else pid
    stat = read_stat(pid, proc)
    return f"{pid}.{stat.start if stat is not None else 0}"


def _owner_alive(name: str, proc: Path) -> bool:
    """Whether the broker that named this cgroup still runs."""
    owner = name.split("-", 1)[0]
    pid = owner.partition(".")[0]
    if not pid.isdigit():
        return False
    return broker_tag(int(pid), proc) == owner


@define
class CgroupLimiter:
    """
    Makes and removes per-child cgroups under ``parents`` (one per
    controller hierarchy: v1 ``pids``/``memory``, or the v2 tree), named
    ``<broker pid>.<broker start>-<serial>``.
    """

    log = Logger()

    pids_parent: Path | None
    memory_parent: Path | None
    memory_file: str
    limits: ChildLimits
    join_file: str = V2_JOIN
    kill: Callable[[int, int], None] = os.kill
    proc: Path = Path("/proc")
    owner: str = field(factory=broker_tag)

    def create(self, serial: int) -> ChildCgroup | None:
        """A cgroup for this broker's child number ``serial``; None if none
        could be made."""
        name = f"{self.owner}-{serial}"
        dirs: list[Path] = []
        try:
            if self.pids_parent is not None and self.limits.processes:
                d = self.pids_parent / name
                d.mkdir(exist_ok=True)
                (d / "pids.max").write_text(str(self.limits.processes))
                dirs.append(d)
            if self.memory_parent is not None and self.limits.memory:
                d = self.memory_parent / name
                if d not in dirs:
                    d.mkdir(exist_ok=True)
                    dirs.append(d)
                (d / self.memory_file).write_text(str(self.limits.memory))
        except OSError as e:
            self.log.warn("cannot make cgroup {name}: {error}", name=name, error=e)
            self.remove(ChildCgroup(tuple(dirs)))
            return None
        return ChildCgroup(tuple(dirs), self.join_file) if dirs else None

    def remove(self, cgroup: ChildCgroup) -> int:
        """Kill what is still in the child's cgroups, then remove them; how
        many processes were killed."""
        killed = 0
        for d in cgroup.directories:
            try:
                pids = (d / "cgroup.procs").read_text().split()
            except OSError:
                pids = []
            for pid in pids:
                try:
                    self.kill(int(pid), signal.SIGKILL)
                    killed += 1
                except (OSError, ValueError):
                    pass
            try:
                d.rmdir()
            except OSError:
                pass  # still draining; swept at the next start
        return killed

    def sweep(self) -> None:
        """
        Empty and remove the cgroups brokers that no longer run left (never
        those of a broker still running, this one included).
        """
        parents = {p for p in (self.pids_parent, self.memory_parent) if p is not None}
        for parent in parents:
            for d in parent.glob("*"):
                if not d.is_dir() or _owner_alive(d.name, self.proc):
                    continue
                if self.remove(ChildCgroup((d,))):
                    self.log.warn(
                        "killed the processes a previous broker's child left "
                        "in cgroup {path}",
                        path=str(d),
                    )


def _writable(path: Path) -> bool:
    return path.is_dir() and os.access(path, os.W_OK)


def find_limiter(
    limits: ChildLimits, root: Path = CGROUP_ROOT, name: str = "fjmcp"
) -> CgroupLimiter | None:
    """
    The limiter for this machine: a ``fjmcp`` group under the v2 tree or the
    v1 ``pids``/``memory`` hierarchies, where the broker may write; None
    where it may not (or when no limit asks for one).
    """
    if not (limits.processes or limits.memory):
        return None
    v2 = (root / "cgroup.controllers").exists()
    if v2:
        controllers = (root / "cgroup.controllers").read_text().split()
        parent = _make(root / name, ("+pids", "+memory"), root)
        if parent is None:
            return None
        return CgroupLimiter(
            pids_parent=parent if "pids" in controllers else None,
            memory_parent=parent if "memory" in controllers else None,
            memory_file="memory.max",
            limits=limits,
        )
    pids = _make(root / "pids" / name, (), None) if _writable(root / "pids") else None
    memory = (
        _make(root / "memory" / name, (), None) if _writable(root / "memory") else None
    )
    if pids is None and memory is None:
        return None
    return CgroupLimiter(
        pids_parent=pids,
        memory_parent=memory,
        memory_file="memory.limit_in_bytes",
        limits=limits,
        join_file=V1_JOIN,
    )


def _make(path: Path, enable: tuple[str, ...], root: Path | None) -> Path | None:
    try:
        path.mkdir(exist_ok=True)
        if root is not None and enable:
            (root / "cgroup.subtree_control").write_text(" ".join(enable))
            (path / "cgroup.subtree_control").write_text(" ".join(enable))
    except OSError:
        return None
    return path
