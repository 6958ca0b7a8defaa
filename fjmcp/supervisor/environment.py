# -*- test-case-name: tests.supervisor.test_environment -*-
"""
What a child is started with: argv, environment, uid/gid, secrets to redact.

Pure functions from the configuration (and the broker's environment, passed
in) to a `ChildSpec`, so the one rule that matters most here can be tested
without a process: a child sees ``PATH`` and ``LANG``, the names listed in
``child_env_passthrough``, its own Forgejo token and the Forgejo URL, and
nothing else of the broker's environment (which may hold the client secret
or other users' credentials).
"""

from __future__ import annotations

import grp
import os
import pwd
from collections.abc import Mapping

from fjmcp.config import CHILD_BASE_ENV, Config
from fjmcp.interfaces import ChildSpec, UpstreamToken

__all__ = ["ChildSpecError", "child_env", "child_spec", "resolve_ids"]


class ChildSpecError(ValueError):
    """A child cannot be described from this configuration (e.g. unknown user)."""


def child_env(
    config: Config, *, token: str, environ: Mapping[str, str]
) -> dict[str, str]:
    """
    The whole environment of a child.

    ``PATH`` and ``LANG`` defaults, overridden by each name in
    ``child_env_passthrough`` that is set in ``environ``, then the token
    and the Forgejo URL under their configured names (these two always win:
    a broker variable of the same name must not replace the user's token).
    """
    env = dict(CHILD_BASE_ENV)
    for name in config.child_env_passthrough:
        if name in environ:
            env[name] = environ[name]
    env[config.child_token_env] = token
    env[config.child_url_env] = config.forgejo_url
    return env


def resolve_ids(
    child_user: str | None, child_group: str | None
) -> tuple[int | None, int | None]:
    """
    The uid and gid children run under, from names (or numeric ids).

    With only ``child_user`` set, the gid is that user's primary group, so a
    child never keeps the broker's group. Raises `ChildSpecError` naming the
    setting when a name does not exist.
    """
    uid: int | None = None
    gid: int | None = None
    if child_user:
        try:
            entry = (
                pwd.getpwuid(int(child_user))
                if child_user.isdigit()
                else pwd.getpwnam(child_user)
            )
        except KeyError:
            raise ChildSpecError(
                f"child_user {child_user!r} is not a user on this system"
            ) from None
        uid, gid = entry.pw_uid, entry.pw_gid
    if child_group:
        try:
            gid = (
                grp.getgrgid(int(child_group)).gr_gid
                if child_group.isdigit()
                else grp.getgrnam(child_group).gr_gid
            )
        except KeyError:
            raise ChildSpecError(
                f"child_group {child_group!r} is not a group on this system"
            ) from None
    return uid, gid


def child_spec(
    config: Config,
    *,
    token: UpstreamToken,
    label: str,
    environ: Mapping[str, str] = os.environ,
) -> ChildSpec:
    """
    Describe the child for one session of ``token.user``.

    ``argv`` is ``child_wrapper + child_command``; the token is the only
    secret redacted from the child's stderr (the broker's own secrets never
    reach the child, so they cannot come back through it).
    """
    uid, gid = resolve_ids(config.child_user, config.child_group)
    argv = tuple(config.child_wrapper) + tuple(config.child_command)
    if not argv:
        raise ChildSpecError("child_command is empty")
    return ChildSpec(
        argv=argv,
        env=child_env(config, token=token.access_token, environ=environ),
        label=label,
        secrets=(token.access_token,) if token.access_token else (),
        uid=uid,
        gid=gid,
        max_line_bytes=config.max_line_bytes,
        stop_grace=config.child_stop_grace,
    )
