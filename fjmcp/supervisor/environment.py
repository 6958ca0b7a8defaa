# -*- test-case-name: tests.supervisor.test_environment -*-
"""
What a child is started with: argv, environment, uid/gid, secrets to redact.

Pure functions from the children's settings (`ChildSettings`, built from the
configuration by `fjmcp.settings`) and the broker's environment, passed in, to
a `ChildSpec`, so the one rule that matters most here can be tested
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
from typing import Final

from attrs import frozen

from fjmcp.interfaces import ChildSpec, UpstreamToken

__all__ = [
    "CHILD_BASE_ENV",
    "ChildSettings",
    "ChildSpecError",
    "child_env",
    "child_spec",
    "resolve_ids",
]

#: What a child's environment holds when nothing is passed through.
CHILD_BASE_ENV: Final[Mapping[str, str]] = {
    "PATH": "/usr/local/bin:/usr/bin:/bin",
    "LANG": "C.UTF-8",
}


@frozen(kw_only=True)
class ChildSettings:
    """
    What every child is started with, whoever it runs for.

    :param argv: ``child_wrapper + child_command``.
    :param env_passthrough: names of the broker's environment variables a
        child may see (``child_env_passthrough``).
    :param token_env: the variable carrying the user's Forgejo token.
    :param url_env: the variable carrying ``forgejo_url``.
    """

    argv: tuple[str, ...]
    forgejo_url: str
    env_passthrough: tuple[str, ...]
    token_env: str
    url_env: str
    user: str | None
    group: str | None
    max_line_bytes: int
    stop_grace: float


class ChildSpecError(ValueError):
    """A child cannot be described from this configuration (e.g. unknown user)."""


def child_env(
    settings: ChildSettings, *, token: str, environ: Mapping[str, str]
) -> dict[str, str]:
    """
    The whole environment of a child.

    ``PATH`` and ``LANG`` defaults, overridden by each name in
    ``child_env_passthrough`` that is set in ``environ``, then the token
    and the Forgejo URL under their configured names (these two always win:
    a broker variable of the same name must not replace the user's token).
    """
    env = dict(CHILD_BASE_ENV)
    for name in settings.env_passthrough:
        if name in environ:
            env[name] = environ[name]
    env[settings.token_env] = token
    env[settings.url_env] = settings.forgejo_url
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
    settings: ChildSettings,
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
    uid, gid = resolve_ids(settings.user, settings.group)
    argv = settings.argv
    if not argv:
        raise ChildSpecError("child_command is empty")
    return ChildSpec(
        argv=argv,
        env=child_env(settings, token=token.access_token, environ=environ),
        label=label,
        secrets=(token.access_token,) if token.access_token else (),
        uid=uid,
        gid=gid,
        max_line_bytes=settings.max_line_bytes,
        stop_grace=settings.stop_grace,
    )
