# -*- test-case-name: tests.supervisor.test_supervisor -*-
"""
The broker's children: start them, count them, stop them all at shutdown.

`Supervisor` is the `ISpawner` the session registry uses. Each child is
started with ``reactor.spawnProcess`` (no shell, no PTY, exactly three pipes
so no other descriptor of the broker leaks into it), under the configured
uid/gid, in a session of its own; its `ChildProtocol` is the `IChild`
handle. The supervisor knows no HTTP.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any, Final

from attrs import Factory, define, field
from twisted.internet.defer import Deferred, gatherResults, succeed
from twisted.internet.interfaces import IDelayedCall, IReactorProcess, IReactorTime
from twisted.logger import Logger

from fjmcp.interfaces import ChildExit, ChildReceiver, ChildSpec
from fjmcp.supervisor.cgroups import CgroupLimiter, ChildCgroup
from fjmcp.supervisor.leader import spawn_session_leader
from fjmcp.supervisor.leftovers import ChildLedger
from fjmcp.supervisor.preamble import with_joins
from fjmcp.supervisor.protocol import ChildProtocol, default_kill_group

__all__ = ["Supervisor"]

#: Exactly stdin, stdout and stderr; every other descriptor is closed in
#: the child (Twisted closes all fds not named here, with spawn or fork).
CHILD_FDS: Final = {0: "w", 1: "r", 2: "r"}


def _default_start(supervisor: Supervisor) -> Callable[..., Any]:
    reactor = supervisor._reactor
    if supervisor.leads_session:
        return partial(spawn_session_leader, reactor)
    return reactor.spawnProcess


@define(eq=False, repr=False)
class Supervisor:
    """
    Spawns children and keeps the live ones.

    **Each child leads a session of its own**, so a Ctrl-C or a signal to
    the broker's process group reaches it only through the broker: it is
    spawned with ``POSIX_SPAWN_SETSID`` (`fjmcp.supervisor.leader`), so the
    pid Twisted holds is the server's (after the wrappers' execs) and
    ``stop()``'s SIGTERM reaches the server itself (an integration test
    checks ``os.getsid(pid) == pid`` and that the process is the server).
    Leading its own process group also lets the final SIGKILL reach the
    whole group, so a wrapper's or server's descendants die with it.

    ``leads_session=False`` turns this off (``kill_group`` then does
    nothing either); ``start`` replaces the spawn (tests with a fake
    reactor pass its ``spawnProcess``).

    With a ``ledger``, every live child is recorded under the runtime
    directory (so a broker restarted after a crash stops what this one
    left); with ``cgroups``, each child joins a cgroup of its own (its
    ``pids.max`` bounds the whole tree) before anything of it runs. Making
    a cgroup (a ``mkdir`` and a limit per controller; a memory cgroup is
    the costly one) is done for the *next* child once a child has started,
    so a session start only takes the spare.
    """

    log = Logger()

    _reactor: IReactorProcess
    """A reactor that also provides ``IReactorTime`` (for the KILL timer)."""
    leads_session: bool = True
    _kill_group: Callable[[int, int], None] | None = default_kill_group
    _start: Callable[..., Any] = Factory(_default_start, takes_self=True)
    """``reactor.spawnProcess``'s signature: starts one process."""
    _children: set[ChildProtocol] = field(factory=set)
    _ledger: ChildLedger | None = None
    _cgroups: CgroupLimiter | None = None
    _serial: int = 0
    _spare: ChildCgroup | None = field(default=None, init=False)
    _refill: IDelayedCall | None = field(default=None, init=False)
    _stopping: bool = field(default=False, init=False)

    def __repr__(self) -> str:
        return f"<Supervisor live={len(self._children)}>"

    @property
    def live(self) -> int:
        """How many children have not been reaped yet."""
        return len(self._children)

    def spawn(self, spec: ChildSpec, receiver: ChildReceiver) -> ChildProtocol:
        """
        Start a child for ``spec`` now; its output and exit go to ``receiver``.

        Raises what ``spawnProcess`` raises (e.g. `OSError` when the program
        cannot be started), with nothing left behind.
        """
        argv = list(spec.argv)
        if not argv:
            raise ValueError("a child needs an argv")
        cgroup = self._take_cgroup()
        if cgroup is not None:
            argv = with_joins(argv, cgroup.joins())
        proto = ChildProtocol(
            spec=spec,
            receiver=receiver,
            clock=IReactorTime(self._reactor),
            kill_group=self._kill_group if self.leads_session else None,
        )
        try:
            self._spawn(proto, spec, argv)
        except BaseException:
            if cgroup is not None and self._cgroups is not None:
                self._cgroups.remove(cgroup)
            raise
        self._children.add(proto)
        proto.ended.addCallback(self._reaped, proto, cgroup)
        if self._ledger is not None and proto.pid is not None:
            self._ledger.record(proto.pid, spec.label, leads_group=self.leads_session)
        self.log.info(
            "child {label} started: pid {pid}", label=spec.label, pid=proto.pid
        )
        return proto

    def _spawn(self, proto: ChildProtocol, spec: ChildSpec, argv: list[str]) -> None:
        self._start(
            proto,
            argv[0],
            argv,
            env=dict(spec.env),
            path=None,
            uid=spec.uid,
            gid=spec.gid,
            usePTY=False,
            childFDs={**CHILD_FDS, **dict.fromkeys(spec.inputs, "w")},
        )

    def _take_cgroup(self) -> ChildCgroup | None:
        """The next child's cgroup: the spare, else a new one; then a new
        spare is made once this reactor turn is over."""
        if self._cgroups is None:
            return None
        cgroup, self._spare = self._spare, None
        if cgroup is None:
            cgroup = self._new_cgroup(self._cgroups)
        if self._refill is None and not self._stopping:
            self._refill = IReactorTime(self._reactor).callLater(0, self._make_spare)
        return cgroup

    def _new_cgroup(self, cgroups: CgroupLimiter) -> ChildCgroup | None:
        self._serial += 1
        return cgroups.create(self._serial)

    def _make_spare(self) -> None:
        self._refill = None
        if self._cgroups is not None and self._spare is None and not self._stopping:
            self._spare = self._new_cgroup(self._cgroups)

    def stop_all(self) -> Deferred[None]:
        """Stop every live child (TERM, then KILL); fires once all are reaped.
        No spare cgroup is made any more, and the one made is removed."""
        self._stopping = True
        if self._refill is not None:
            self._refill.cancel()
            self._refill = None
        if self._spare is not None and self._cgroups is not None:
            self._cgroups.remove(self._spare)
            self._spare = None
        stops = [child.stop() for child in list(self._children)]
        if not stops:
            return succeed(None)
        return gatherResults(stops, consumeErrors=True).addCallback(lambda _: None)

    def _reaped(
        self, exit: ChildExit, proto: ChildProtocol, cgroup: ChildCgroup | None
    ) -> ChildExit:
        self._children.discard(proto)
        if self._ledger is not None and proto.spawned_pid is not None:
            self._ledger.forget(proto.spawned_pid)
        if cgroup is not None and self._cgroups is not None:
            self._cgroups.remove(cgroup)
        return exit
