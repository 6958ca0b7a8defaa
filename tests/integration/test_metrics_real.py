# -*- test-case-name: tests.integration.test_metrics_real -*-
"""
The metrics of a real broker after a scripted session: ``GET /metrics`` on
``metrics_listen`` (and not on the public port) names every metric the
operator's dashboard reads, with the values the script implies.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_twisted
from prometheus_client.parser import text_string_to_metric_families
from treq.client import HTTPClient
from twisted.web.client import Agent, HTTPConnectionPool

from tests.e2e.live import free_port
from tests.integration.lifecycle import WAIT, Deployment, deploy, reactor, wait_for

pytestmark = pytest.mark.integration


@pytest_twisted.async_yield_fixture
async def broker(tmp_path: Path) -> AsyncIterator[tuple[Deployment, int]]:
    """A broker with metrics on a free loopback port, and that port."""
    port = free_port()
    d = await deploy(tmp_path / "d", metrics_listen=f"tcp:{port}:interface=127.0.0.1")
    yield d, port
    await d.stop()


async def _get(url: str) -> tuple[int, str]:
    pool = HTTPConnectionPool(reactor, persistent=False)
    http = HTTPClient(Agent(reactor, connectTimeout=5, pool=pool))
    response = await http.get(url).addTimeout(WAIT, reactor)
    body = await response.content()
    await pool.closeCachedConnections()
    return response.code, body.decode("utf-8")


Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def _samples(text: str) -> Samples:
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return out


def _value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, frozenset(labels.items()))]


@pytest_twisted.ensureDeferred
async def test_metrics_after_a_scripted_session(
    broker: tuple[Deployment, int],
) -> None:
    """
    After one login, one session with two tool calls, a ping, an unknown
    method and a DELETE, the metrics count exactly that; no user or client
    id appears anywhere in the exposition; the public port has no /metrics.
    """
    d, port = broker
    tokens = await d.sign_in("alice")
    client = d.mcp(tokens.access_token)
    sid = await client.initialize()
    assert (await client.call(sid)).ok
    assert (await client.call(sid)).ok
    assert (await client.request("ping", {}, sid)).status == 200
    await client.request("vendor/secret-method", {}, sid)
    assert await client.delete(sid) == 204
    await wait_for(lambda: d.live_children == 0, "the child to be reaped")

    code, text = await _get(f"http://127.0.0.1:{port}/metrics")
    assert code == 200
    s = _samples(text)
    req = "fjmcp_mcp_requests_total"
    assert _value(s, req, method="initialize", outcome="ok") == 1
    assert _value(s, req, method="tools/call", outcome="ok") == 2
    assert _value(s, req, method="ping", outcome="ok") == 1
    assert _value(s, req, method="other", outcome="error") == 1
    latency = "fjmcp_mcp_request_duration_seconds_count"
    assert _value(s, latency, method="tools/call") == 2
    assert _value(s, "fjmcp_sessions_started_total") == 1
    assert _value(s, "fjmcp_sessions_ended_total", reason="deleted") == 1
    assert _value(s, "fjmcp_sessions_ended_total", reason="idle") == 0
    assert _value(s, "fjmcp_sessions_live") == 0
    assert _value(s, "fjmcp_children_live") == 0
    assert _value(s, "fjmcp_child_spawn_seconds_count") == 1
    assert _value(s, "fjmcp_http_responses_total", status="204") >= 1
    assert _value(s, "fjmcp_http_responses_total", status="200") >= 5
    oauth = "fjmcp_oauth_responses_total"
    assert _value(s, oauth, endpoint="register", outcome="ok") == 1
    assert _value(s, oauth, endpoint="authorize", outcome="ok") == 1
    assert _value(s, oauth, endpoint="consent", outcome="ok") == 1
    assert _value(s, oauth, endpoint="callback", outcome="ok") == 1
    assert _value(s, oauth, endpoint="token", outcome="ok") == 1
    assert _value(s, "fjmcp_store_errors_total") == 0
    assert _value(s, "fjmcp_forgejo_refreshes_total", outcome="refreshed") == 0
    info = [k for k in s if k[0] == "fjmcp_build_info"]
    assert len(info) == 1 and dict(info[0][1])["version"]
    assert "alice" not in text and tokens.client_id not in text
    assert "secret-method" not in text

    code, _ = await _get(d.base + "/metrics")
    assert code == 404
