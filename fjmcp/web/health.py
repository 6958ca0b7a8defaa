# -*- test-case-name: tests.web.test_health -*-
"""
``GET /healthz``: is this broker able to serve?

Load balancers, container health checks and operators poll it. It answers
200 with ``{"status": "ok", "store": "ok"}`` when every dependency (today:
the store, which must answer a trivial query within a short timeout) is
fine, and 503 with ``"not ok"`` for each one that is not. It is public: it
never needs a token and never says more than ok or not ok (no version, no
error text); the reason is logged, and the build's identity is the admin
socket's ``status``. It names the store's engine (``store_backend``:
``sqlite`` or ``postgresql``). A node shutting down (SIGTERM) answers 503
with ``"draining": true`` at once, so that a load balancer stops sending it
new sessions before its port closes.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Final

from attrs import define
from klein import Klein
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.defer import TimeoutError as DeferredTimeoutError
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.web.iweb import IRequest

__all__ = ["Health", "StoreCheck", "HEALTH_CHECK_TIMEOUT", "NOT_OK", "OK"]

#: A store that does not answer within this many seconds is unhealthy.
HEALTH_CHECK_TIMEOUT: Final = 2.0

OK: Final = "ok"
NOT_OK: Final = "not ok"

#: Resolves when the store is usable; raises (any exception) when it is not.
StoreCheck = Callable[[], Awaitable[object]]


@define(slots=False)
class Health:
    """The health route; holds the store check and the clock."""

    _store_check: StoreCheck
    _clock: IReactorTime
    _timeout: float = HEALTH_CHECK_TIMEOUT
    _backend: str = "sqlite"
    _draining: Callable[[], bool] = lambda: False

    app = Klein()
    log = Logger()

    async def _store_status(self) -> str:
        try:
            d: Deferred[object] = Deferred.fromCoroutine(_awaited(self._store_check))
            d.addTimeout(self._timeout, self._clock)
            await d
        except (DeferredTimeoutError, TimeoutError, CancelledError):
            self.log.warn(
                "health check: store did not answer within {timeout}s",
                timeout=self._timeout,
            )
            return NOT_OK
        except Exception as e:
            self.log.warn(
                "health check: store unavailable: {error}",
                error=str(e) or e.__class__.__name__,
            )
            return NOT_OK
        return OK

    @app.route("/healthz", methods=["GET", "HEAD"])
    async def healthz(self, request: IRequest) -> bytes:
        """Ok or not ok per dependency; 200 when all are ok, 503 when not."""
        draining = self._draining()
        checks = {"store": await self._store_status()}
        healthy = all(value == OK for value in checks.values()) and not draining
        request.setResponseCode(200 if healthy else 503)
        request.setHeader(b"Content-Type", b"application/json")
        request.setHeader(b"Cache-Control", b"no-store")
        body: dict[str, object] = {
            "status": OK if healthy else NOT_OK,
            **checks,
            "store_backend": self._backend,
        }
        if draining:
            body["draining"] = True
        return json.dumps(body).encode("utf-8")


async def _awaited(check: StoreCheck) -> object:
    return await check()
