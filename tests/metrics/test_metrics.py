# -*- test-case-name: tests.metrics.test_metrics -*-
"""
Tests for `fjmcp.metrics`: bounded labels, the state read at scrape time,
the lazy import, and the endpoint check of ``metrics_listen``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from twisted.internet.task import Clock
from twisted.web.test.requesthelper import DummyRequest

from fjmcp.config import ConfigError
from fjmcp.interfaces import Identity
from fjmcp.metrics.collectors import BrokerMetrics
from fjmcp.metrics.service import MetricsResource
from fjmcp.sessions.spawn_gate import SpawnGate
from tests.support import assert_python_succeeds, broker_config

ALICE = Identity("alice", "client-1234")


def _value(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


def test_unknown_methods_and_statuses_share_the_other_label() -> None:
    """A JSON-RPC method outside the MCP set and a status outside 100-599
    are counted as ``other``; neither the user nor the client is a label."""
    registry = CollectorRegistry()
    metrics = BrokerMetrics(registry)
    metrics.call_done(ALICE, "abcd1234", "tools/call", "t", "ok", 0.02)
    metrics.call_done(ALICE, "abcd1234", "x/alice-private", None, "error", 0.5)
    metrics.call_done(ALICE, "abcd1234", "x/another", None, "weird", 0.5)
    metrics.responded(200)
    metrics.responded(200)
    metrics.responded(999)
    req = "fjmcp_mcp_requests_total"
    assert _value(registry, req, method="tools/call", outcome="ok") == 1
    assert _value(registry, req, method="other", outcome="error") == 1
    assert _value(registry, req, method="other", outcome="failed") == 1
    assert (
        _value(registry, "fjmcp_mcp_request_duration_seconds_count", method="other")
        == 2
    )
    assert _value(registry, "fjmcp_http_responses_total", status="200") == 2
    assert _value(registry, "fjmcp_http_responses_total", status="other") == 1
    text = generate_latest(registry).decode()
    assert "alice" not in text and "client-1234" not in text


def test_spawn_latency_and_oauth_outcomes_are_counted() -> None:
    """Spawn times land in the histogram; OAuth outcomes by endpoint."""
    registry = CollectorRegistry()
    metrics = BrokerMetrics(registry)
    metrics.spawned(0.03)
    metrics.endpoint_outcome("token", "ok")
    metrics.endpoint_outcome("token", "invalid_grant")
    assert _value(registry, "fjmcp_child_spawn_seconds_count") == 1
    assert _value(registry, "fjmcp_child_spawn_seconds_bucket", le="0.05") == 1
    oauth = "fjmcp_oauth_responses_total"
    assert _value(registry, oauth, endpoint="token", outcome="invalid_grant") == 1


def test_spawn_gate_queueing_time_lands_in_its_histogram() -> None:
    """A start that waited at the spawn gate is observed with its wait; one
    that found a free slot with zero."""
    registry = CollectorRegistry()
    metrics = BrokerMetrics(registry)
    clock = Clock()
    gate = SpawnGate(clock, limit=1, observe=metrics.spawn_queued)
    first: list[Callable[[], None]] = []
    second: list[Callable[[], None]] = []
    gate.acquire().addCallback(first.append)
    gate.acquire().addCallback(second.append)
    clock.advance(0.3)
    first[0]()
    assert second
    name = "fjmcp_child_spawn_queue_seconds"
    assert _value(registry, f"{name}_count") == 2
    assert _value(registry, f"{name}_bucket", le="0.001") == 1
    assert _value(registry, f"{name}_bucket", le="0.5") == 2
    assert _value(registry, f"{name}_sum") == pytest.approx(0.3)


def test_the_resource_renders_the_exposition_format() -> None:
    """GET /metrics answers the text format with its content type."""
    registry = CollectorRegistry()
    BrokerMetrics(registry).responded(404)
    request = DummyRequest([b"metrics"])
    body = MetricsResource(registry).render_GET(request)
    assert b'fjmcp_http_responses_total{status="404"} 1.0' in body
    content_type = request.responseHeaders.getRawHeaders(b"content-type")
    assert content_type is not None and content_type[0].startswith(b"text/plain")


def test_prometheus_client_is_not_loaded_when_metrics_are_off() -> None:
    """Building the service and its configuration without metrics_listen
    never imports prometheus_client (no idle memory for an unused feature)."""
    assert_python_succeeds(
        "import sys, fjmcp.service, fjmcp.wiring, fjmcp.settings\n"
        "assert 'prometheus_client' not in sys.modules, 'imported'\n"
    )


def test_a_tcp_metrics_endpoint_must_name_its_interface(tmp_path: Path) -> None:
    """metrics_listen on TCP without interface= (every address) is refused;
    with a loopback interface it is accepted."""
    with pytest.raises(ConfigError, match="metrics_listen"):
        broker_config(tmp_path, FJMCP_METRICS_LISTEN="tcp:9464")
    config = broker_config(
        tmp_path, FJMCP_METRICS_LISTEN="tcp:9464:interface=127.0.0.1"
    )
    assert config.metrics_listen == "tcp:9464:interface=127.0.0.1"
