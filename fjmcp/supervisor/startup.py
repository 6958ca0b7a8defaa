# -*- test-case-name: tests.supervisor.test_startup -*-
"""
The isolation of children, put together once at start-up.

`prepare_isolation` picks the sandbox profile (refusing to start a root
broker whose children would run as root unconfined, unless the operator
wrote ``child_sandbox = "none"``), stops what a crashed broker left
running, loads the per-user uids from the store, and returns what the
composition root hands to the `Supervisor` and the sessions.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

from attrs import frozen
from twisted.logger import Logger

from fjmcp.interfaces import ChildSpec, UpstreamToken
from fjmcp.store.child_uids import all_child_uids_txn, put_child_uid_txn
from fjmcp.store.runner import TxnRunner
from fjmcp.supervisor.cgroups import CgroupLimiter, find_limiter
from fjmcp.supervisor.environment import ChildSettings
from fjmcp.supervisor.isolation import ChildIsolation, IsolationSettings, survey
from fjmcp.supervisor.leftovers import ChildLedger
from fjmcp.supervisor.sandbox import (
    SandboxError,
    Tools,
    find_tools,
    resolve_profile,
    root_refusal,
)
from fjmcp.supervisor.uids import UidAllocator

__all__ = ["Isolation", "IsolationError", "prepare_isolation", "under_systemd"]

log = Logger(namespace="fjmcp.isolation")


class IsolationError(Exception):
    """Children cannot be confined as configured: the broker must not start."""


#: CAP_SETGID and CAP_SETUID in a ``CapEff`` mask.
SETID_CAPS = (1 << 6) | (1 << 7)


def can_change_uid(status: str = "/proc/self/status") -> bool:
    """Whether this process holds CAP_SETUID and CAP_SETGID."""
    try:
        with open(status) as fh:
            for line in fh:
                if line.startswith("CapEff:"):
                    return int(line.split()[1], 16) & SETID_CAPS == SETID_CAPS
    except OSError:
        pass
    return os.geteuid() == 0


def probe_bubblewrap(tools: Tools, uid: int | None) -> str | None:
    """
    Whether bwrap can make the namespaces children get (as ``uid`` when
    given, i.e. unprivileged): None if it can, else its complaint. Run once
    at start-up, so a machine that forbids user namespaces is named before
    the first session instead of failing every one.
    """
    if tools.bwrap is None or tools.setpriv is None:
        return "bwrap or setpriv is missing"
    argv = [tools.setpriv]
    if uid is not None:
        argv += [f"--reuid={uid}", f"--regid={uid}", "--clear-groups"]
    argv += ["--", tools.bwrap, "--unshare-user", "--unshare-pid", "--unshare-ipc"]
    argv += ["--unshare-uts", "--die-with-parent", "--ro-bind", "/", "/", "--"]
    argv += [tools.setpriv, "--dump"]
    try:
        done = subprocess.run(  # noqa: S603 - our own argv, no shell
            argv, capture_output=True, timeout=30, check=False, env={}
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        return str(e)
    if done.returncode != 0:
        return done.stderr.decode("utf-8", "replace").strip() or "bwrap failed"
    return None


def under_systemd() -> bool:
    """Whether systemd is PID 1 (its runtime directory exists)."""
    return os.path.isdir("/run/systemd/system")


@frozen
class Isolation:
    """What the supervisor and the sessions are built with."""

    profile: str
    spec_factory: Callable[[UpstreamToken, str], ChildSpec]
    ledger: ChildLedger
    cgroups: CgroupLimiter | None


async def prepare_isolation(
    settings: IsolationSettings,
    child: ChildSettings,
    runner: TxnRunner,
    *,
    clock_seconds: Callable[[], float],
    euid: int | None = None,
    tools: Tools | None = None,
    systemd: bool | None = None,
    cgroup_root: Path | None = None,
    probe: Callable[[Tools, int | None], str | None] = probe_bubblewrap,
    setid: bool | None = None,
) -> Isolation:
    """
    Resolve the profile, sweep leftovers, load uids; `IsolationError` on a
    configuration this machine cannot honour.
    """
    tools = find_tools() if tools is None else tools
    euid = os.geteuid() if euid is None else euid
    systemd = under_systemd() if systemd is None else systemd
    setid = can_change_uid() if setid is None else setid
    try:
        profile = resolve_profile(settings.sandbox, tools, systemd=systemd)
    except SandboxError as e:
        raise IsolationError(str(e)) from None
    if (settings.uid_range or child.user) and not setid:
        raise IsolationError(
            "child_uid_range and child_user need CAP_SETUID and CAP_SETGID "
            "(a root broker, or AmbientCapabilities under systemd)"
        )
    if "bubblewrap" in profile:
        uid = settings.uid_range[0] if settings.uid_range else None
        problem = probe(tools, uid)
        if problem is not None and settings.sandbox != "auto":
            raise IsolationError(
                f"bwrap cannot create its namespaces here ({problem}); "
                + (
                    "with child_uid_range it runs unprivileged and needs "
                    "unprivileged user namespaces; "
                    if uid is not None
                    else ""
                )
                + "see docs/isolation.md"
            )
        if problem is not None:
            log.warn(
                "bwrap is installed but cannot create its namespaces here "
                "({problem}); children get no sandbox",
                problem=problem,
            )
            profile = "none"
    refusal = root_refusal(
        euid=euid,
        requested=settings.sandbox,
        profile=profile,
        has_uid=bool(child.user or settings.uid_range),
    )
    if refusal is not None:
        raise IsolationError(refusal)
    if profile == "none":
        log.warn(
            "children run with no sandbox (child_sandbox = {requested}): {risk}; "
            "install bubblewrap (docs/isolation.md)",
            requested=settings.sandbox,
            risk="each sees every file its uid may read"
            + (
                ", and children of different users share a uid: one can read "
                "another's token in /proc/<pid>/environ and signal it"
                if child.user and not settings.uid_range
                else ""
            )
            if child.user or settings.uid_range
            else "they run as the broker's user: a child can read the store, the "
            "key file, the configuration, the admin socket and every other "
            "child's token, and signal the broker",
        )
    ledger = ChildLedger(settings.runtime_dir)
    try:
        ledger.prepare()
    except OSError as e:
        raise IsolationError(
            f"cannot use the children's runtime directory "
            f"{settings.runtime_dir}: {e.strerror}"
        ) from None
    left = ledger.sweep()
    if left:
        log.warn(
            "stopped {count} child(ren) a previous broker left running",
            count=len(left),
        )
    # under systemd-run the scope is the child's cgroup
    cgroups = None
    if "systemd" not in profile:
        cgroups = (
            find_limiter(settings.limits)
            if cgroup_root is None
            else find_limiter(settings.limits, cgroup_root)
        )
    if cgroups is not None:
        cgroups.sweep()
    memory_cgroup = cgroups is not None and cgroups.memory_parent is not None
    if settings.limits.memory and not memory_cgroup and "systemd" not in profile:
        log.warn(
            "child_limits.memory is not enforced: no memory cgroup is writable "
            "here and children run without systemd-run; set "
            "child_limits.address_space for a cruder bound (docs/isolation.md)"
        )
    uids: UidAllocator | None = None
    if settings.uid_range:
        first, count = settings.uid_range

        async def persist(login: str, uid: int) -> Any:
            return await runner.run(put_child_uid_txn, login, uid, clock_seconds())

        uids = UidAllocator(first, count, persist)
        uids.load(await runner.run(all_child_uids_txn))
    sandbox = survey(settings, child, tools, profile)
    factory = ChildIsolation(settings, child, sandbox, uids)
    log.info(
        "children run under the {profile} sandbox profile (token via {via}; "
        "process limit {pids})",
        profile=profile,
        via=settings.token_via,
        pids="cgroup pids.max"
        if cgroups is not None and cgroups.pids_parent is not None
        else "none beyond namespaces and uids",
    )
    return Isolation(profile, factory, ledger, cgroups)
