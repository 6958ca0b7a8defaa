# -*- test-case-name: tests.oauth.test_document_clients -*-
"""
What the client-document machinery reads of the configuration, and the
one factory that assembles it for the composition root.

The guarded agent is built here from the reactor (https only, public
addresses only, TLS verified against the URL's host); tests build
`DocumentClients` themselves over ``StubTreq`` or a loopback agent.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from attrs import field, frozen

from fjmcp.oauth.document_cache import CachePolicy
from fjmcp.oauth.document_clients import DocumentClients
from fjmcp.oauth.document_fetch import FetchLimits, GuardedFetcher
from fjmcp.oauth.known_clients import KnownClients
from fjmcp.store.runner import TxnRunner
from fjmcp.upstream.lazy_http import LazyHTTPClient

if TYPE_CHECKING:
    from treq.client import HTTPClient
    from twisted.web.client import HTTPConnectionPool

__all__ = ["ClientDocumentSettings", "build_document_clients"]


@frozen
class ClientDocumentSettings:
    """Known-client overrides, fetch limits and cache bounds."""

    known_clients: KnownClients = field(factory=KnownClients.build)
    """The shipped records with the operator's changes, validated."""
    limits: FetchLimits = FetchLimits()
    cache: CachePolicy = CachePolicy()


def build_document_clients(
    settings: ClientDocumentSettings, store: TxnRunner, reactor: Any
) -> DocumentClients:
    """
    `DocumentClients` over the real network, through the guarded agent,
    which is made (and treq imported) at the first fetch.
    """
    timeout = settings.limits.timeout

    def make(reactor: Any, pool: HTTPConnectionPool) -> HTTPClient:
        from treq.client import HTTPClient

        from fjmcp.oauth.guarded_agent import guarded_agent

        return HTTPClient(guarded_agent(reactor, connect_timeout=timeout, pool=pool))

    return DocumentClients(
        store,
        reactor,
        settings.known_clients,
        GuardedFetcher(
            LazyHTTPClient(reactor, make, persistent=False), reactor, settings.limits
        ),
        settings.cache,
    )
