# -*- test-case-name: tests.test_conventions -*-
"""
The per-call path of ``/mcp`` in one process, for A/B comparisons of its CPU.

Run from the checkout with the project's venv:

    .venv/bin/python bench/hotpath.py [N] [--nofeatures] [--version=V] [--profile]

It wires the real `BrokerSite` (channel, request), `McpResource`, session
registry and bridge, the real `BearerAuthenticator` (a cache hit after the
first call), the audit log (to a sink that drops the text) and the metrics;
the child is the test suite's in-memory `FakeChild`, answered at once with
the echo child's answer. The reactor is the real one, not running: its timer
bookkeeping runs twice a call. The request bytes are those aiohttp (the
harness's load generator) sends. It prints CPU microseconds per call; on a
shared machine compare instruction counts instead, which load does not move:

    valgrind --tool=cachegrind --cache-sim=no --cachegrind-out-file=/dev/null \\
        .venv/bin/python bench/hotpath.py 1500    # minus the same with 500, / 1000

It does not see the system calls, the reactor's own loop or the child's pipe
(``bench/one_broker.sh`` and the harness do).
"""

from __future__ import annotations

import gc
import json
import os
import sys
import time
from typing import Any

sys.path.insert(0, os.getcwd())

from twisted.internet import reactor
from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred
from twisted.internet.testing import StringTransport
from twisted.web.resource import Resource

from fjmcp.oauth.bearer import BearerAuthenticator
from fjmcp.oauth.keys import KeyRing
from fjmcp.oauth.tokens import hash_secret, new_secret
from fjmcp.oauth.upstream_tokens import UpstreamTokens
from fjmcp.policy.book import PolicyBook
from fjmcp.settings import mcp_settings
from fjmcp.store import grants
from fjmcp.web.mcp_resource import McpResource
from fjmcp.web.site import BrokerSite, SiteSettings
from tests.bridge.support import Harness, challenge, make_config
from tests.oauth.support import MemoryStore

PUBLIC = "http://127.0.0.1:8080"


def main(argv: list[str]) -> None:
    """Wire the path, warm it up, time ``N`` calls (and profile them on request)."""
    count = int(argv[1]) if len(argv) > 1 and argv[1].isdigit() else 20000
    features = "--nofeatures" not in argv
    version = next(
        (a.split("=", 1)[1] for a in argv if a.startswith("--version=")), "2025-06-18"
    )
    clock: Any = reactor
    store = MemoryStore()
    ring = KeyRing.generate()
    Deferred.fromCoroutine(
        UpstreamTokens(store, ring, clock).replace("alice", "fj-alice", None, None)
    )
    token = new_secret()
    uid = store.sync.run(grants.upsert_user_txn, "alice", None, 0.0)
    now = clock.seconds()
    store.sync.run(
        grants.issue_admin_tokens_txn,
        uid,
        "admin-cli",
        (hash_secret(token),),
        audience=PUBLIC + "/mcp",
        scope="mcp",
        now=now,
        expires_at=now + 36000.0,
        family_ids=(new_secret(),),
    )
    config = make_config(
        public_url=PUBLIC, allowed_origins=("http://127.0.0.1:*", "http://localhost:*")
    )
    h = Harness(
        config=config,
        clock=clock,
        tokens=UpstreamTokens(store, ring, clock),  # type: ignore[arg-type]
        auth=BearerAuthenticator(store, clock, PUBLIC + "/mcp"),  # type: ignore[arg-type]
    )
    extra: dict[str, Any] = {}
    site_extra: dict[str, Any] = {}
    if features:
        from prometheus_client import CollectorRegistry

        from fjmcp.audit.file import AuditFile
        from fjmcp.audit.log import AuditLog
        from fjmcp.audit.settings import AuditSettings
        from fjmcp.metrics.collectors import BrokerMetrics
        from fjmcp.observers import Observers

        class Drop:
            def write(self, text: str) -> None:
                """Drop the batch."""

            def flush(self) -> None:
                """Nothing to flush."""

        metrics = BrokerMetrics(CollectorRegistry())
        audit_file = AuditFile(AuditSettings(path="-"), clock)
        audit_file._out = Drop()  # type: ignore[assignment]
        audit = AuditLog(clock, audit_file.write_line)
        extra["calls"] = Observers(calls=(audit, metrics))
        site_extra["responses"] = metrics
    h.resource = McpResource(
        settings=mcp_settings(config),
        authenticator=h.auth,
        challenge=challenge,
        registry=h.registry,
        clock=clock,
        policies=PolicyBook(config.policy),
        **extra,
    )
    root = Resource()
    root.putChild(b"mcp", h.resource)
    site = BrokerSite(
        root,
        reactor=clock,
        settings=SiteSettings(max_request_bytes=1 << 20, request_timeout=30.0),
        **site_extra,
    )
    sid, child, _ = h.initialize(version=version, token=b"Bearer " + token.encode())
    proto: Any = site.buildProtocol(IPv4Address("TCP", "127.0.0.1", 40000))
    transport = StringTransport(
        hostAddress=IPv4Address("TCP", "127.0.0.1", 8080),
        peerAddress=IPv4Address("TCP", "127.0.0.1", 40000),
    )
    proto.makeConnection(transport)
    head = (
        b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n"
        b"Content-Type: application/json\r\n"
        b"Accept: application/json, text/event-stream\r\n"
        b"Authorization: Bearer "
        + token.encode()
        + b"\r\nMcp-Session-Id: "
        + sid.encode()
        + b"\r\nMCP-Protocol-Version: "
        + version.encode()
        + b"\r\nAccept-Encoding: gzip, deflate\r\n"
        b"User-Agent: Python/3.11 aiohttp/3.14.5\r\nContent-Length: %d\r\n\r\n"
    )
    text = b"x" * 32
    bodies = [
        b'{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":"echo",'
        b'"arguments":{"message":"%s"}}}' % (i, text)
        for i in range(1, count + 201)
    ]
    requests = [head % len(body) + body for body in bodies]
    answers = [
        b'{"jsonrpc":"2.0","id":%d,"result":{"content":[{"type":"text","text":"%s"}]}}'
        % (i, text)
        for i in range(1, count + 201)
    ]

    def one(i: int) -> None:
        proto.dataReceived(requests[i])
        clock.runUntilCurrent()
        child.emit(answers[i])
        clock.runUntilCurrent()

    for i in range(200):
        one(i)
    if transport.value().count(b"HTTP/1.1 200") != 200:
        raise SystemExit(f"warm-up calls failed: {transport.value()[-600:]!r}")
    transport.clear()
    gc.collect()
    started = time.process_time()
    for i in range(200, 200 + count):
        one(i)
        if i % 1000 == 0:
            transport.clear()
    spent = time.process_time() - started
    report = {"features": features, "version": version}
    report["us_per_call"] = round(1e6 * spent / count, 1)
    print(json.dumps(report))
    if "--profile" in argv:
        import cProfile
        import pstats

        profile = cProfile.Profile(time.process_time)
        profile.enable()
        for i in range(200, 200 + min(count, 5000)):
            one(i)
        profile.disable()
        pstats.Stats(profile).sort_stats("tottime").print_stats(40)


if __name__ == "__main__":
    main(sys.argv)
