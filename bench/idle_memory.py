# -*- test-case-name: tests.test_conventions -*-
"""
Where an idle broker's memory goes, for ``docs/benchmarks.md``.

    bench/prepare.sh && .venv/bin/python bench/idle_memory.py [--runs 3]

Two measurements of the broker configured as the harness configures it
(``bench/fjmcp.conf.in``, the echo child, SQLite in ``.bench-state/``):

- ``layers``: the daemon's start-up repeated in one interpreter in twistd's
  order (the reactor, twistd and its plugin scan, ``fjmcp.tap``,
  twisted.web, Klein, the rest of fjmcp, ``makeService``, the start), with
  the process's resident memory (``smaps_rollup``) after each layer;
- ``daemon``: ``twistd -n --pidfile= fjmcp --config ...`` started as the
  harness starts it and sampled as the harness samples it (``VmRSS`` after
  ``/healthz`` answered, 0.5 s, and the unauthenticated ``/mcp`` and
  metadata requests of its auth check), beside ``bench/floor.tac``, the
  same stack (twistd, a Klein route, twisted.web, SQLite through adbapi,
  AES-GCM) with none of fjmcp, started and sampled the same way.

Sizes are MiB, as the harness reports them.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TWISTD = ROOT / ".venv" / "bin" / "twistd"
PYTHON = ROOT / ".venv" / "bin" / "python"
ECHO = Path(os.environ.get("BENCH_DIR", ROOT.parent / "shared" / "bench")) / (
    "children/echo_server.py"
)


def free_port() -> int:
    """A free loopback port."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def render_config(directory: Path, port: int) -> Path:
    """``bench/fjmcp.conf.in`` rendered as bench.py renders it."""
    text = (ROOT / "bench" / "fjmcp.conf.in").read_text()
    for key, value in {
        "{host}": "127.0.0.1",
        "{port}": str(port),
        "{cwd}": str(ROOT),
        "{child_cmd}": f"{shutil.which('python3')} {ECHO}",
        "{{": "{",
        "}}": "}",
    }.items():
        text = text.replace(key, value)
    path = directory / "fjmcp.conf"
    path.write_text(text)
    return path


def _get(url: str) -> int:
    """GET ``url`` (http, loopback); its status."""
    try:
        with urllib.request.urlopen(url, timeout=2) as answer:  # noqa: S310
            status: int = answer.status
            return status
    except urllib.error.HTTPError as e:
        return e.code


def sample(
    argv: list[str], port: int, cwd: Path, env: dict[str, str] | None = None
) -> tuple[float, float]:
    """Start ``argv``, wait as the harness waits, return (VmRSS, RssAnon) in MiB."""
    env = {**os.environ, "ECHO_REQUIRE_TOKEN": "FORGEJO_ACCESS_TOKEN", **(env or {})}
    proc = subprocess.Popen(
        argv, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if _get(base + "/healthz") == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError(f"{argv} did not answer /healthz")
            time.sleep(0.05)
        time.sleep(0.5)
        _get(base + "/mcp")
        _get(base + "/.well-known/oauth-protected-resource/mcp")
        status = {}
        for line in Path(f"/proc/{proc.pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "RssAnon"):
                status[key] = int(value.split()[0]) / 1024
        return status["VmRSS"], status["RssAnon"]
    finally:
        proc.terminate()
        proc.wait(10)


def daemon(runs: int) -> None:
    """The broker and the floor, each started ``runs`` times."""
    results: dict[str, list[tuple[float, float]]] = {"fjmcp": [], "floor": []}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(runs):
            port = free_port()
            config = render_config(Path(tmp), port)
            broker = [str(TWISTD), "-n", "--pidfile=", "fjmcp", "--config", str(config)]
            results["fjmcp"].append(sample(broker, port, Path(tmp)))
            port = free_port()
            tac = str(ROOT / "bench" / "floor.tac")
            floor = [str(TWISTD), "-n", "--pidfile=", "-y", tac]
            env = {"FLOOR_PORT": str(port), "FLOOR_DIR": tmp}
            results["floor"].append(sample(floor, port, Path(tmp), env))
    print("| started | VmRSS MiB (median) | RssAnon MiB | runs |")
    print("|---|---|---|---|")
    for name, rows in results.items():
        rss = statistics.median(r[0] for r in rows)
        anon = statistics.median(r[1] for r in rows)
        each = ", ".join(f"{r[0]:.1f}" for r in rows)
        print(f"| {name} | {rss:.1f} | {anon:.1f} | {each} |")


LAYERS = r"""
import sys
def rss():
    for line in open("/proc/self/smaps_rollup"):
        if line.startswith("Rss:"):
            return int(line.split()[1]) / 1024
rows = [("python", rss())]
import twisted.internet.reactor
rows.append(("twisted.internet.reactor", rss()))
from twisted.scripts import twistd
from twisted.scripts._twistd_unix import ServerOptions
rows.append(("twistd (twisted.scripts.twistd, twisted.application)", rss()))
from twisted.application.service import IServiceMaker
from twisted.plugin import getPlugins
list(getPlugins(IServiceMaker))
rows.append(("twistd's plugin scan (Twisted's dropin.cache: trial, words, ...)", rss()))
import fjmcp.tap
rows.append(("fjmcp.tap, fjmcp.config", rss()))
import twisted.web.server
rows.append(("twisted.web.server (spread.pb, template, hyperlink)", rss()))
import klein
rows.append(("klein, werkzeug", rss()))
import fjmcp.service, fjmcp.wiring
rows.append(("the rest of fjmcp a broker imports", rss()))
options = ServerOptions()
options.parseOptions(["-n", "--pidfile=", "fjmcp", "--config", sys.argv[1]])
service = options.loadedPlugins["fjmcp"].makeService(options.subOptions)
rows.append(("options, makeService", rss()))
from twisted.internet import reactor
service.startService()
def done():
    rows.append(("started: store open, its thread, listening (1.5 s)", rss()))
    reactor.stop()
reactor.callLater(1.5, done)
reactor.run()
for (label, total), (_, before) in zip(rows, [rows[0], *rows]):
    print(f"{label}\t{total - before:.2f}\t{total:.2f}")
"""


def layers(runs: int) -> None:
    """The start-up layer by layer, ``runs`` times; medians."""
    found: dict[str, list[tuple[float, float]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(runs):
            config = render_config(Path(tmp), free_port())
            done = subprocess.run(
                [str(PYTHON), "-c", LAYERS, str(config)],
                cwd=tmp,
                capture_output=True,
                text=True,
                check=True,
                env={**os.environ, "ECHO_REQUIRE_TOKEN": "FORGEJO_ACCESS_TOKEN"},
            )
            for line in done.stdout.splitlines():
                label, delta, total = line.split("\t")
                found.setdefault(label, []).append((float(delta), float(total)))
    print("| layer | + MiB | total MiB |")
    print("|---|---|---|")
    for label, rows in found.items():
        delta = statistics.median(r[0] for r in rows)
        total = statistics.median(r[1] for r in rows)
        print(f"| {label} | {delta:+.1f} | {total:.1f} |")


def main() -> None:
    """Print both tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("what", nargs="*", default=["layers", "daemon"])
    args = parser.parse_args()
    if not (ROOT / ".bench-state" / "token-keys").exists():
        sys.exit("run bench/prepare.sh first (the store and the key file)")
    for what in args.what:
        {"layers": layers, "daemon": daemon}[what](args.runs)
        print()


if __name__ == "__main__":
    main()
