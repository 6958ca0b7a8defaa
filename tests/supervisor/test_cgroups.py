# -*- test-case-name: tests.supervisor.test_cgroups -*-
"""Per-child cgroups, on a directory laid out like /sys/fs/cgroup."""

from __future__ import annotations

import os
from pathlib import Path

from fjmcp.config import ChildLimits
from fjmcp.supervisor.cgroups import CgroupLimiter, find_limiter

LIMITS = ChildLimits(memory=1 << 28, processes=32)


def v1_root(tmp_path: Path) -> Path:
    """A cgroup v1 layout with writable pids and memory hierarchies."""
    root = tmp_path / "cgroup"
    (root / "pids").mkdir(parents=True)
    (root / "memory").mkdir()
    return root


def test_v1_child_cgroup_gets_its_limits_and_a_join_prefix(tmp_path: Path) -> None:
    """pids.max and memory.limit_in_bytes are written; the child moves
    itself into each v1 ``tasks`` file before it runs."""
    limiter = find_limiter(LIMITS, v1_root(tmp_path))
    assert limiter is not None and limiter.memory_file == "memory.limit_in_bytes"
    cgroup = limiter.create(1)
    assert cgroup is not None
    pids_dir, memory_dir = cgroup.directories
    assert (pids_dir / "pids.max").read_text() == "32"
    assert (memory_dir / "memory.limit_in_bytes").read_text() == str(1 << 28)
    assert pids_dir.name == f"{limiter.owner}-1"
    assert cgroup.joins() == [str(pids_dir / "tasks"), str(memory_dir / "tasks")]


def test_no_limits_or_nothing_writable_means_no_limiter(tmp_path: Path) -> None:
    """Nothing to bound, or nowhere to write: None."""
    assert find_limiter(ChildLimits(open_files=5), v1_root(tmp_path)) is None
    assert find_limiter(LIMITS, tmp_path / "absent") is None


def test_remove_kills_what_is_left_then_removes(tmp_path: Path) -> None:
    """A reaped child's cgroup: its remaining processes get SIGKILL."""
    killed: list[int] = []
    limiter = find_limiter(LIMITS, v1_root(tmp_path))
    assert limiter is not None
    limiter.kill = lambda pid, sig: killed.append(pid)
    cgroup = limiter.create(2)
    assert cgroup is not None
    (cgroup.directories[0] / "cgroup.procs").write_text("41\n42\n")
    assert limiter.remove(cgroup) == 2
    assert killed == [41, 42]


def test_sweep_spares_running_brokers(tmp_path: Path) -> None:
    """Cgroups of a broker that still runs (this one, or another with the
    same pid and start) are kept; those of a gone broker are emptied."""
    root = v1_root(tmp_path)
    limiter = find_limiter(LIMITS, root)
    assert limiter is not None
    killed: list[int] = []
    limiter.kill = lambda pid, sig: killed.append(pid)
    mine = limiter.create(1)
    assert mine is not None
    (mine.directories[0] / "cgroup.procs").write_text(f"{os.getpid()}\n")
    gone = root / "pids" / "fjmcp" / "999999999.5-1"
    gone.mkdir()
    (gone / "cgroup.procs").write_text("77\n")
    reused = root / "pids" / "fjmcp" / f"{os.getpid()}.1-1"
    reused.mkdir()
    (reused / "cgroup.procs").write_text("78\n")
    CgroupLimiter(
        pids_parent=root / "pids" / "fjmcp",
        memory_parent=None,
        memory_file="memory.limit_in_bytes",
        limits=LIMITS,
        kill=lambda pid, sig: killed.append(pid),
    ).sweep()
    assert sorted(killed) == [77, 78]
    assert mine.directories[0].exists()


def test_v2_child_joins_by_cgroup_procs(tmp_path: Path) -> None:
    """cgroup v2 has no per-thread join file outside threaded subtrees: the
    child moves itself through cgroup.procs."""
    root = tmp_path / "cgroup"
    root.mkdir()
    (root / "cgroup.controllers").write_text("cpu memory pids\n")
    limiter = find_limiter(LIMITS, root)
    assert limiter is not None and limiter.memory_file == "memory.max"
    cgroup = limiter.create(1)
    assert cgroup is not None
    assert cgroup.joins() == [str(cgroup.directories[0] / "cgroup.procs")]
