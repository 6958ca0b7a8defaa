# -*- test-case-name: tests.supervisor.test_sandbox -*-
"""
The argv that confines one child: limits, uid change, parent-death signal,
namespaces.

The broker builds this argv itself from a few settings (never a free-form
string the operator must get right), with kept tools only: the preamble
shell's ``ulimit`` for rlimits (``prlimit`` when RLIMIT_NPROC is needed),
``setpriv`` for the uid change and the parent-death signal, ``bwrap`` for
namespaces and the filesystem view, ``systemd-run --scope`` for resource
control under systemd. Everything here is pure: it maps a `Sandbox`
(resolved once at start-up) and one child's facts to a tuple of strings, so
each rule is tested on the argv without starting a process.

Order matters and is fixed: ``systemd-run`` (it needs the broker's
privileges), then the rlimits (raising nothing, only lowering), then
``setpriv`` (the uid change, and *after* it the parent-death signal, since a
credential change clears that signal), then ``bwrap`` (which, when the uid
was changed, runs unprivileged in a user namespace of its own), then the
server. Each tool execs the next, so the broker's child pid stays the
pid of the chain's head and the parent-death signal binds to the broker.
Every exec costs about half a millisecond of each session start, so a tool
with nothing to do is left out: no rlimits, no limits shell; bubblewrap with
no uid change sets the parent-death signal itself (``--die-with-parent``),
so ``setpriv`` is only there for a uid change.
"""

from __future__ import annotations

import math
import shutil
from collections.abc import Iterable
from pathlib import PurePosixPath
from typing import Final

from attrs import frozen

from fjmcp.config import ChildLimits
from fjmcp.supervisor.preamble import preamble

__all__ = [
    "PROFILES",
    "SANDBOX_HOME",
    "TOKEN_DIR",
    "TOKEN_FD",
    "TOOL_SEARCH_PATH",
    "Sandbox",
    "SandboxError",
    "TokenDelivery",
    "Tools",
    "find_tools",
    "resolve_profile",
    "root_refusal",
    "token_delivery",
    "wrap",
]

#: Where the kept tools are looked for (not the broker's own PATH).
TOOL_SEARCH_PATH: Final = "/usr/bin:/bin:/usr/sbin:/sbin:/usr/local/bin"
#: Every profile an operator may name (``auto`` picks one at start-up).
PROFILES: Final = ("none", "bubblewrap", "systemd-run", "bubblewrap+systemd-run")
#: The descriptor a token travels on (``fd`` and ``file`` delivery).
TOKEN_FD: Final = 3
#: Inside bubblewrap: the private tmpfs holding the token file.
TOKEN_DIR: Final = "/run/fjmcp"  # noqa: S105 - a path, not a secret
#: Inside bubblewrap: the session's writable, private home.
SANDBOX_HOME: Final = "/home/fjmcp"
#: Inside bubblewrap: the uid and gid the child sees (never 0).
SANDBOX_ID: Final = 1000
#: Read-only views every bubblewrap child gets (those that exist).
SYSTEM_BINDS: Final = ("/usr", "/etc", "/opt")
#: The merged-/usr symlinks, or binds on systems without them.
USR_LINKS: Final = ("/bin", "/sbin", "/lib", "/lib64", "/lib32")
#: Files under /etc no child needs and root-owned secrets sit in.
ETC_SECRETS: Final = ("/etc/shadow", "/etc/gshadow", "/etc/shadow-", "/etc/gshadow-")


class SandboxError(ValueError):
    """The requested profile cannot run here (a tool is missing, say)."""


@frozen
class Tools:
    """Absolute paths of the kept tools found on this machine (None: absent)."""

    setpriv: str | None = None
    prlimit: str | None = None
    bwrap: str | None = None
    systemd_run: str | None = None


def find_tools(search_path: str = TOOL_SEARCH_PATH) -> Tools:
    """Look for each tool in ``search_path``."""
    return Tools(
        setpriv=shutil.which("setpriv", path=search_path),
        prlimit=shutil.which("prlimit", path=search_path),
        bwrap=shutil.which("bwrap", path=search_path),
        systemd_run=shutil.which("systemd-run", path=search_path),
    )


def resolve_profile(requested: str, tools: Tools, *, systemd: bool) -> str:
    """
    The profile children run under: ``auto`` is ``bubblewrap`` when ``bwrap``
    is found, else ``none``; a named profile must have its tools (and
    ``systemd-run`` a systemd PID 1), else `SandboxError` says what is missing.
    """
    if requested == "auto":
        return "bubblewrap" if tools.bwrap else "none"
    if requested not in PROFILES:
        raise SandboxError(f"child_sandbox {requested!r} is not one of {PROFILES}")
    if "bubblewrap" in requested and tools.bwrap is None:
        raise SandboxError(
            "child_sandbox needs bwrap (Debian package bubblewrap), not found in "
            + TOOL_SEARCH_PATH
        )
    if "systemd-run" in requested and (tools.systemd_run is None or not systemd):
        raise SandboxError(
            "child_sandbox systemd-run needs systemd-run and a broker running "
            "under systemd (PID 1 is not systemd here)"
        )
    if tools.setpriv is None:
        raise SandboxError("setpriv (util-linux) was not found in " + TOOL_SEARCH_PATH)
    return requested


def root_refusal(
    *, euid: int, requested: str, profile: str, has_uid: bool
) -> str | None:
    """
    Why a broker must not start (or None): as root, with no sandbox and no
    uid to drop to, every child would run as root holding a user's token;
    only an explicit ``child_sandbox = "none"`` accepts that.
    """
    if euid != 0 or has_uid or requested == "none" or "bubblewrap" in profile:
        return None
    return (
        "the broker runs as root with no sandbox (bwrap not found) and neither "
        "child_user nor child_uid_range set: every child would run as root with "
        "a user's token. Install bubblewrap, set child_uid_range or child_user, "
        'or write child_sandbox = "none" to accept this explicitly'
    )


@frozen
class Sandbox:
    """
    How every child of this broker is confined (resolved once at start-up).

    ``reads`` are the paths bound read-only besides the system's (what
    ``child_command`` needs, and ``child_sandbox_binds``); ``hidden`` are
    broker paths masked even if they fall under a bound tree (state
    directory, key file, admin socket, configuration, runtime directory).
    """

    profile: str
    tools: Tools
    limits: ChildLimits
    reads: tuple[str, ...] = ()
    hidden: tuple[str, ...] = ()
    existing: frozenset[str] = frozenset()
    """Which of the candidate paths exist (checked once, not per child)."""
    directories: frozenset[str] = frozenset()
    """Which of them are directories."""
    symlinks: frozenset[str] = frozenset()
    """Which of `USR_LINKS` are symlinks (merged /usr)."""

    @property
    def bubblewrap(self) -> bool:
        """Whether children get namespaces of their own."""
        return "bubblewrap" in self.profile

    @property
    def systemd(self) -> bool:
        """Whether children get a transient systemd scope."""
        return "systemd-run" in self.profile


@frozen
class TokenDelivery:
    """How one child gets its token: environment variables and fed descriptors."""

    env: dict[str, str]
    inputs: dict[int, bytes]


def token_delivery(
    via: str,
    token: str,
    *,
    token_env: str,
    file_env: str,
    fd_env: str,
    bubblewrap: bool,
) -> TokenDelivery:
    """
    The token's way into the child.

    ``env``: in ``token_env`` (readable by whoever may read the child's
    ``/proc/<pid>/environ``). ``fd``: on an inherited pipe, its number in
    ``fd_env``, written once by the broker and closed. ``file``: with
    bubblewrap a 0600 file on the session's private tmpfs (bwrap copies it
    from the pipe); without it, the pipe itself named as ``/dev/fd/N`` (read
    once).
    """
    data = token.encode()
    if via == "env":
        return TokenDelivery({token_env: token}, {})
    if via == "fd":
        return TokenDelivery({fd_env: str(TOKEN_FD)}, {TOKEN_FD: data})
    if via == "file":
        path = f"{TOKEN_DIR}/token" if bubblewrap else f"/dev/fd/{TOKEN_FD}"
        return TokenDelivery({file_env: path}, {TOKEN_FD: data})
    raise SandboxError(f"child_token_via {via!r} is not env, file or fd")


def wrap(
    sandbox: Sandbox,
    command: Iterable[str],
    *,
    uid: int | None,
    gid: int | None,
    token_file: bool,
) -> tuple[str, ...]:
    """
    The whole argv of one child: the confinement chain, then ``command``.

    ``uid``/``gid`` (None: keep the broker's) are set by ``setpriv`` with
    supplementary groups cleared; ``token_file`` makes bubblewrap copy the
    token from `TOKEN_FD` into a 0600 file on a private tmpfs.
    """
    argv: list[str] = []
    if sandbox.systemd:
        argv += _systemd_run(sandbox)
    argv += _rlimits(sandbox, limit_processes=uid not in (None, 0))
    if not sandbox.bubblewrap or uid is not None or gid is not None:
        argv += _setpriv(sandbox, uid, gid)
    if sandbox.bubblewrap:
        argv += _bwrap(sandbox, token_file=token_file)
    argv += list(command)
    return tuple(argv)


def _require(path: str | None, name: str) -> str:
    if path is None:
        raise SandboxError(f"{name} was not found in {TOOL_SEARCH_PATH}")
    return path


def _systemd_run(sandbox: Sandbox) -> list[str]:
    """A transient scope with resource control (scopes take no sandboxing)."""
    argv = [_require(sandbox.tools.systemd_run, "systemd-run")]
    argv += ["--scope", "--quiet", "--collect"]
    limits = sandbox.limits
    if limits.memory:
        argv += ["--property", f"MemoryMax={limits.memory}"]
        argv += ["--property", "MemorySwapMax=0"]
    if limits.processes:
        argv += ["--property", f"TasksMax={limits.processes}"]
    if limits.cpu_percent:
        argv += ["--property", f"CPUQuota={limits.cpu_percent}%"]
    return [*argv, "--"]


def _rlimits(sandbox: Sandbox, *, limit_processes: bool) -> list[str]:
    """
    Per-process rlimits: ``ulimit`` in the preamble shell (which the
    supervisor's cgroup joins share), or ``prlimit`` for a child that needs
    ``RLIMIT_NPROC`` (no portable ``ulimit`` flag). That limit counts per
    uid and does not bind uid 0, so it is set only for a child with a uid
    of its own.
    """
    limits = sandbox.limits
    if limits.processes and limit_processes:
        flags = []
        if limits.address_space:
            flags.append(f"--as={limits.address_space}")
        if limits.cpu_seconds:
            flags.append(f"--cpu={limits.cpu_seconds}")
        if limits.open_files:
            flags.append(f"--nofile={limits.open_files}")
        flags.append(f"--nproc={limits.processes}")
        return [_require(sandbox.tools.prlimit, "prlimit"), *flags, "--"]
    ulimits = []
    if limits.address_space:
        ulimits += ["-v", str(math.ceil(limits.address_space / 1024))]
    if limits.cpu_seconds:
        ulimits += ["-t", str(limits.cpu_seconds)]
    if limits.open_files:
        ulimits += ["-n", str(limits.open_files)]
    return preamble(limits=ulimits) if ulimits else []


def _setpriv(sandbox: Sandbox, uid: int | None, gid: int | None) -> list[str]:
    """
    The uid change, then the parent-death signal (setpriv sets it after
    changing credentials, which would otherwise clear it).
    """
    argv = [_require(sandbox.tools.setpriv, "setpriv")]
    if gid is not None:
        argv.append(f"--regid={gid}")
    if uid is not None:
        argv.append(f"--reuid={uid}")
    if uid is not None or gid is not None:
        argv.append("--clear-groups")
    argv += ["--pdeathsig=KILL", "--"]
    return argv


def _bwrap(sandbox: Sandbox, *, token_file: bool) -> list[str]:
    """
    New user (non-zero uid, no capabilities), PID, IPC and UTS namespaces;
    the network kept; read-only system and command paths; private /tmp and
    HOME; broker paths masked; killed with the broker.
    """
    argv = [_require(sandbox.tools.bwrap, "bwrap")]
    argv += ["--unshare-user", "--unshare-pid", "--unshare-ipc", "--unshare-uts"]
    argv += ["--uid", str(SANDBOX_ID), "--gid", str(SANDBOX_ID)]
    argv += ["--die-with-parent", "--cap-drop", "ALL", "--hostname", "fjmcp-child"]
    # The private /proc, /dev and /tmp come before the binds, so that a
    # command or bind that lives under /tmp (a checkout there) stays visible.
    argv += ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"]  # noqa: S108
    for path in SYSTEM_BINDS:
        if path in sandbox.existing:
            argv += ["--ro-bind", path, path]
    for path in USR_LINKS:
        if path in sandbox.symlinks:
            argv += ["--symlink", "usr" + path, path]
        elif path in sandbox.existing:
            argv += ["--ro-bind", path, path]
    for path in sandbox.reads:
        argv += ["--ro-bind", path, path]
    for path in ETC_SECRETS:
        if path in sandbox.existing:
            argv += ["--ro-bind", "/dev/null", path]
    for path in sandbox.hidden:
        argv += _mask(path, sandbox)
    argv += ["--tmpfs", "/run", "--dir", SANDBOX_HOME, "--setenv", "HOME", SANDBOX_HOME]
    argv += ["--chdir", SANDBOX_HOME]
    if token_file:
        argv += ["--perms", "0700", "--dir", TOKEN_DIR]
        argv += ["--perms", "0600", "--file", str(TOKEN_FD), f"{TOKEN_DIR}/token"]
    # bwrap passes every other inherited descriptor through (the fd delivery)
    return [*argv, "--"]


def _mask(path: str, sandbox: Sandbox) -> list[str]:
    """Hide ``path`` if a bound tree would show it: a directory under an empty
    tmpfs, a file under /dev/null."""
    bound = [*SYSTEM_BINDS, *sandbox.reads]
    p = PurePosixPath(path)
    if not any(p == PurePosixPath(b) or PurePosixPath(b) in p.parents for b in bound):
        return []
    if path in sandbox.directories:
        return ["--tmpfs", path]
    return ["--ro-bind", "/dev/null", path] if path in sandbox.existing else []
