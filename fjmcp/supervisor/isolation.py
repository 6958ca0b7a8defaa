# -*- test-case-name: tests.supervisor.test_isolation -*-
"""
A child's confinement, from the configuration and this machine.

`survey` looks at the machine once at start-up (which paths exist, what
``child_command`` needs to be readable) and returns the `Sandbox` value
that `fjmcp.supervisor.sandbox.wrap` turns into argv; `ChildIsolation` is
the spec factory the sessions use: the plain `child_spec`, then the uid of
the user, the token's way in, and the wrapper chain.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Protocol

import attrs
from attrs import define, frozen

from fjmcp.config import ChildLimits
from fjmcp.interfaces import ChildSpec, UpstreamToken
from fjmcp.supervisor.environment import ChildSettings, child_spec, resolve_ids
from fjmcp.supervisor.sandbox import (
    ETC_SECRETS,
    SYSTEM_BINDS,
    USR_LINKS,
    Sandbox,
    Tools,
    token_delivery,
    wrap,
)

__all__ = [
    "ChildIsolation",
    "IsolationSettings",
    "UidSource",
    "command_reads",
    "survey",
]


@frozen(kw_only=True)
class IsolationSettings:
    """
    How children are confined (docs/isolation.md).

    :param sandbox: ``child_sandbox`` as written (``auto`` included).
    :param binds: ``child_sandbox_binds``, shown read-only.
    :param uid_range: ``child_uid_range``: ``(first, count)`` or empty.
    :param token_via: ``env``, ``file`` or ``fd``.
    :param runtime_dir: where live children are recorded.
    :param hidden: the broker's own paths no child may see.
    """

    sandbox: str
    binds: tuple[str, ...]
    uid_range: tuple[int, ...]
    token_via: str
    token_file_env: str
    token_fd_env: str
    limits: ChildLimits
    runtime_dir: Path
    hidden: tuple[str, ...]


class UidSource(Protocol):
    """Gives each user a uid of their own (see `fjmcp.supervisor.uids`)."""

    def uid_for(self, user: str) -> int:
        """The user's uid; raises when none can be given."""


def command_reads(command: Iterable[str]) -> tuple[str, ...]:
    """
    What a command needs to be readable: for the program, the prefix it
    lives in (``X`` for ``X/bin/prog``, e.g. a venv) as given and with
    symlinks resolved (a venv's interpreter lives elsewhere); for every other
    absolute path that exists, its directory (a script's siblings).
    """
    argv = list(command)
    out: list[str] = []
    if argv and os.path.isabs(argv[0]):
        progs = [argv[0], os.path.realpath(argv[0])]
        interpreter = _shebang(argv[0])
        if interpreter is not None:
            progs += [interpreter, os.path.realpath(interpreter)]
        for prog in progs:
            parent = Path(prog).parent
            prefix = parent.parent if parent.name in ("bin", "sbin") else parent
            out.append(str(prefix))
    for arg in argv[1:]:
        if os.path.isabs(arg) and os.path.exists(arg):
            out.append(arg if os.path.isdir(arg) else str(Path(arg).parent))
    under_system = tuple(p for p in out if _under(p, SYSTEM_BINDS))
    return tuple(dict.fromkeys(p for p in out if p not in under_system and p != "/"))


def _shebang(path: str) -> str | None:
    """The interpreter a script names on its ``#!`` line (a venv's python)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(256)
    except OSError:
        return None
    if not head.startswith(b"#!"):
        return None
    words = head[2:].split(b"\n", 1)[0].split()
    if not words or not os.path.isabs(words[0]):
        return None
    return os.fsdecode(words[0])


def _under(path: str, roots: Iterable[str]) -> bool:
    p = Path(path)
    return any(p == Path(r) or Path(r) in p.parents for r in roots)


def survey(
    settings: IsolationSettings, child: ChildSettings, tools: Tools, profile: str
) -> Sandbox:
    """The `Sandbox` of this broker: what exists, what to bind, what to hide."""
    reads = tuple(dict.fromkeys((*command_reads(child.argv), *settings.binds)))
    hide = tuple(dict.fromkeys(os.path.abspath(p) for p in settings.hidden))
    candidates = (*SYSTEM_BINDS, *USR_LINKS, *ETC_SECRETS, *hide)
    existing = frozenset(p for p in candidates if os.path.lexists(p))
    return Sandbox(
        profile=profile,
        tools=tools,
        limits=settings.limits,
        reads=tuple(p for p in reads if os.path.exists(p)),
        hidden=hide,
        existing=existing,
        directories=frozenset(p for p in existing if os.path.isdir(p)),
        symlinks=frozenset(p for p in USR_LINKS if os.path.islink(p)),
    )


@define
class ChildIsolation:
    """
    The spec factory of confined children: ``(token, label) -> ChildSpec``.

    The uid change is done by ``setpriv`` inside the argv (not by the
    spawn), so that limits and cgroups are set up first, as root, and the
    parent-death signal is set after it.
    """

    _settings: IsolationSettings
    _child: ChildSettings
    _sandbox: Sandbox
    _uids: UidSource | None = None
    _environ: Mapping[str, str] = attrs.field(factory=lambda: dict(os.environ))

    @property
    def profile(self) -> str:
        """The sandbox profile children run under."""
        return self._sandbox.profile

    def __call__(self, token: UpstreamToken, label: str) -> ChildSpec:
        """The spec of one child of ``token.user``."""
        settings, child = self._settings, self._child
        base = child_spec(child, token=token, label=label, environ=self._environ)
        if self._uids is not None:
            uid: int | None = self._uids.uid_for(token.user)
            gid: int | None = uid
            if child.group:
                gid = resolve_ids(None, child.group)[1]
        else:
            uid, gid = base.uid, base.gid
        delivery = token_delivery(
            settings.token_via,
            token.access_token,
            token_env=child.token_env,
            file_env=settings.token_file_env,
            fd_env=settings.token_fd_env,
            bubblewrap=self._sandbox.bubblewrap,
        )
        env = {k: v for k, v in base.env.items() if k != child.token_env}
        env.update(delivery.env)
        argv = wrap(
            self._sandbox,
            base.argv,
            uid=uid,
            gid=gid,
            token_file=settings.token_via == "file",  # noqa: S105 - a mode
        )
        return attrs.evolve(
            base, argv=argv, env=env, uid=None, gid=None, inputs=delivery.inputs
        )
