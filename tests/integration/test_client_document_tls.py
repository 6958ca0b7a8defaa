# -*- test-case-name: tests.integration.test_client_document_tls -*-
"""
Client metadata documents fetched over real TLS on loopback: a test CA
(``trustme``) issues a certificate for the vendor's host name, an https
server on 127.0.0.1 serves the document, and the guarded agent reaches it
through a resolver that maps that host name to the local port. The agent
is the production one: it verifies the certificate against the URL's
host, and connects to loopback only because the test opts in.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from typing import Any

import pytest
import pytest_twisted
import trustme
from OpenSSL import SSL
from treq.client import HTTPClient
from twisted.internet import reactor as _reactor
from twisted.internet import ssl
from twisted.internet.address import IPv4Address
from twisted.internet.interfaces import (
    IAddress,
    IHostnameResolver,
    IOpenSSLContextFactory,
    IResolutionReceiver,
)
from twisted.web.client import BrowserLikePolicyForHTTPS
from twisted.web.resource import Resource
from twisted.web.server import Site
from zope.interface import implementer

from fjmcp.oauth.client_documents import ClientDocumentError
from fjmcp.oauth.document_clients import DocumentClients
from fjmcp.oauth.document_fetch import FetchLimits, GuardedFetcher
from fjmcp.oauth.guarded_agent import guarded_agent
from fjmcp.oauth.known_clients import KnownClients
from fjmcp.store.clients import ClientRecord
from tests.oauth.support import MemoryStore

pytestmark = pytest.mark.integration

reactor: Any = _reactor
HOST = "chatgpt.com"
URL = f"https://{HOST}/oauth/client.json"
LOOPBACK = [ipaddress.ip_network("127.0.0.0/8")]
DOCUMENT = (
    b'{"client_id": "https://chatgpt.com/oauth/client.json", '
    b'"client_name": "ChatGPT", '
    b'"redirect_uris": ["https://chatgpt.com/connector_platform_oauth_redirect"], '
    b'"token_endpoint_auth_method": "none"}'
)


@implementer(IHostnameResolver)
class _MapToLoopback:
    """DNS for the test: every name resolves to 127.0.0.1 at ``port``."""

    def __init__(self, port: int) -> None:
        self.port = port

    def resolveHostName(
        self,
        receiver: IResolutionReceiver,
        hostName: str,
        portNumber: int = 0,
        addressTypes: Sequence[type[IAddress]] | None = None,
        transportSemantics: str = "TCP",
    ) -> Any:
        receiver.resolutionBegan(None)  # type: ignore[arg-type]
        receiver.addressResolved(IPv4Address("TCP", "127.0.0.1", self.port))
        receiver.resolutionComplete()
        return None


class _Document(Resource):
    """The vendor's metadata document."""

    isLeaf = True

    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call]

    def render_GET(self, request: Any) -> bytes:
        """The document, cacheable for ten minutes."""
        request.setHeader(b"content-type", b"application/json")
        request.setHeader(b"cache-control", b"max-age=600")
        return DOCUMENT


@implementer(IOpenSSLContextFactory)
class _ServerTLS:
    """The server's TLS context: the vendor's certificate from the test CA."""

    def __init__(self, cert: trustme.LeafCert) -> None:
        self._cert = cert

    def getContext(self) -> SSL.Context:
        """A context serving the certificate and its chain."""
        context = SSL.Context(SSL.TLS_METHOD)
        self._cert.configure_cert(context)
        return context


@pytest.fixture
def ca() -> trustme.CA:
    """A throwaway certificate authority."""
    return trustme.CA()


@pytest_twisted.async_yield_fixture
async def vendor(ca: trustme.CA) -> Any:
    """An https server on 127.0.0.1 with a certificate for HOST; its port."""
    port = reactor.listenSSL(
        0, Site(_Document()), _ServerTLS(ca.issue_cert(HOST)), interface="127.0.0.1"
    )
    yield port.getHost().port
    await port.stopListening()


def _documents(agent: Any) -> DocumentClients:
    return DocumentClients(
        MemoryStore(),
        reactor,
        KnownClients({}),
        GuardedFetcher(HTTPClient(agent), reactor, FetchLimits(timeout=10)),
    )


def _trusting(ca: trustme.CA) -> BrowserLikePolicyForHTTPS:
    return BrowserLikePolicyForHTTPS(
        trustRoot=ssl.Certificate.loadPEM(ca.cert_pem.bytes())
    )


@pytest_twisted.ensureDeferred
async def test_a_document_is_fetched_over_verified_tls(
    ca: trustme.CA, vendor: int
) -> None:
    """The vendor's certificate verifies for its host name; the client resolves."""
    agent = guarded_agent(
        reactor,
        resolver=_MapToLoopback(vendor),
        tls_policy=_trusting(ca),
        allowed_networks=LOOPBACK,
    )
    client = await _documents(agent).resolve(URL)
    assert isinstance(client, ClientRecord)
    assert (client.kind, client.client_name) == ("cimd", "ChatGPT")


@pytest_twisted.ensureDeferred
async def test_a_certificate_for_another_host_is_refused(
    ca: trustme.CA, vendor: int
) -> None:
    """TLS checks the URL's host name, not the address it resolved to."""
    agent = guarded_agent(
        reactor,
        resolver=_MapToLoopback(vendor),
        tls_policy=_trusting(ca),
        allowed_networks=LOOPBACK,
    )
    documents = _documents(agent)
    with pytest.raises(ClientDocumentError, match="could not be reached"):
        await documents.resolve("https://claude.ai/oauth/mcp-oauth-client-metadata")


@pytest_twisted.ensureDeferred
async def test_an_unknown_authority_is_refused(vendor: int) -> None:
    """A certificate from a CA the agent does not trust is refused."""
    agent = guarded_agent(
        reactor,
        resolver=_MapToLoopback(vendor),
        tls_policy=_trusting(trustme.CA()),
        allowed_networks=LOOPBACK,
    )
    with pytest.raises(ClientDocumentError, match="could not be reached"):
        await _documents(agent).resolve(URL)


@pytest_twisted.ensureDeferred
async def test_loopback_is_refused_unless_a_test_opts_in(
    ca: trustme.CA, vendor: int
) -> None:
    """Without allowed_networks the loopback answer is never connected to."""
    agent = guarded_agent(
        reactor, resolver=_MapToLoopback(vendor), tls_policy=_trusting(ca)
    )
    with pytest.raises(ClientDocumentError, match="could not be reached"):
        await _documents(agent).resolve(URL)
