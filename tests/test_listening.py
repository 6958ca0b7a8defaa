# -*- test-case-name: tests.test_listening -*-
"""Tests for `fjmcp.listening`: one line for a port that cannot be had."""

from __future__ import annotations

import errno
import socket
import subprocess
import sys

from twisted.internet.error import CannotListenError

from fjmcp.listening import listen_failure
from tests.support import REPO

BIN = REPO / ".venv" / "bin"


def _busy(port: int) -> CannotListenError:
    return CannotListenError(
        "127.0.0.1", port, OSError(errno.EADDRINUSE, "Address already in use")
    )


def test_a_busy_port_says_who_and_where() -> None:
    """A taken port is one line naming who could not listen and the address."""
    assert listen_failure("the broker", _busy(8080)) == (
        "the broker cannot listen: 127.0.0.1:8080 is already in use"
    )


def test_other_failures_keep_their_reason() -> None:
    """Another socket error, or another exception, keeps its text."""
    denied = CannotListenError("", 80, OSError(errno.EACCES, "Permission denied"))
    assert listen_failure("x", denied).startswith("x cannot listen on *:80: ")
    assert listen_failure("x", RuntimeError("odd")) == "x cannot listen: odd"


def test_broker_and_standin_say_the_same_line_for_a_busy_port() -> None:
    """fjmcp demo (broker port) and fjmcp standin-forgejo print the same phrase."""
    fjmcp = str(BIN / "fjmcp") if (BIN / "fjmcp").exists() else None
    argv0 = [fjmcp] if fjmcp else [sys.executable, "-m", "fjmcp.cli"]
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        standin = subprocess.run(
            [*argv0, "standin-forgejo", "--port", str(port)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    expected = f"cannot listen: 127.0.0.1:{port} is already in use"
    assert standin.returncode == 1
    assert standin.stderr.strip().splitlines() == [
        f"fjmcp standin-forgejo: the stand-in Forgejo {expected}"
    ]
