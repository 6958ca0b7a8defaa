#!/usr/bin/env python3
# -*- test-case-name: tests.test_conventions -*-
"""
What each sandbox profile adds to a child's start, measured in one loop
(run with the project's venv, as root for the per-uid profiles).

Every round starts the harness's echo child once per profile, in turn, through
the broker's own code (`prepare_isolation` for the profile, the
`Supervisor` with its ledger and cgroups), writes ``initialize`` and times
the answer; ``bare`` is the same child spawned with no confinement at all
(what a bridge without isolation does). Interleaving the profiles round by
round spreads the machine's noise over all of them alike. A profile this
machine cannot run (no bwrap, PID 1 not systemd, no CAP_SETUID) is listed
with the reason. Prints one JSON report: per profile the spawn-to-answer
p50/p90 in ms and the p50 above ``bare``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from twisted.internet import defer, task
from twisted.internet.defer import Deferred

from fjmcp.config import ChildLimits, Config
from fjmcp.interfaces import ChildExit, UpstreamToken
from fjmcp.settings import child_settings, isolation_settings
from fjmcp.store.child_uids import all_child_uids_txn
from fjmcp.supervisor.environment import child_spec
from fjmcp.supervisor.startup import (
    IsolationError,
    can_change_uid,
    prepare_isolation,
    under_systemd,
)
from fjmcp.supervisor.supervisor import Supervisor

try:
    from fjmcp.supervisor.preamble import with_joins
except ImportError:  # an older checkout, measured for comparison
    with_joins = None  # type: ignore[assignment]

PYTHON = "/usr/bin/python3"  # readable by any uid (a venv under /root is not)
UID_RANGE = (232000, 64)
TOKEN = UpstreamToken(
    user="bench",
    access_token="bench-token",  # noqa: S106 - nothing is asked with it
    expires_at=0.0,
    generation=1,
)
INITIALIZE = json.dumps(
    {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-11-25",
            "capabilities": {},
            "clientInfo": {"name": "profile-setup", "version": "1"},
        },
    }
).encode()

#: name -> the configuration that differs (None: the child bare).
PROFILES: dict[str, dict[str, Any] | None] = {
    "bare": None,
    "none (no limits)": {"child_sandbox": "none", "child_limits": ChildLimits()},
    "none": {"child_sandbox": "none"},
    "none + child_uid_range": {"child_sandbox": "none", "child_uid_range": UID_RANGE},
    "bubblewrap": {"child_sandbox": "bubblewrap"},
    "bubblewrap + child_uid_range": {
        "child_sandbox": "bubblewrap",
        "child_uid_range": UID_RANGE,
    },
    "systemd-run": {"child_sandbox": "systemd-run"},
    "bubblewrap+systemd-run": {"child_sandbox": "bubblewrap+systemd-run"},
}


class _Runner:
    """The store, as far as `prepare_isolation` asks it (no uid is kept)."""

    async def run(self, txn: Any, *args: Any) -> Any:
        return {} if txn is all_child_uids_txn else None


class _Answer:
    """A `ChildReceiver` whose `first` fires at the child's first line."""

    def __init__(self) -> None:
        self.first: Deferred[float] = Deferred()

    def line_received(self, line: bytes) -> None:
        if not self.first.called:
            self.first.callback(time.perf_counter())

    def child_exited(self, exit: ChildExit) -> None:
        if not self.first.called:
            self.first.errback(RuntimeError(f"the child ended: {exit}"))


def _config(work: Path, echo: Path, extra: dict[str, Any]) -> Config:
    return Config(
        public_url="http://127.0.0.1:8080",
        forgejo_url="http://127.0.0.1:9",
        forgejo_client_id="bench",
        forgejo_client_secret="bench",  # noqa: S106 - no Forgejo is asked
        child_command=(PYTHON, "-B", str(echo)),
        child_env_passthrough=("ECHO_REQUIRE_TOKEN",),
        store_path=str(work / "store.sqlite3"),
        child_runtime_dir=str(work / "children"),
        **extra,
    )


class _Supervisors:
    """
    One `Supervisor` per set of cgroup limits: a broker has one, and its
    cgroups are named after it (two in one process would share names).
    """

    def __init__(self, reactor: Any) -> None:
        self.reactor = reactor
        self.by_limits: dict[Any, Supervisor] = {}

    def get(self, iso: Any) -> Supervisor:
        key = None if iso.cgroups is None else iso.cgroups.limits
        if key not in self.by_limits:
            self.by_limits[key] = Supervisor(
                self.reactor, ledger=iso.ledger, cgroups=iso.cgroups
            )
        return self.by_limits[key]


async def _starter(
    supervisors: _Supervisors, work: Path, echo: Path, extra: dict[str, Any] | None
) -> tuple[Supervisor, Any]:
    """(Supervisor, spec) for one profile; `IsolationError` if it cannot run."""
    if extra is None:
        config = _config(work, echo, {})
        spec = child_spec(child_settings(config), token=TOKEN, label="bare", environ={})
        return Supervisor(supervisors.reactor), spec
    if "systemd" in extra["child_sandbox"] and not under_systemd():
        raise IsolationError("PID 1 is not systemd here")
    if extra.get("child_uid_range") and not can_change_uid():
        raise IsolationError("per-user uids need CAP_SETUID and CAP_SETGID")
    config = _config(work, echo, extra)
    iso = await prepare_isolation(
        isolation_settings(config),
        child_settings(config),
        _Runner(),  # type: ignore[arg-type]
        clock_seconds=time.time,
    )
    if iso.profile != extra["child_sandbox"]:
        raise IsolationError(f"resolved to {iso.profile}")
    return supervisors.get(iso), iso.spec_factory(TOKEN, f"profile {iso.profile}")


def _chain(supervisor: Supervisor, spec: Any) -> list[str]:
    """The programs exec'd one after another: the wrappers, then the server
    (with the supervisor's cgroup joins in the preamble shell, if any)."""
    argv = list(spec.argv)
    if supervisor._cgroups is not None and with_joins is not None:
        argv = with_joins(argv, ["<cgroup>/tasks"])
    heads = [argv[0]] + [argv[i + 1] for i, a in enumerate(argv[:-1]) if a == "--"]
    return [os.path.basename(h) for h in heads]


async def _once(supervisor: Supervisor, spec: Any, reactor: Any) -> float:
    answer = _Answer()
    t0 = time.perf_counter()
    child = supervisor.spawn(spec, answer)
    child.write_line(INITIALIZE)
    t1 = await answer.first.addTimeout(30, reactor)
    await child.stop()
    return (t1 - t0) * 1000


async def main(reactor: Any) -> None:
    """Prepare every profile, run the rounds, print the report."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rounds", type=int, default=30)
    bench_dir = os.environ.get(
        "BENCH_DIR", str(Path(__file__).parents[1].parent / "shared" / "bench")
    )
    ap.add_argument("--echo", default=f"{bench_dir}/children/echo_server.py")
    args = ap.parse_args()
    os.environ["ECHO_REQUIRE_TOKEN"] = "FORGEJO_ACCESS_TOKEN"  # noqa: S105 - a name
    work = Path(tempfile.mkdtemp(prefix="fjmcp-profiles-"))
    try:
        os.chmod(work, 0o755)  # noqa: S103 - the per-uid children read the server here
        echo = work / "echo_server.py"
        shutil.copy(args.echo, echo)
        os.chmod(echo, 0o644)
        starters: dict[str, Any] = {}
        skipped: dict[str, str] = {}
        supervisors = _Supervisors(reactor)
        for name, extra in PROFILES.items():
            try:
                starters[name] = await _starter(
                    supervisors, work / name.replace(" ", ""), echo, extra
                )
            except IsolationError as e:
                skipped[name] = str(e)
        times: dict[str, list[float]] = {name: [] for name in starters}
        for _ in range(args.rounds):
            for name, (supervisor, spec) in starters.items():
                try:
                    times[name].append(await _once(supervisor, spec, reactor))
                except RuntimeError as e:
                    raise RuntimeError(f"{name}: {e}; argv {spec.argv}") from None
        bare = statistics.median(times["bare"])
        report: dict[str, Any] = {
            "rounds": args.rounds,
            "profiles": {},
            "skipped": skipped,
        }
        for name, values in times.items():
            ordered = sorted(values)
            p50 = statistics.median(ordered)
            report["profiles"][name] = {
                "p50_ms": round(p50, 2),
                "p90_ms": round(ordered[int(len(ordered) * 0.9)], 2),
                "added_p50_ms": round(p50 - bare, 2),
                "execs": _chain(*starters[name]),
            }
        json.dump(report, sys.stdout, indent=1)
        print()
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    task.react(lambda reactor: defer.ensureDeferred(main(reactor)))
