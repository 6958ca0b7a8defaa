# -*- test-case-name: tests.web.test_health -*-
"""Tests for `fjmcp.web.health`: the /healthz JSON shape and status codes."""

from __future__ import annotations

import json
from typing import Any

from treq.testing import StubTreq
from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import Clock

from fjmcp.buildinfo import BuildInfo
from fjmcp.web.health import HEALTH_CHECK_TIMEOUT, Health

BUILD = BuildInfo(version="1.2.3", git_revision="abc123", build_date="2026-01-01")


def _get(health: Health, clock: Clock | None = None) -> tuple[int, dict[str, Any]]:
    stub: Any = StubTreq(health.app.resource())
    d = stub.get("http://127.0.0.1/healthz")
    if clock is not None:
        stub.flush()
        clock.advance(HEALTH_CHECK_TIMEOUT + 0.1)
        stub.flush()
    response = _result(d)
    body = _result(stub.content(response))
    return response.code, json.loads(body)


def _result(d: Deferred[Any]) -> Any:
    results: list[Any] = []
    d.addBoth(results.append)
    assert results, "deferred did not fire"
    if hasattr(results[0], "raiseException"):
        results[0].raiseException()
    return results[0]


def test_healthy_store_gives_200_and_build_info() -> None:
    """A store that answers gives 200 with version, revision, date and store ok."""

    async def ok() -> None:
        return None

    code, body = _get(Health(ok, BUILD, Clock()))
    assert code == 200
    assert body == {
        "version": "1.2.3",
        "git_revision": "abc123",
        "build_date": "2026-01-01",
        "store": "ok",
    }


def test_broken_store_gives_503_with_error() -> None:
    """A store check that fails gives 503 and its error message."""

    async def broken() -> None:
        raise RuntimeError("database disk image is malformed")

    code, body = _get(Health(broken, BUILD, Clock()))
    assert code == 503
    assert body["store"] == "database disk image is malformed"
    assert body["version"] == "1.2.3"


def test_hanging_store_gives_503_after_timeout() -> None:
    """A store that never answers is reported unhealthy after the timeout."""
    clock = Clock()
    code, body = _get(Health(lambda: Deferred(), BUILD, clock), clock)
    assert code == 503
    assert "did not answer" in body["store"]


def test_deferred_store_check_accepted() -> None:
    """A check returning an already-fired Deferred counts as healthy."""
    code, body = _get(Health(lambda: succeed(None), BUILD, Clock()))
    assert (code, body["store"]) == (200, "ok")
