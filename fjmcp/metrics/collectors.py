# -*- test-case-name: tests.metrics.test_metrics -*-
"""
The broker's metrics, on a `prometheus_client` registry given at construction.

Two kinds:

- events counted where they happen (`BrokerMetrics`: MCP request latency by
  method, HTTP responses by status, OAuth endpoint outcomes, child spawn
  latency and its queueing time at the spawn gate). Every label child is
  bound once, here, so a call on the ``/mcp`` path is a dictionary lookup
  and an ``observe``: no label formatting, no allocation. Labels are
  bounded: JSON-RPC methods outside `MCP_METHODS` are ``other``, statuses
  outside 100-599 are ``other``; no user or client id is ever a label.
- state read when Prometheus scrapes (`BrokerState`): live sessions and
  children (every owner of the session registry, so an identity's children
  count too), sessions started and ended by kind, Forgejo refresh outcomes,
  store errors, and ``fjmcp_build_info``. The components keep plain
  integers; nothing is pushed.

This module imports ``prometheus_client``; the composition root imports it
only when ``metrics_listen`` is set.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Final

from attrs import define, field
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from fjmcp.buildinfo import BuildInfo
from fjmcp.interfaces import Identity
from fjmcp.maintenance.refresher import TokenRefresher
from fjmcp.sessions.registry import SessionRegistry
from fjmcp.sessions.spawn_gate import WAIT_BOUNDS
from fjmcp.store.store import Store

__all__ = ["MCP_METHODS", "OTHER", "BrokerMetrics", "BrokerState"]

OTHER: Final = "other"

#: The JSON-RPC methods a client sends that get their own label.
MCP_METHODS: Final = (
    "initialize",
    "ping",
    "tools/list",
    "tools/call",
    "resources/list",
    "resources/templates/list",
    "resources/read",
    "resources/subscribe",
    "resources/unsubscribe",
    "prompts/list",
    "prompts/get",
    "logging/setLevel",
    "completion/complete",
    "tasks/get",
    "tasks/list",
    "tasks/result",
    "tasks/cancel",
)
CALL_OUTCOMES: Final = ("ok", "error", "failed")

#: Seconds: an MCP call spans a cached answer to a slow Forgejo API walk.
_CALL_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
#: Seconds: a child starts in tens of milliseconds to a few seconds.
_SPAWN_BUCKETS: Final = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


@define
class BrokerMetrics:
    """
    The event metrics (implements `fjmcp.interfaces.ICallObserver`,
    `IResponseObserver`, `IOAuthObserver` and `ISpawnObserver`).
    """

    registry: CollectorRegistry
    _latency: dict[str, Histogram] = field(init=False)
    _calls: dict[str, dict[str, Counter]] = field(init=False)
    _responses: Counter = field(init=False)
    _by_status: dict[int, Counter] = field(init=False, factory=dict)
    _oauth: Counter = field(init=False)
    _spawn: Histogram = field(init=False)
    _spawn_queue: Histogram = field(init=False)

    def __attrs_post_init__(self) -> None:
        latency = Histogram(
            "fjmcp_mcp_request_duration_seconds",
            "Time from an MCP request reaching the bridge to its answer.",
            ["method"],
            registry=self.registry,
            buckets=_CALL_BUCKETS,
        )
        calls = Counter(
            "fjmcp_mcp_requests",
            "MCP requests answered, by method and outcome (ok, error, failed).",
            ["method", "outcome"],
            registry=self.registry,
        )
        methods = (*MCP_METHODS, OTHER)
        self._latency = {m: latency.labels(m) for m in methods}
        self._calls = {
            o: {m: calls.labels(m, o) for m in methods} for o in CALL_OUTCOMES
        }
        self._responses = Counter(
            "fjmcp_http_responses",
            "HTTP responses of the public listener, by status.",
            ["status"],
            registry=self.registry,
        )
        self._oauth = Counter(
            "fjmcp_oauth_responses",
            "OAuth endpoint answers, by endpoint and outcome (ok or the OAuth "
            "error code).",
            ["endpoint", "outcome"],
            registry=self.registry,
        )
        self._spawn = Histogram(
            "fjmcp_child_spawn_seconds",
            "Time to bring up a new owner's first child (token, spawn gate, spawn, "
            "handshake).",
            registry=self.registry,
            buckets=_SPAWN_BUCKETS,
        )
        self._spawn_queue = Histogram(
            "fjmcp_child_spawn_queue_seconds",
            "Time a child start waited for a slot (max_concurrent_spawns).",
            registry=self.registry,
            buckets=WAIT_BOUNDS,
        )

    def call_done(
        self,
        identity: Identity,
        session: str,
        method: str,
        tool: str | None,
        outcome: str,
        seconds: float,
    ) -> None:
        """Count one MCP request and observe its latency."""
        latency = self._latency.get(method)
        if latency is None:
            method = OTHER
            latency = self._latency[OTHER]
        latency.observe(seconds)
        by_method = self._calls.get(outcome) or self._calls["failed"]
        by_method[method].inc()

    def responded(self, status: int) -> None:
        """Count one HTTP response."""
        counter = self._by_status.get(status)
        if counter is None:
            label = str(status) if 100 <= status <= 599 else OTHER
            counter = self._by_status[status] = self._responses.labels(label)
        counter.inc()

    def endpoint_outcome(self, endpoint: str, outcome: str) -> None:
        """Count one OAuth endpoint answer."""
        self._oauth.labels(endpoint, outcome).inc()

    def oauth_event(
        self, event: str, user: str | None, client_id: str | None, outcome: str
    ) -> None:
        """Grants are counted by their endpoints' outcomes; nothing more here."""

    def spawned(self, seconds: float) -> None:
        """Observe a new owner's start-up time."""
        self._spawn.observe(seconds)

    def spawn_queued(self, seconds: float) -> None:
        """Observe how long a child start waited at the spawn gate."""
        self._spawn_queue.observe(seconds)


@define(eq=False)
class BrokerState(Collector):
    """The state metrics, read from the components at each scrape."""

    _sessions: SessionRegistry
    _refresher: TokenRefresher
    _store: Store
    _build: BuildInfo

    def collect(self) -> Iterator[Metric]:
        """Every state metric, as it is now."""
        owners = self._sessions.sessions()
        sessions = sum(1 for o in owners if isinstance(o.key, str))
        children = sum(len(o.children) for o in owners)
        yield GaugeMetricFamily(
            "fjmcp_sessions_live", "Live MCP sessions.", value=sessions
        )
        yield GaugeMetricFamily(
            "fjmcp_children_live",
            "Live child processes of every owner (sessions and identities).",
            value=children,
        )
        yield GaugeMetricFamily(
            "fjmcp_users_live",
            "Users with at least one live child.",
            value=len(self._sessions.live_users()),
        )
        yield CounterMetricFamily(
            "fjmcp_sessions_started",
            "Owners of children started.",
            value=self._sessions.started,
        )
        ended = CounterMetricFamily(
            "fjmcp_sessions_ended",
            "Owners of children ended, by reason.",
            labels=["reason"],
        )
        for reason, count in self._sessions.ended_by.items():
            ended.add_metric([reason], count)
        yield ended
        refreshes = CounterMetricFamily(
            "fjmcp_forgejo_refreshes",
            "Forgejo token refreshes, by outcome.",
            labels=["outcome"],
        )
        for outcome, count in self._refresher.outcomes.items():
            refreshes.add_metric([outcome], count)
        yield refreshes
        yield CounterMetricFamily(
            "fjmcp_store_errors",
            "Store transactions that failed.",
            value=self._store.errors,
        )
        info = GaugeMetricFamily(
            "fjmcp_build_info",
            "The running build (always 1).",
            labels=["version", "revision", "build_date"],
        )
        info.add_metric(
            [self._build.version, self._build.git_revision, self._build.build_date], 1
        )
        yield info
