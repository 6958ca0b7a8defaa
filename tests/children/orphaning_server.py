#!/usr/bin/env python3
# -*- test-case-name: tests.integration.test_broker_crash -*-
"""
A stdio MCP server that leaves a descendant behind when it dies.

At start it forks a grandchild that closes its stdio (so the broker's pipes
do not wait for it), ignores SIGTERM and SIGHUP and blocks forever on a
pipe it holds both ends of: the parent-death signal of the server does not
reach it, only a broker that knows what its crashed predecessor left (or
the PID namespace of a sandbox) ends it. Every argument is ignored, so a
test can tag the command line to find these processes in ``/proc``.
"""

from __future__ import annotations

import os
import signal
import sys

from _mcp import Server

server = Server("fjmcp-test-orphaning")


def _grandchild() -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    read_end, _write_end = os.pipe()
    os.read(read_end, 1)  # never returns: this process holds the write end
    os._exit(0)


if __name__ == "__main__":
    if os.fork() == 0:
        _grandchild()
    sys.exit(server.run())
