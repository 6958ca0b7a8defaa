# -*- test-case-name: tests.web.test_health -*-
"""
``GET /healthz``: is this broker able to serve, and which build is it?

Load balancers, container health checks and operators poll it. It answers
200 with ``store: "ok"`` when the store answers a trivial query within a
short timeout, and 503 with the store's error otherwise. It never needs a
token and never reveals configuration.
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

from fjmcp.buildinfo import BuildInfo

__all__ = ["Health", "StoreCheck", "HEALTH_CHECK_TIMEOUT"]

#: A store that does not answer within this many seconds is unhealthy.
HEALTH_CHECK_TIMEOUT: Final = 2.0

#: Resolves when the store is usable; raises (any exception) when it is not.
StoreCheck = Callable[[], Awaitable[object]]


@define(slots=False)
class Health:
    """The health route; holds the store check, the clock and the build identity."""

    _store_check: StoreCheck
    _build: BuildInfo
    _clock: IReactorTime
    _timeout: float = HEALTH_CHECK_TIMEOUT

    app = Klein()
    log = Logger()

    async def _store_status(self) -> str:
        try:
            d: Deferred[object] = Deferred.fromCoroutine(_awaited(self._store_check))
            d.addTimeout(self._timeout, self._clock)
            await d
        except (DeferredTimeoutError, TimeoutError, CancelledError):
            return f"store did not answer within {self._timeout:g}s"
        except Exception as e:
            self.log.warn("health check: store unavailable: {error}", error=str(e))
            return str(e) or e.__class__.__name__
        return "ok"

    @app.route("/healthz", methods=["GET", "HEAD"])
    async def healthz(self, request: IRequest) -> bytes:
        """Build identity plus store status; 200 when healthy, 503 when not."""
        store = await self._store_status()
        request.setResponseCode(200 if store == "ok" else 503)
        request.setHeader(b"Content-Type", b"application/json")
        request.setHeader(b"Cache-Control", b"no-store")
        body = {**self._build.as_dict(), "store": store}
        return json.dumps(body).encode("utf-8")


async def _awaited(check: StoreCheck) -> object:
    return await check()
