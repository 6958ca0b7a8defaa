#!/usr/bin/env python3
# -*- test-case-name: tests.integration.test_hostile -*-
"""
A stdio MCP server that attacks its neighbours, and reports how far it got.

Used as every session's child in the isolation battery: one user's session
calls the attacks, another user's session (the same program) only calls
``whoami`` and must keep answering. Every attack is bounded and reports
facts, never judgements, so the test decides what "contained" means:

- ``probe``: its uid, gid and ``CapEff``; which other processes it can see;
  what it could read of their ``/proc/<pid>/environ``, ``fd/3`` (a token's
  pipe) and ``root/run/fjmcp/token`` (another sandbox's token file); which
  of the given paths (store, key file, configuration...) it could read;
  whether it could connect to the admin socket; whether the broker and a
  given pid accept a signal from it (signal 0: the permission check of a
  real signal, without harm).
- ``forkbomb``: forks up to ``limit`` children (each blocks on a pipe) and
  reports how many it got before the kernel refused, then ends them.
- ``allocate``: touches memory in 16 MiB steps up to ``limit`` bytes.
- ``flood``: writes ``size`` bytes to stdout with no newline.
- ``burn``: spends ``seconds`` of CPU time.
- ``whoami``: asks ``$FORGEJO_URL/api/v1/user`` with its token (read once
  at start from the descriptor, file or variable the broker used).
"""

from __future__ import annotations

import errno
import json
import os
import socket
import sys
import time
import urllib.error
import urllib.request
from typing import Any

from _mcp import Json, Server, text_result

server = Server("fjmcp-test-hostile")
READ_MAX = 4096


def _read_token() -> str:
    fd = os.environ.get("FORGEJO_TOKEN_FD", "")
    if fd.isdigit():
        with open(int(fd), encoding="utf-8") as pipe:
            return pipe.read().strip()
    path = os.environ.get("FORGEJO_TOKEN_FILE")
    if path:
        with open(path, encoding="utf-8") as fh:
            return fh.read().strip()
    return os.environ.get("FORGEJO_ACCESS_TOKEN", "")


TOKEN = _read_token()


def _try_read(path: str) -> str:
    """The text read (bounded), or the errno name of the refusal."""
    try:
        with open(path, "rb") as fh:
            return "READ:" + fh.read(READ_MAX).decode("utf-8", "replace")
    except OSError as e:
        return errno.errorcode.get(e.errno or 0, str(e))


def _try_signal(pid: int) -> str:
    try:
        os.kill(pid, 0)
    except OSError as e:
        return errno.errorcode.get(e.errno or 0, str(e))
    return "DELIVERED"


def _try_connect(path: str) -> str:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(path)
    except OSError as e:
        return errno.errorcode.get(e.errno or 0, str(e))
    finally:
        sock.close()
    return "CONNECTED"


def _cap_eff() -> str:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("CapEff:"):
                return line.split()[1]
    return "?"


@server.tool("probe", "Try to read, connect to and signal what is not ours")
def probe(_rid: Any, call: Json) -> Json:
    """See the module docstring."""
    params = call.get("arguments") or {}
    me = os.getpid()
    others = sorted(int(p) for p in os.listdir("/proc") if p.isdigit() and int(p) != me)
    stolen: dict[str, str] = {}
    for pid in others:
        for what in ("environ", "fd/3", "root/run/fjmcp/token", "cmdline"):
            got = _try_read(f"/proc/{pid}/{what}")
            if got.startswith("READ:") and len(got) > 5:
                stolen[f"{pid}/{what}"] = got
    report = {
        "uid": os.getuid(),
        "gid": os.getgid(),
        "cap_eff": _cap_eff(),
        "visible_pids": len(others),
        "stolen": stolen,
        "files": {p: _try_read(p) for p in params.get("paths", [])},
        "admin_socket": _try_connect(params["admin_socket"]),
        "signal_broker": _try_signal(int(params["broker_pid"])),
        "signal_other": _try_signal(int(params["other_pid"])),
    }
    return text_result(json.dumps(report), **report)


@server.tool("forkbomb", "Fork until refused (bounded)")
def forkbomb(_rid: Any, call: Json) -> Json:
    """Children block on a pipe until it closes, then exit."""
    params = call.get("arguments") or {}
    limit = int(params.get("limit", 1000))
    read_end, write_end = os.pipe()
    pids = []
    refused = ""
    for _ in range(limit):
        try:
            pid = os.fork()
        except OSError as e:
            refused = errno.errorcode.get(e.errno or 0, str(e))
            break
        if pid == 0:  # the child: wait for the pipe to close, then go
            os.close(write_end)
            os.read(read_end, 1)
            os._exit(0)
        pids.append(pid)
    os.close(write_end)
    os.close(read_end)
    for pid in pids:
        os.waitpid(pid, 0)
    return text_result(str(len(pids)), forked=len(pids), refused=refused)


@server.tool("allocate", "Touch memory up to a limit")
def allocate(_rid: Any, call: Json) -> Json:
    """Keeps every chunk, so the total is what the process holds."""
    params = call.get("arguments") or {}
    limit = int(params.get("limit", 1 << 30))
    step = 16 << 20
    held = []
    try:
        while len(held) * step < limit:
            held.append(b"x" * step)
    except MemoryError:
        got = len(held) * step
        held.clear()
        return text_result(str(got), allocated=got, stopped_by="MemoryError")
    return text_result(str(limit), allocated=limit, stopped_by="")


@server.tool("flood", "Write bytes to stdout with no newline")
def flood(_rid: Any, call: Json) -> Json:
    """The broker should stop this child before it is done."""
    params = call.get("arguments") or {}
    size = int(params.get("size", 1 << 20))
    chunk = b"x" * 65536
    out = sys.stdout.buffer
    for _ in range(size // len(chunk)):
        out.write(chunk)
    out.flush()
    return text_result("flooded")


@server.tool("burn", "Spend CPU time (bounded)")
def burn(_rid: Any, call: Json) -> Json:
    """Busy until ``seconds`` of CPU time are spent (a CPU limit ends it sooner)."""
    params = call.get("arguments") or {}
    seconds = float(params.get("seconds", 10))
    start = time.process_time()
    n = 0
    while time.process_time() - start < seconds:
        n += 1
    return text_result(str(n), spins=n)


@server.tool("whoami", "Ask Forgejo who the token belongs to")
def whoami(_rid: Any, _params: Json) -> Json:
    """The login Forgejo answers for this child's token."""
    base = os.environ.get("FORGEJO_URL", "").rstrip("/")
    request = urllib.request.Request(
        base + "/api/v1/user", headers={"Authorization": "token " + TOKEN}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            login = json.loads(response.read())["login"]
    except urllib.error.HTTPError as e:
        return text_result(f"Forgejo answered {e.code}", is_error=True)
    except OSError as e:
        return text_result(f"Forgejo unreachable: {e}", is_error=True)
    return text_result(str(login), login=login, pid=os.getpid())


if __name__ == "__main__":
    sys.exit(server.run())
