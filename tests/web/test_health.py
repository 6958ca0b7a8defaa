# -*- test-case-name: tests.web.test_health -*-
"""Tests for `fjmcp.web.health`: the /healthz JSON shape and status codes."""

from __future__ import annotations

import json
from typing import Any

from treq.testing import StubTreq
from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import Clock

from fjmcp.web.health import HEALTH_CHECK_TIMEOUT, Health


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


def test_healthy_store_gives_200_and_ok_per_dependency() -> None:
    """A store that answers gives 200 with ok overall and for the store, no build."""

    async def ok() -> None:
        return None

    code, body = _get(Health(ok, Clock()))
    assert code == 200
    assert body == {"status": "ok", "store": "ok", "store_backend": "sqlite"}


def test_the_body_names_the_store_backend() -> None:
    """Behind a balancer the answer says which store engine the node uses."""

    async def ok() -> None:
        return None

    code, body = _get(Health(ok, Clock(), backend="postgresql"))
    assert code == 200 and body["store_backend"] == "postgresql"


def test_a_draining_node_fails_its_health_check() -> None:
    """
    Once shutdown began the node answers 503 ``draining`` although its store
    is fine: the balancer stops sending it new sessions first.
    """

    async def ok() -> None:
        return None

    code, body = _get(Health(ok, Clock(), draining=lambda: True))
    assert code == 503
    assert body == {
        "status": "not ok",
        "store": "ok",
        "store_backend": "sqlite",
        "draining": True,
    }


def test_broken_store_gives_503_and_keeps_its_error_in_the_log(
    logged: list[Any],
) -> None:
    """A failing store check gives 503 'not ok'; the error is logged, not shown."""

    async def broken() -> None:
        raise RuntimeError("database disk image is malformed")

    code, body = _get(Health(broken, Clock()))
    assert code == 503
    assert body == {"status": "not ok", "store": "not ok", "store_backend": "sqlite"}
    assert any("malformed" in str(e.get("error")) for e in logged), (
        "the reason is not logged"
    )


def test_hanging_store_gives_503_after_timeout() -> None:
    """A store that never answers is reported unhealthy after the timeout."""
    clock = Clock()
    code, body = _get(Health(lambda: Deferred(), clock), clock)
    assert code == 503
    assert body["store"] == "not ok"


def test_deferred_store_check_accepted() -> None:
    """A check returning an already-fired Deferred counts as healthy."""
    code, body = _get(Health(lambda: succeed(None), Clock()))
    assert (code, body["store"]) == (200, "ok")
