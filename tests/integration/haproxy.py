# -*- test-case-name: tests.integration.test_haproxy -*-
"""
The shipped HAProxy configuration, found and rewritten for a test.

`render` keeps everything of ``deploy/haproxy/haproxy.cfg`` that routes
(health checks, the session-prefix rules, the stick table, timeouts) and
replaces only what names a place: the frontend's ``bind`` becomes a
loopback port, the server lines point at the test's brokers (the shipped
``use-server`` rules of the first server are repeated for each of them),
and the ``peers`` section (validated with ``haproxy -c``, never run: one
balancer here) goes with the table's reference to it.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Mapping
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SHIPPED = REPO / "deploy" / "haproxy" / "haproxy.cfg"


def haproxy_binary() -> str | None:
    """Debian's haproxy (``/usr/sbin`` is not always on a user's PATH)."""
    found = shutil.which("haproxy")
    if found:
        return found
    return "/usr/sbin/haproxy" if Path("/usr/sbin/haproxy").exists() else None


def render(
    text: str, port: int, servers: Mapping[str, int], *, listen_fd: int | None = None
) -> str:
    """The shipped ``text`` with its bind on ``127.0.0.1:port`` (or on the
    inherited listening socket ``listen_fd``), ``servers`` (node id ->
    loopback port) as the backend, and no peers."""
    out: list[str] = []
    in_peers = False
    servers_written = False
    rules = [
        line for line in text.splitlines() if line.strip().startswith("use-server ")
    ]
    first = rules[0].split()[1] if rules else ""
    templates = [line for line in rules if line.split()[1] == first]
    for line in text.splitlines():
        stripped = line.strip()
        if re.match(r"peers\s", stripped):
            in_peers = True
            continue
        if in_peers:
            if stripped and not line.startswith((" ", "\t")):
                in_peers = False
            else:
                continue
        if stripped.startswith(("log stdout", "option httplog")):
            continue  # the test reads no HAProxy log
        if stripped.startswith("bind "):
            line = (
                f"    bind 127.0.0.1:{port}"
                if listen_fd is None
                else f"    bind fd@{listen_fd}"
            )
        if stripped.startswith("stick-table "):
            line = re.sub(r"\s+peers\s+\S+", "", line)
        if stripped.startswith("use-server "):
            continue
        if stripped.startswith("server "):
            if not servers_written:
                for template in templates:
                    out.extend(template.replace(first, name) for name in servers)
                for name, server_port in servers.items():
                    out.append(f"    server {name} 127.0.0.1:{server_port}")
                servers_written = True
            continue
        out.append(line)
    return "\n".join(out) + "\n"
