# -*- test-case-name: tests.metrics.test_metrics -*-
"""
``GET /metrics`` on its own listener (``metrics_listen``), never on the
public one: the numbers describe the whole broker and are for the
operator's Prometheus only.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from twisted.application.service import Service
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import serverFromString
from twisted.internet.interfaces import IListeningPort, IReactorTCP, IReactorTime
from twisted.logger import Logger
from twisted.web.resource import Resource
from twisted.web.server import Site

__all__ = ["MetricsResource", "MetricsService", "metrics_site"]


class MetricsResource(Resource):
    """The registry in the Prometheus text format, rendered on the reactor."""

    isLeaf = True

    def __init__(self, registry: CollectorRegistry) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self._registry = registry

    def render_GET(self, request: Any) -> bytes:
        """The exposition (collectors read the components here, in-thread)."""
        request.setHeader(b"Content-Type", CONTENT_TYPE_LATEST.encode("ascii"))
        request.setHeader(b"Cache-Control", b"no-store")
        return generate_latest(self._registry)


class _QuietSite(Site):
    noisy = False

    def log(self, request: Any) -> None:
        """No access-log line per scrape."""


def metrics_site(registry: CollectorRegistry, reactor: IReactorTime) -> Site:
    """A site with ``/metrics`` and nothing else."""
    root = Resource()
    root.putChild(b"metrics", MetricsResource(registry))
    return _QuietSite(root, reactor=reactor)  # type: ignore[no-untyped-call]


class MetricsService(Service):
    """Listens on ``metrics_listen`` while the broker runs."""

    log = Logger()

    def __init__(self, reactor: IReactorTCP, listen: str, site: Site) -> None:
        self._reactor = reactor
        self._listen = listen
        self._site = site
        self.port: IListeningPort | None = None

    def startService(self) -> None:
        """Start listening (a failure is logged: metrics never stop the broker)."""
        super().startService()  # type: ignore[no-untyped-call]
        endpoint = serverFromString(self._reactor, self._listen)
        d = endpoint.listen(self._site)
        d.addCallbacks(self._listening, self._failed)

    def _listening(self, port: IListeningPort) -> None:
        self.port = port
        self.log.info("metrics at http://{address}/metrics", address=port.getHost())

    def _failed(self, failure: Any) -> None:
        self.log.failure(
            "cannot listen for metrics on {listen}", failure, listen=self._listen
        )

    def stopService(self) -> Deferred[None] | None:
        """Stop listening."""
        super().stopService()  # type: ignore[no-untyped-call]
        port, self.port = self.port, None
        if port is None:
            return None
        d: Deferred[None] = Deferred.fromCoroutine(_stop(port))
        return d


async def _stop(port: IListeningPort) -> None:
    stopped = port.stopListening()
    if stopped is not None:
        await stopped
