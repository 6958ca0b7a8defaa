# -*- test-case-name: tests.metrics.test_dashboard -*-
"""
``deploy/grafana/fjmcp.json`` reads only metrics the broker exports: every
name in every panel's query is one the registry serves.
"""

from __future__ import annotations

import json
import re
from types import SimpleNamespace
from typing import Any, cast

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from fjmcp.buildinfo import BuildInfo
from fjmcp.metrics.collectors import BrokerMetrics, BrokerState
from tests.support import REPO

DASHBOARD = REPO / "deploy" / "grafana" / "fjmcp.json"


def _exported() -> set[str]:
    registry = CollectorRegistry()
    metrics = BrokerMetrics(registry)
    metrics.call_done(cast(Any, None), "s", "ping", None, "ok", 0.1)
    metrics.responded(200)
    metrics.endpoint_outcome("token", "ok")
    metrics.spawned(0.1)
    sessions = SimpleNamespace(
        sessions=list, live_users=frozenset, started=0, ended_by={"idle": 0}
    )
    registry.register(
        BrokerState(
            cast(Any, sessions),
            cast(Any, SimpleNamespace(outcomes={"refreshed": 0})),
            cast(Any, SimpleNamespace(errors=0)),
            BuildInfo(),
        )
    )
    text = generate_latest(registry).decode()
    return {
        sample.name
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_every_panel_queries_exported_metrics() -> None:
    """Each fjmcp_* name in the dashboard's queries is exported, and every
    exported family is on the dashboard."""
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    used = {name for e in exprs for name in re.findall(r"\bfjmcp_[a-z_]+", e)}
    exported = _exported()
    assert used <= exported, used - exported
    families = {re.sub(r"_(total|bucket|count|sum|created)$", "", n) for n in exported}
    on_dashboard = {re.sub(r"_(total|bucket|count|sum)$", "", n) for n in used}
    assert families <= on_dashboard, families - on_dashboard
    assert all(p["datasource"]["uid"] == "${datasource}" for p in dashboard["panels"])
