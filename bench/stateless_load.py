#!/usr/bin/env python3
# -*- test-case-name: tests.test_conventions -*-
"""
The 2026-07-28 load mode: CONVERSATIONS stateless conversations of one user,
all at once, against one broker (run with the bench venv's Python: aiohttp).

Each conversation sends ``server/discover`` (its "setup": the first one
brings the user's shared child up, the others find it warm), then REQUESTS
sequential ``tools/call echo``, every POST a self-contained 2026-07-28
request (``MCP-Protocol-Version``, ``Mcp-Method``, ``Mcp-Name`` headers and the
``params._meta`` envelope; no session id). With ``--pid`` the broker's CPU
time (utime + stime from /proc) over the run is reported per call. Prints
one JSON report; exit status 1 if any request failed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from typing import Any

import aiohttp

VERSION = "2026-07-28"


def _meta() -> dict[str, Any]:
    return {
        "io.modelcontextprotocol/protocolVersion": VERSION,
        "io.modelcontextprotocol/clientCapabilities": {},
        "io.modelcontextprotocol/clientInfo": {"name": "fjmcp-bench", "version": "1"},
    }


def _cpu_seconds(pid: int | None) -> float:
    if pid is None:
        return 0.0
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _answer(content_type: str, body: bytes, want: int) -> dict[str, Any]:
    """The JSON-RPC answer with id ``want`` from a JSON or SSE body."""
    if content_type.startswith("application/json"):
        return json.loads(body)
    for line in body.replace(b"\r\n", b"\n").split(b"\n"):
        if line.startswith(b"data:") and line[5:].strip():
            message = json.loads(line[5:])
            if message.get("id") == want:
                return message
    raise ValueError("no answer in the stream")


async def _post(
    http: aiohttp.ClientSession, url: str, token: str, ident: int, method: str,
    params: dict[str, Any],
) -> dict[str, Any]:
    headers = {
        "Authorization": f"Bearer {token}",
        "Accept": "application/json, text/event-stream",
        "Content-Type": "application/json",
        "MCP-Protocol-Version": VERSION,
        "Mcp-Method": method,
    }
    if "name" in params:
        headers["Mcp-Name"] = params["name"]
    body = {"jsonrpc": "2.0", "id": ident, "method": method,
            "params": {**params, "_meta": _meta()}}
    async with http.post(url, json=body, headers=headers) as response:
        data = await response.read()
        if response.status != 200:
            raise RuntimeError(f"{method}: HTTP {response.status} {data[:200]!r}")
        answer = _answer(response.headers.get("Content-Type", ""), data, ident)
    if "error" in answer:
        raise RuntimeError(f"{method}: {answer['error']}")
    return answer


async def _conversation(
    url: str, token: str, requests: int, setups: list[float], calls: list[float],
    errors: list[str], start: asyncio.Event,
) -> None:
    async with aiohttp.ClientSession() as http:
        await start.wait()
        try:
            t0 = time.perf_counter()
            await _post(http, url, token, 1, "server/discover", {})
            setups.append((time.perf_counter() - t0) * 1000)
            for i in range(requests):
                message = f"m{i}"
                t0 = time.perf_counter()
                answer = await _post(http, url, token, i + 2, "tools/call",
                                     {"name": "echo", "arguments": {"message": message}})
                calls.append((time.perf_counter() - t0) * 1000)
                if message not in json.dumps(answer["result"]):
                    errors.append("echo mismatch")
        except Exception as e:  # reported, not raised: the others go on
            errors.append(str(e)[:300])


def _summary(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    ordered = sorted(values)
    return {
        "n": len(ordered),
        "p50": round(statistics.median(ordered), 3),
        "p99": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))], 3),
        "max": round(ordered[-1], 3),
    }


async def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--url", required=True)
    ap.add_argument("--bearer", required=True)
    ap.add_argument("--conversations", type=int, default=64)
    ap.add_argument("--requests", type=int, default=50)
    ap.add_argument("--pid", type=int, default=None, help="the broker, for its CPU time")
    ap.add_argument("--max-time", type=float, default=300.0)
    args = ap.parse_args()
    setups: list[float] = []
    calls: list[float] = []
    errors: list[str] = []
    start = asyncio.Event()
    cpu0 = _cpu_seconds(args.pid)
    wall0 = time.perf_counter()
    tasks = [
        asyncio.ensure_future(_conversation(
            args.url, args.bearer, args.requests, setups, calls, errors, start))
        for _ in range(args.conversations)
    ]
    start.set()
    done, pending = await asyncio.wait(tasks, timeout=args.max_time)
    for task in pending:
        task.cancel()
        errors.append("timed out")
    wall = time.perf_counter() - wall0
    cpu = _cpu_seconds(args.pid) - cpu0
    total = len(calls) + len(setups)
    report = {
        "mode": "stateless-2026-07-28",
        "conversations": args.conversations,
        "requests_per_conversation": args.requests,
        "setup_ms": _summary(setups),
        "call_ms": _summary(calls),
        "req_per_s": round(len(calls) / wall, 1) if wall else 0,
        "broker_cpu_ms_per_request": round(1000 * cpu / total, 3) if args.pid and total else None,
        "errors": len(errors),
        "first_errors": errors[:5],
    }
    json.dump(report, sys.stdout, indent=1)
    print()
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
