# -*- test-case-name: tests.supervisor.test_leftovers -*-
"""The ledger of live children and the sweep of what a crash left."""

from __future__ import annotations

import json
import os
from pathlib import Path

from fjmcp.supervisor.leftovers import (
    ChildLedger,
    ChildRecord,
    ProcStat,
    members,
    parse_stat,
)

BOOT = "b00t"


def fake_proc(root: Path, stats: list[ProcStat]) -> Path:
    """A /proc with one stat file per process (comm with spaces and parens)."""
    for s in stats:
        d = root / str(s.pid)
        d.mkdir(parents=True)
        fields = ["S", "1", str(s.pgid), str(s.sid)] + ["0"] * 15 + [str(s.start)]
        (d / "stat").write_text(f"{s.pid} (a b) c) " + " ".join(fields) + " 0 0\n")
    return root


def test_parse_stat_reads_pgid_session_and_start() -> None:
    """Fields 5, 6 and 22, with a command name holding spaces and ')'."""
    own = parse_stat(Path(f"/proc/{os.getpid()}/stat").read_text())
    assert own.pid == os.getpid() and own.pgid == os.getpgrp()
    assert own.sid == os.getsid(0) and own.start > 0


def test_members_same_boot_same_start_or_descendants() -> None:
    """The leader with its recorded start and its group; nothing across a
    reboot; nothing when the leader's pid now has another start time."""
    rec = ChildRecord(pid=100, pgid=100, start=500, boot=BOOT, label="x")
    stats = [
        ProcStat(100, 100, 100, 500),
        ProcStat(101, 100, 100, 600),
        ProcStat(102, 102, 100, 700),  # left the group, kept the session
        ProcStat(103, 103, 103, 50),
    ]
    assert [s.pid for s in members(rec, stats, BOOT)] == [100, 101, 102]
    assert members(rec, stats, "another-boot") == []
    reused = [ProcStat(100, 100, 100, 900), ProcStat(101, 100, 100, 950)]
    assert members(rec, reused, BOOT) == []
    orphans = [ProcStat(101, 100, 100, 600), ProcStat(104, 100, 100, 400)]
    assert [s.pid for s in members(rec, orphans, BOOT)] == [101]


def test_record_forget_and_sweep(tmp_path: Path) -> None:
    """A record is written per child and removed when reaped; the sweep
    kills what a record proves is left and removes every record."""
    proc = fake_proc(
        tmp_path / "proc", [ProcStat(100, 100, 100, 500), ProcStat(7, 7, 7, 1)]
    )
    killed: list[tuple[int, int]] = []
    ledger = ChildLedger(
        tmp_path / "run", proc=proc, boot=BOOT, kill=lambda p, s: killed.append((p, s))
    )
    ledger.prepare()
    assert oct((tmp_path / "run").stat().st_mode & 0o777) == "0o700"
    ledger.record(100, "session=a")
    ledger.record(7, "session=b")
    ledger.forget(7)
    ledger.record(555, "gone")  # exited before it could be recorded
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["100.json"]
    data = json.loads((tmp_path / "run" / "100.json").read_text())
    assert data == {
        "pid": 100,
        "pgid": 100,
        "start": 500,
        "boot": BOOT,
        "label": "session=a",
    }
    (tmp_path / "run" / "junk.json").write_text("not json")
    found = ChildLedger(
        tmp_path / "run", proc=proc, boot=BOOT, kill=lambda p, s: killed.append((p, s))
    ).sweep()
    assert [r.label for r in found] == ["session=a"]
    assert killed == [(100, 9)]
    assert list((tmp_path / "run").iterdir()) == []
