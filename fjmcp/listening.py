# -*- test-case-name: tests.test_listening -*-
"""
One wording for a port that cannot be had, whoever asked for it.

The broker, the stand-in Forgejo and the demo each listen on a port an
operator chose; when it is taken they all say so in the same single line,
naming who could not listen and where, without a traceback.
"""

from __future__ import annotations

import errno

from twisted.internet.error import CannotListenError

__all__ = ["listen_failure"]


def listen_failure(who: str, error: BaseException) -> str:
    """
    ``"<who> cannot listen: 127.0.0.1:8080 is already in use"`` for a busy
    port; for any other failure the same start with the error's text.
    """
    if isinstance(error, CannotListenError):
        where = f"{error.interface or '*'}:{error.port}"
        cause = error.socketError
        if isinstance(cause, OSError) and cause.errno == errno.EADDRINUSE:
            return f"{who} cannot listen: {where} is already in use"
        return f"{who} cannot listen on {where}: {cause}"
    return f"{who} cannot listen: {error}"
