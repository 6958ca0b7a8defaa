# -*- test-case-name: tests.supervisor.test_leftovers -*-
"""
Children a crashed broker left behind: recorded while alive, stopped at the
next start.

The parent-death signal (``setpriv --pdeathsig``, ``bwrap
--die-with-parent``) ends a child when its broker dies, but not a
descendant that left the child's process (it stays in the child's process
group and session). So every child is recorded under the runtime directory
as ``<pid>.json``: pid, process group, start time (field 22 of
``/proc/<pid>/stat``, in clock ticks since boot) and the boot id. A
restarted broker reads the records and, for each, kills what is provably
the same group: same boot, and the leader's start time unchanged (a reused
pid has another) or, the leader gone, members of that session that started
no earlier than it. A record is removed once its child is reaped.
"""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Final

from attrs import define, frozen
from twisted.logger import Logger

__all__ = [
    "ChildLedger",
    "ChildRecord",
    "ProcStat",
    "boot_id",
    "read_stat",
]

BOOT_ID_PATH: Final = "/proc/sys/kernel/random/boot_id"


@frozen
class ProcStat:
    """The fields of ``/proc/<pid>/stat`` that identify a process."""

    pid: int
    pgid: int
    sid: int
    start: int


def parse_stat(text: str) -> ProcStat:
    """Parse one ``/proc/<pid>/stat`` line (the command may hold spaces and ``)``)."""
    pid = int(text[: text.index(" ")])
    rest = text[text.rindex(")") + 2 :].split()
    # rest[0] is field 3 (state): pgrp is field 5, session 6, starttime 22
    return ProcStat(pid=pid, pgid=int(rest[2]), sid=int(rest[3]), start=int(rest[19]))


def read_stat(pid: int, proc: Path = Path("/proc")) -> ProcStat | None:
    """The stat of ``pid``, or None once it is gone."""
    try:
        fd = os.open(f"{proc}/{pid}/stat", os.O_RDONLY | os.O_CLOEXEC)
        try:
            text = os.read(fd, 4096).decode("utf-8", "replace")
        finally:
            os.close(fd)
        return parse_stat(text)
    except (OSError, ValueError, IndexError):
        return None


def boot_id(path: str = BOOT_ID_PATH) -> str:
    """This boot's id (a reboot makes every record stale)."""
    try:
        return Path(path).read_text().strip()
    except OSError:
        return ""


@frozen
class ChildRecord:
    """One live child, as written under the runtime directory."""

    pid: int
    pgid: int
    start: int
    boot: str
    label: str

    def to_json(self) -> str:
        """The record's file content."""
        return json.dumps(
            {
                "pid": self.pid,
                "pgid": self.pgid,
                "start": self.start,
                "boot": self.boot,
                "label": self.label,
            }
        )

    @classmethod
    def from_json(cls, text: str) -> ChildRecord:
        """Read a record back; `ValueError` if it is not one."""
        d = json.loads(text)
        return cls(
            pid=int(d["pid"]),
            pgid=int(d["pgid"]),
            start=int(d["start"]),
            boot=str(d["boot"]),
            label=str(d["label"]),
        )


def _all_stats(proc: Path) -> list[ProcStat]:
    out = []
    for entry in proc.iterdir():
        if entry.name.isdigit():
            stat = read_stat(int(entry.name), proc)
            if stat is not None:
                out.append(stat)
    return out


def members(
    record: ChildRecord, stats: list[ProcStat], current_boot: str
) -> list[ProcStat]:
    """
    The live processes that are provably the recorded child or its
    descendants (pure, for tests): nothing across a reboot, nothing when the
    leader's pid now belongs to a newer process.
    """
    if record.boot != current_boot:
        return []
    leader = next((s for s in stats if s.pid == record.pid), None)
    if leader is not None and leader.start != record.start:
        return []  # the pid was reused: not ours, nor is its group
    return [
        s
        for s in stats
        if (s.pgid == record.pgid or s.sid == record.pgid) and s.start >= record.start
    ]


@define
class ChildLedger:
    """
    The records of this broker's live children under ``directory``.

    ``kill`` is injected so the tests need not signal real processes.
    """

    log = Logger()

    directory: Path
    proc: Path = Path("/proc")
    boot: str = ""
    kill: Callable[[int, int], None] = os.kill

    def __attrs_post_init__(self) -> None:
        if not self.boot:
            self.boot = boot_id()

    def prepare(self) -> None:
        """Create the directory, private to the broker."""
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(self.directory, 0o700)

    def record(self, pid: int, label: str, *, leads_group: bool = False) -> None:
        """
        Write the record of a just-started child. ``leads_group``: it is
        about to lead its own process group (``setsid``), which it may not
        have done yet, so its group is its pid.
        """
        stat = read_stat(pid, self.proc)
        if stat is None:
            return  # already gone: nothing can be left behind
        pgid = pid if leads_group else stat.pgid
        rec = ChildRecord(pid, pgid, stat.start, self.boot, label)
        # Plain descriptor calls: this runs at every session start.
        tmp = f"{self.directory}/.{pid}.tmp"
        try:
            fd = os.open(
                tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600
            )
            try:
                os.write(fd, rec.to_json().encode())
            finally:
                os.close(fd)
            os.replace(tmp, f"{self.directory}/{pid}.json")
        except OSError as e:
            self.log.warn(
                "cannot record child {pid}: {error}", pid=pid, error=e.strerror
            )

    def forget(self, pid: int) -> None:
        """Remove the record of a reaped child."""
        try:
            os.unlink(f"{self.directory}/{pid}.json")
        except FileNotFoundError:
            pass

    def sweep(self) -> list[ChildRecord]:
        """
        Stop what earlier runs left (SIGKILL to each provable member) and
        remove every record; returns the records that had live processes.
        """
        found: list[ChildRecord] = []
        try:
            files = sorted(self.directory.glob("*.json"))
        except OSError:
            return found
        stats = _all_stats(self.proc) if files else []
        for path in files:
            try:
                rec = ChildRecord.from_json(path.read_text())
            except (OSError, ValueError, KeyError):
                path.unlink(missing_ok=True)
                continue
            alive = [s for s in members(rec, stats, self.boot) if s.pid != os.getpid()]
            if alive:
                found.append(rec)
                self.log.warn(
                    "a previous broker left child {label} (pid {pid}) running "
                    "with {count} process(es); killing them",
                    label=rec.label,
                    pid=rec.pid,
                    count=len(alive),
                )
                for s in alive:
                    try:
                        self.kill(s.pid, signal.SIGKILL)
                    except OSError:
                        pass
            path.unlink(missing_ok=True)
        return found
