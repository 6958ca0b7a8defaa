#!/usr/bin/env python3
# -*- test-case-name: tests.test_conventions -*-
"""
Scenario b's load through HAProxy in front of one fjmcp node, then two.

    .venv/bin/python bench/cluster.py [--reps 3] [--postgres URL]

(``make bench-cluster`` runs it with ``BENCH_HOME`` and ``BENCH_DIR`` set.)
For each repetition, one node then two, back to back: a fresh PostgreSQL
schema (dropped afterwards), a token key file, one ``twistd fjmcp`` per
node on that schema (the harness's echo child, no sandbox, as
``bench/fjmcp.conf.in``), and HAProxy running the shipped
``deploy/haproxy/haproxy.cfg`` rendered with the run's loopback ports. 16
broker tokens are minted offline (``fjmcp admin issue-token``); the
harness's ``loadgen.py`` then runs scenario b (16 sessions, 20 warm-up
calls each, a barrier, 200 calls each) against HAProxy.

CPU is accounted from ``/proc`` between the moment every session is open
(the load generator's ready file) and its exit after the measured calls
(the sessions stay open: ``--no-delete``): each broker, each of its
children, HAProxy, the load generator, every ``postgres`` process on the
machine, and the machine's busy share of its cores. The window holds the
3200 measured calls and the warm-up calls not yet made when the last
session opened; per-call figures divide by the 3200 (an overestimate of at
most 10%, as the harness's). Everything shares this machine's cores, so
each part's cores used say where the limit is. Raw records and a summary
go to ``$BENCH_OUT/cluster-<stamp>/``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
from psycopg.conninfo import make_conninfo

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from fjmcp.oauth.keys import prepend_new_key  # noqa: E402
from tests.integration.haproxy import SHIPPED, haproxy_binary, render  # noqa: E402

NODE_NAMES = ("node-a", "node-b")
SESSIONS, WARMUP, REQUESTS = 16, 20, 200  # the harness's scenario b
MAX_TIME = 90.0
START_DEADLINE = 30.0
TICKS = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def proc_cpu(pid: int) -> tuple[float, float]:
    """(own, reaped children's) CPU seconds of ``pid``."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    utime, stime, cutime, cstime = (int(x) for x in fields[11:15])
    return (utime + stime) / TICKS, (cutime + cstime) / TICKS


def postgres_cpu() -> float:
    """CPU seconds of every ``postgres`` process now (the whole server)."""
    total = 0.0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/comm", encoding="ascii") as fh:
                if fh.read().strip() != "postgres":
                    continue
            total += proc_cpu(int(entry))[0]
        except (OSError, ValueError):
            continue
    return total


def machine_cpu() -> tuple[int, int]:
    """(busy, total) jiffies of all cores, from /proc/stat."""
    with open("/proc/stat", encoding="ascii") as fh:
        v = [int(x) for x in fh.readline().split()[1:]]
    idle = v[3] + v[4]
    return sum(v) - idle, sum(v)


def children_of(pid: int) -> list[int]:
    """The live children of ``pid`` (every thread's list)."""
    found: list[int] = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children", encoding="ascii") as fh:
                found.extend(int(x) for x in fh.read().split())
    except OSError:
        pass
    return found


def wait_http(url: str, deadline: float) -> None:
    """Until ``url`` answers 200 (bounded)."""
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310
                if response.status == 200:
                    return
        except (OSError, urllib.error.URLError):
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer 200 in time")


@contextmanager
def scratch_schema(base: str, name: str) -> Iterator[str]:
    """A fresh schema; yields a conninfo using it; dropped afterwards."""
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {name} CASCADE")
        conn.execute(f"CREATE SCHEMA {name}")
    try:
        yield make_conninfo(base, options=f"-c search_path={name}")
    finally:
        with psycopg.connect(base, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {name} CASCADE")


def node_config(
    state: Path, node: str, port: int, public_url: str, store: str, keys: Path
) -> Path:
    """One node's config: bench/fjmcp.conf.in's settings on PostgreSQL."""
    bench = Path(os.environ["BENCH_DIR"])
    directory = state / node
    directory.mkdir(mode=0o700)
    values: dict[str, Any] = {
        "listen": f"tcp:{port}:interface=127.0.0.1",
        "public_url": public_url,
        "node_id": node,
        "store_url": store,
        "store_path": str(directory / "unused.sqlite3"),
        "store_pool_size": 4,
        "token_keys_file": str(keys),
        "forgejo_url": "http://127.0.0.1:9",
        "forgejo_client_id": "bench-placeholder",
        "forgejo_client_secret": "bench-placeholder",
        "child_command": [
            shutil.which("python3") or "python3",
            str(bench / "children" / "echo_server.py"),
        ],
        "child_sandbox": "none",
        "child_env_passthrough": ["ECHO_REQUIRE_TOKEN"],
        "max_children_per_user": 128,
        "trusted_proxies": ["127.0.0.1"],
        "refresh_interval": 86400.0,
        "user_check_interval": 86400.0,
        "log_level": "warn",
    }
    path = state / f"{node}.toml"
    path.write_text("\n".join(f"{k} = {json.dumps(v)}" for k, v in values.items()))
    return path


class Cluster:
    """HAProxy and ``count`` nodes on one schema, started and stopped."""

    def __init__(self, state: Path, count: int, store: str) -> None:
        self.state = state
        self.front = free_port()
        self.url = f"http://127.0.0.1:{self.front}"
        self.nodes = NODE_NAMES[:count]
        self.ports = {node: free_port() for node in self.nodes}
        keys = state / "token-keys"
        prepend_new_key(keys)
        self.configs = {
            node: node_config(state, node, self.ports[node], self.url, store, keys)
            for node in self.nodes
        }
        self.brokers: dict[str, subprocess.Popen[bytes]] = {}
        self.haproxy: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """The nodes, then HAProxy; returns once HAProxy answers /healthz."""
        # The echo children exit unless fjmcp gave them a Forgejo token.
        env = dict(os.environ, ECHO_REQUIRE_TOKEN="FORGEJO_ACCESS_TOKEN")  # noqa: S106
        for node in self.nodes:  # one after the other: the first migrates
            log = open(self.state / f"{node}.log", "wb")  # noqa: SIM115
            self.brokers[node] = subprocess.Popen(
                [
                    str(ROOT / ".venv" / "bin" / "twistd"),
                    "-n",
                    "--pidfile=",
                    "fjmcp",
                    "--config",
                    str(self.configs[node]),
                ],
                cwd=self.state,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            log.close()
            wait_http(
                f"http://127.0.0.1:{self.ports[node]}/healthz",
                time.monotonic() + START_DEADLINE,
            )
        binary = haproxy_binary()
        if binary is None:
            raise RuntimeError("haproxy is not installed (make haproxy, as root)")
        cfg = self.state / "haproxy.cfg"
        cfg.write_text(render(SHIPPED.read_text(), self.front, self.ports))
        log = open(self.state / "haproxy.log", "wb")  # noqa: SIM115
        self.haproxy = subprocess.Popen(
            [binary, "-db", "-f", str(cfg)], stdout=log, stderr=subprocess.STDOUT
        )
        log.close()
        wait_http(f"{self.url}/healthz", time.monotonic() + START_DEADLINE)

    def tokens(self, count: int) -> Path:
        """``count`` broker tokens of the user ``bench``, one a line."""
        path = self.state / "tokens"
        with open(path, "wb") as out:
            subprocess.run(
                [
                    str(ROOT / ".venv" / "bin" / "fjmcp"),
                    "admin",
                    "--config",
                    str(self.configs[self.nodes[0]]),
                    "issue-token",
                    "--user",
                    "bench",
                    "--forgejo-token-file",
                    "-",
                    "--count",
                    str(count),
                ],
                input=b"bench-placeholder-forgejo-token\n",
                stdout=out,
                check=True,
                timeout=60,
            )
        return path

    @property
    def pids(self) -> dict[str, int]:
        """The measured processes."""
        out = {node: p.pid for node, p in self.brokers.items()}
        if self.haproxy is not None:
            out["haproxy"] = self.haproxy.pid
        return out

    def stop(self) -> None:
        """SIGTERM to everything, SIGKILL to what outlives 15 s."""
        for process in [self.haproxy, *self.brokers.values()]:
            if process is not None and process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in [self.haproxy, *self.brokers.values()]:
            if process is None:
                continue
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)


class Snapshot:
    """CPU seconds of every part at one moment (children read one by one)."""

    def __init__(self, nodes: Mapping[str, int], others: Mapping[str, int]) -> None:
        self.at = time.monotonic()
        self.machine = machine_cpu()
        self.postgres = postgres_cpu()
        self.brokers = {n: proc_cpu(pid)[0] for n, pid in nodes.items()}
        self.children: dict[int, float] = {}
        self.per_node = {n: len(children_of(pid)) for n, pid in nodes.items()}
        for pid in nodes.values():
            for child in children_of(pid):
                try:
                    self.children[child] = proc_cpu(child)[0]
                except OSError:
                    continue
        self.others = {name: proc_cpu(pid)[0] for name, pid in others.items()}


def _wait_for(path: Path, process: subprocess.Popen[bytes], deadline: float) -> None:
    while not path.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"the load generator never wrote {path}")
        time.sleep(0.02)


def one_run(base: str, out: Path, rep: int, count: int) -> dict[str, Any]:
    """
    Scenario b through HAProxy in front of ``count`` nodes. CPU is counted
    from the moment every session is open (the load generator's ready file)
    to its exit after the measured calls; the sessions stay open meanwhile
    (``--no-delete``) so that every child can still be read.
    """
    label = f"r{rep}-{count}node"
    state = out / label
    state.mkdir(mode=0o700)
    schema = f"fjmcp_bench_{os.getpid()}_{rep}_{count}"
    record: dict[str, Any] = {"rep": rep, "nodes": count}
    report, ready = state / "loadgen.json", state / "loadgen.ready"
    with scratch_schema(base, schema) as store:
        cluster = Cluster(state, count, store)
        try:
            cluster.start()
            tokens = cluster.tokens(SESSIONS)
            nodes = {n: cluster.brokers[n].pid for n in cluster.nodes}
            if cluster.haproxy is None:
                raise RuntimeError("HAProxy is not running")
            loadgen = subprocess.Popen(
                [
                    str(Path(os.environ["BENCH_DIR"]) / "run"),
                    "loadgen.py",
                    "--url",
                    f"{cluster.url}/mcp",
                    "--sessions",
                    str(SESSIONS),
                    "--requests",
                    str(REQUESTS),
                    "--warmup",
                    str(WARMUP),
                    "--tool",
                    "echo",
                    "--max-time",
                    str(MAX_TIME),
                    "--bearer-cmd",
                    f'sed -n "$((BENCH_SESSION_INDEX + 1))p" {tokens}',
                    "--ready-file",
                    str(ready),
                    "--no-delete",
                    "--label",
                    label,
                    "--out",
                    str(report),
                ],
                stdout=subprocess.DEVNULL,
            )
            try:
                _wait_for(ready, loadgen, time.monotonic() + MAX_TIME)
                others = {"haproxy": cluster.haproxy.pid, "loadgen": loadgen.pid}
                before = Snapshot(nodes, others)
                # Its exit is the end of the calls; the sessions stay open.
                # Not reaped yet, so its /proc entry still has its CPU (its
                # --max-time bounds the wait).
                os.waitid(os.P_PID, loadgen.pid, os.WEXITED | os.WNOWAIT)
                after = Snapshot(nodes, others)
                loadgen.wait()
                if loadgen.returncode != 0:
                    raise RuntimeError(f"loadgen failed ({loadgen.returncode})")
            finally:
                if loadgen.poll() is None:
                    loadgen.kill()
                    loadgen.wait()
        finally:
            cluster.stop()
    load = json.loads(report.read_text())
    wall = after.at - before.at
    cpu = {
        "brokers": sum(after.brokers[n] - before.brokers[n] for n in nodes),
        "children": sum(
            after.children[c] - before.children[c]
            for c in before.children
            if c in after.children
        ),
        "haproxy": after.others["haproxy"] - before.others["haproxy"],
        "loadgen": after.others["loadgen"] - before.others["loadgen"],
        "postgres (whole server)": after.postgres - before.postgres,
    }
    busy = (after.machine[0] - before.machine[0]) / max(
        1, after.machine[1] - before.machine[1]
    )
    machine_cores = busy * (os.cpu_count() or 1)
    cores = {k: round(v / wall, 2) for k, v in cpu.items()}
    cores["rest of the machine"] = round(machine_cores - sum(cpu.values()) / wall, 2)
    calls = SESSIONS * REQUESTS
    record.update(
        req_per_s=load["req_per_s"],
        errors=load.get("total_errors"),
        p50_ms=_percentile(load, "p50", "latency_ms"),
        p99_ms=_percentile(load, "p99", "latency_ms"),
        setup_p50_ms=_percentile(load, "p50", "setup_ms"),
        window_s=round(wall, 2),
        machine_cpu_pct=round(100.0 * busy, 1),
        cores_used=cores,
        cpu_ms_per_1k_calls={k: round(1e6 * v / calls, 1) for k, v in cpu.items()},
        per_broker_cpu_ms_per_1k_calls={
            n: round(1e6 * (after.brokers[n] - before.brokers[n]) / calls, 1)
            for n in nodes
        },
        children=before.per_node,
    )
    (state / "record.json").write_text(json.dumps(record, indent=1))
    return record


def _percentile(load: Mapping[str, Any], which: str, key: str) -> float | None:
    """A percentile of the load generator's report (``latency_ms``: the
    measured calls; ``setup_ms``: initialize to ready)."""
    block = load.get(key)
    if isinstance(block, dict) and which in block:
        return float(block[which])
    return None


def _median(rows: Sequence[Mapping[str, Any]], key: str) -> float | None:
    values = [r[key] for r in rows if r.get(key) is not None]
    return round(statistics.median(values), 1) if values else None


def summary(records: Sequence[Mapping[str, Any]]) -> str:
    """Markdown: medians per node count, and two nodes over one."""
    lines = [
        "| nodes | req/s | p50 ms | p99 ms | setup p50 ms | machine CPU % | "
        "CPU ms per 1k calls: brokers / children / HAProxy / loadgen / postgres | "
        "cores used: brokers / children / HAProxy / loadgen / postgres / "
        "rest of the machine | children per node |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    medians: dict[int, dict[str, Any]] = {}
    for count in sorted({r["nodes"] for r in records}):
        rows = [r for r in records if r["nodes"] == count]
        cpu = {
            k: round(statistics.median(r["cpu_ms_per_1k_calls"][k] for r in rows), 1)
            for k in rows[0]["cpu_ms_per_1k_calls"]
        }
        used = {
            k: round(statistics.median(r["cores_used"][k] for r in rows), 2)
            for k in rows[0]["cores_used"]
        }
        medians[count] = {
            "req_per_s": _median(rows, "req_per_s"),
            "p50_ms": _median(rows, "p50_ms"),
            "p99_ms": _median(rows, "p99_ms"),
            "setup_ms": _median(rows, "setup_p50_ms"),
            "machine": _median(rows, "machine_cpu_pct"),
            "cpu": cpu,
        }
        m = medians[count]
        spread = ", ".join(
            "+".join(str(n) for n in r["children"].values()) for r in rows
        )
        lines.append(
            f"| {count} | {m['req_per_s']} | {m['p50_ms']} | {m['p99_ms']} | "
            f"{m['setup_ms']} | "
            f"{m['machine']} | {' / '.join(str(v) for v in cpu.values())} | "
            f"{' / '.join(str(v) for v in used.values())} | {spread} |"
        )
    if 1 in medians and 2 in medians:
        one, two = medians[1], medians[2]
        ratio = (two["req_per_s"] or 0) / max(1e-9, one["req_per_s"] or 0)
        lines.append("")
        lines.append(f"two nodes / one node, req/s: {ratio:.2f}")
        if one["p99_ms"] and two["p99_ms"]:
            lines.append(
                f"two nodes / one node, p99: {two['p99_ms'] / one['p99_ms']:.2f}"
            )
    errors = sum(r.get("errors") or 0 for r in records)
    lines.append(f"errors over all runs: {errors}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the repetitions and print the summary."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument(
        "--postgres",
        default=os.environ.get(
            "FJMCP_BENCH_POSTGRES_URL", "postgresql://127.0.0.1:5432/test"
        ),
        help="the server and database the runs' schemas are made in",
    )
    args = parser.parse_args(argv)
    for variable in ("BENCH_HOME", "BENCH_DIR"):
        if not os.environ.get(variable):
            parser.error(f"{variable} must be set (make bench-cluster sets it)")
    out_root = Path(os.environ.get("BENCH_OUT", ROOT / ".bench-out"))
    out = out_root / time.strftime("cluster-%Y%m%d-%H%M%S")
    out.mkdir(parents=True, mode=0o700)
    records = []
    for rep in range(1, args.reps + 1):
        for count in (1, 2):
            record = one_run(args.postgres, out, rep, count)
            print(json.dumps(record), flush=True)
            records.append(record)
    text = summary(records)
    (out / "summary.md").write_text(text + "\n")
    (out / "records.json").write_text(json.dumps(records, indent=1))
    print(text)
    print(f"raw records: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
