#!/usr/bin/env python3
# -*- test-case-name: tests.test_conventions -*-
"""
The 2026-07-28 load mode: CONVERSATIONS stateless conversations of one user
against one broker (run with the bench venv's Python: aiohttp).

Each conversation sends ``server/discover`` (its "setup"), then REQUESTS
sequential ``tools/call echo``, every POST a self-contained 2026-07-28
request (``MCP-Protocol-Version``, ``Mcp-Method``, ``Mcp-Name`` headers and the
``params._meta`` envelope; no session id), each conversation on its own
connection. Three phases:

1. the first conversation alone: its setup brings the user's shared child
   up (``first_setup_ms``);
2. the other CONVERSATIONS - 1 at once on the warm child: all their setups
   (``setup_ms``, each opening its client's connection, as the harness's
   sessions do), the same burst again on the connections now open
   (``setup_on_open_connection_ms``: the broker's share alone), then, once
   every one is set up, all their calls (``call_ms``; ``warm_call_ms``
   leaves out each one's first call); with ``--pid`` the broker's CPU time
   (utime + stime from /proc) per setup and per call of this phase, to set
   beside scenario a's CPU per call;
3. PROBES more conversations one after another, alone: a setup and three
   calls each (``alone``), the uncontended form of "setup within 2 ms of a
   call on a warm child".

Prints one JSON report; exit status 1 if any request failed.
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
    http: aiohttp.ClientSession,
    url: str,
    token: str,
    ident: int,
    method: str,
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
    body = {
        "jsonrpc": "2.0",
        "id": ident,
        "method": method,
        "params": {**params, "_meta": _meta()},
    }
    async with http.post(url, json=body, headers=headers) as response:
        data = await response.read()
        if response.status != 200:
            raise RuntimeError(f"{method}: HTTP {response.status} {data[:200]!r}")
        answer = _answer(response.headers.get("Content-Type", ""), data, ident)
    if "error" in answer:
        raise RuntimeError(f"{method}: {answer['error']}")
    return answer


class Conversation:
    """One client: its own connection, a discover, then calls."""

    def __init__(self, args: argparse.Namespace, errors: list[str]) -> None:
        self.args = args
        self.errors = errors
        self.http = aiohttp.ClientSession()
        self.ident = 0

    async def _timed(self, method: str, params: dict[str, Any]) -> float | None:
        self.ident += 1
        t0 = time.perf_counter()
        try:
            answer = await _post(
                self.http, self.args.url, self.args.bearer, self.ident, method, params
            )
        except Exception as e:  # reported, not raised: the others go on
            self.errors.append(str(e)[:300])
            return None
        elapsed = (time.perf_counter() - t0) * 1000
        if method == "tools/call" and params["arguments"]["message"] not in json.dumps(
            answer["result"]
        ):
            self.errors.append("echo mismatch")
        return elapsed

    async def setup(self) -> float | None:
        """``server/discover``: ms, or None on failure."""
        return await self._timed("server/discover", {})

    async def call(self) -> float | None:
        """One ``tools/call echo``: ms, or None on failure."""
        message = f"m{self.ident}"
        return await self._timed(
            "tools/call", {"name": "echo", "arguments": {"message": message}}
        )

    async def calls(self, count: int, out: dict[str, list[float]]) -> None:
        """``count`` sequential calls into ``call`` (and ``warm_call``)."""
        for i in range(count):
            ms = await self.call()
            if ms is not None:
                out["call"].append(ms)
                if i:
                    out["warm_call"].append(ms)

    async def close(self) -> None:
        """Close the connection."""
        await self.http.close()


async def _gather(args: argparse.Namespace, steps: list[Any]) -> float:
    """Run ``steps`` at once; the broker's CPU seconds meanwhile."""
    cpu0 = _cpu_seconds(args.pid)
    await asyncio.wait_for(asyncio.gather(*steps), args.max_time)
    return _cpu_seconds(args.pid) - cpu0


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


def _per(cpu: float, count: int) -> float | None:
    return round(1000 * cpu / count, 3) if count else None


async def main() -> int:
    """Run the three phases and print the report."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--url", required=True)
    ap.add_argument("--bearer", required=True)
    ap.add_argument("--conversations", type=int, default=64)
    ap.add_argument("--requests", type=int, default=50)
    ap.add_argument("--probes", type=int, default=20)
    ap.add_argument(
        "--pid", type=int, default=None, help="the broker, for its CPU time"
    )
    ap.add_argument("--max-time", type=float, default=300.0)
    args = ap.parse_args()
    errors: list[str] = []
    report: dict[str, Any] = {
        "mode": "stateless-2026-07-28",
        "conversations": args.conversations,
        "requests_per_conversation": args.requests,
    }

    first = Conversation(args, errors)
    report["first_setup_ms"] = _summary([ms for ms in [await first.setup()] if ms])
    await first.close()

    crowd = [Conversation(args, errors) for _ in range(args.conversations - 1)]
    setups: list[float | None] = []

    async def set_up(c: Conversation) -> None:
        setups.append(await c.setup())

    wall0 = time.perf_counter()
    setup_cpu = await _gather(args, [set_up(c) for c in crowd])
    wall1 = time.perf_counter()
    opened, setups = setups, []
    reused_cpu = await _gather(args, [set_up(c) for c in crowd])
    seen: dict[str, list[float]] = {"call": [], "warm_call": []}
    wall2 = time.perf_counter()
    call_cpu = await _gather(args, [c.calls(args.requests, seen) for c in crowd])
    wall3 = time.perf_counter()
    for c in crowd:
        await c.close()
    report["setup_ms"] = _summary([ms for ms in opened if ms is not None])
    report["setup_on_open_connection_ms"] = _summary(
        [ms for ms in setups if ms is not None]
    )
    report["call_ms"] = _summary(seen["call"])
    report["warm_call_ms"] = _summary(seen["warm_call"])
    report["setup_burst_wall_ms"] = round((wall1 - wall0) * 1000, 1)
    report["req_per_s"] = round(len(seen["call"]) / (wall3 - wall2), 1)
    if args.pid:
        report["broker_cpu_ms_per_setup"] = _per(setup_cpu, len(opened))
        report["broker_cpu_ms_per_setup_on_open_connection"] = _per(
            reused_cpu, len(setups)
        )
        report["broker_cpu_ms_per_call"] = _per(call_cpu, len(seen["call"]))

    alone: dict[str, list[float]] = {"setup": [], "call": [], "warm_call": []}
    for _ in range(args.probes):
        probe = Conversation(args, errors)
        ms = await probe.setup()
        if ms is not None:
            alone["setup"].append(ms)
        await probe.calls(3, alone)
        await probe.close()
    report["alone"] = {
        "setup_ms": _summary(alone["setup"]),
        "warm_call_ms": _summary(alone["warm_call"]),
    }
    for key, setup, call in (
        (
            "setup_p50_minus_warm_call_p50_ms",
            report["setup_ms"],
            report["warm_call_ms"],
        ),
        (
            "setup_on_open_connection_p50_minus_warm_call_p50_ms",
            report["setup_on_open_connection_ms"],
            report["warm_call_ms"],
        ),
        (
            "alone_setup_p50_minus_warm_call_p50_ms",
            report["alone"]["setup_ms"],
            report["alone"]["warm_call_ms"],
        ),
    ):
        report[key] = round(setup["p50"] - call["p50"], 3) if setup and call else None
    report["errors"] = len(errors)
    report["first_errors"] = errors[:5]
    json.dump(report, sys.stdout, indent=1)
    print()
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
