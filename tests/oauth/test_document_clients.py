# -*- test-case-name: tests.oauth.test_document_clients -*-
"""
Tests for `fjmcp.oauth.document_clients`: client_id URLs resolved from
known records or fetched documents, cached, and stored as clients.
"""

from __future__ import annotations

from typing import Any

import pytest
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.python.failure import Failure

from fjmcp.oauth.client_documents import ClientDocumentError
from fjmcp.oauth.clients import ClientDirectory
from fjmcp.oauth.document_cache import CachePolicy
from fjmcp.oauth.document_clients import DocumentClients
from fjmcp.oauth.document_fetch import Fetched, GuardedFetcher
from fjmcp.oauth.known_clients import KnownClients
from fjmcp.store.clients import ClientRecord, get_client_txn
from tests.oauth.support import MemoryStore, settle
from tests.oauth.vendor_web import VendorWeb

URL = "https://app.example/oauth/client.json"
CLAUDE = "https://claude.ai/oauth/mcp-oauth-client-metadata"
DOC = {
    "client_id": URL,
    "client_name": "App",
    "redirect_uris": ["https://app.example/cb"],
    "grant_types": ["authorization_code", "refresh_token"],
}
POLICY = CachePolicy(floor=300, ceiling=3600, max_entries=10, negative_ttl=60)


class _Setup:
    def __init__(self, **known: Any) -> None:
        self.clock = Clock()
        self.clock.advance(1000)
        self.store = MemoryStore()
        self.web = VendorWeb()
        self.documents = DocumentClients(
            self.store,
            self.clock,
            KnownClients.build(known),
            GuardedFetcher(self.web.client(), self.clock),
            POLICY,
        )
        self.directory = ClientDirectory(self.store, self.clock, self.documents)

    def find(self, client_id: str) -> ClientRecord | Failure | None:
        return settle(self.directory.find(client_id))


def test_a_known_client_is_never_fetched() -> None:
    """Claude.ai's record answers, nothing is fetched, the row is stored."""
    s = _Setup()
    client = s.find(CLAUDE)
    assert isinstance(client, ClientRecord)
    assert (client.kind, client.client_name, client.auth_method) == (
        "known",
        "Claude",
        "none",
    )
    assert s.web.hits == []
    stored = s.store.sync.run(get_client_txn, CLAUDE)
    assert stored is not None and stored.kind == "known"


def test_a_disabled_known_client_is_fetched() -> None:
    """With its record disabled, a vendor's document is fetched like any."""
    s = _Setup(**{CLAUDE: {"enabled": False}})
    s.web.serve(CLAUDE, {**DOC, "client_id": CLAUDE})
    client = s.find(CLAUDE)
    assert isinstance(client, ClientRecord) and client.kind == "cimd"
    assert s.web.hits_of(CLAUDE) == 1


def test_a_fetched_document_is_a_stored_client_cached_per_its_headers() -> None:
    """The document is fetched once while fresh, again once stale."""
    s = _Setup()
    s.web.serve(URL, DOC, headers={"Cache-Control": "max-age=600"})
    client = s.find(URL)
    assert isinstance(client, ClientRecord)
    assert client.redirect_uris == ("https://app.example/cb",)
    assert client.refresh_allowed and client.kind == "cimd"
    stored = s.store.sync.run(get_client_txn, URL)
    assert stored is not None and stored.client_name == "App"
    s.clock.advance(599)
    assert isinstance(s.find(URL), ClientRecord)
    assert s.web.hits_of(URL) == 1
    s.web.serve(URL, {**DOC, "client_name": "App 2"})
    s.clock.advance(1)
    client = s.find(URL)
    assert isinstance(client, ClientRecord) and client.client_name == "App 2"
    assert s.web.hits_of(URL) == 2
    stored = s.store.sync.run(get_client_txn, URL)
    assert stored is not None and stored.client_name == "App 2"


def test_a_bad_document_is_refused_and_not_refetched_for_a_while() -> None:
    """The negative cache: one fetch per negative_ttl for a bad client_id."""
    s = _Setup()
    s.web.serve(URL, {**DOC, "client_id": "https://evil.example/c"})
    for _ in range(5):
        found = s.find(URL)
        assert isinstance(found, Failure) and found.check(ClientDocumentError)
        assert "client_id is not the URL" in str(found.value)
    assert s.web.hits_of(URL) == 1
    s.clock.advance(60)
    s.web.serve(URL, DOC)
    assert isinstance(s.find(URL), ClientRecord)
    assert s.store.sync.run(get_client_txn, "https://evil.example/c") is None


@pytest.mark.parametrize(
    "body",
    [b"not json", b"\xff\xfe", b"[1, 2]", b"null", b"{" * 5000 + b"}" * 5000],
)
def test_documents_that_are_not_objects_are_refused(body: bytes) -> None:
    """Undecodable or non-object bodies give a clear error."""
    s = _Setup()
    s.web.serve(URL, body)
    found = s.find(URL)
    assert isinstance(found, Failure) and found.check(ClientDocumentError)


def test_a_bad_client_id_url_is_refused_without_fetching() -> None:
    """An https client_id without a path is refused before any request."""
    s = _Setup()
    found = s.find("https://app.example/")
    assert isinstance(found, Failure) and found.check(ClientDocumentError)
    assert s.web.hits == []


def test_registered_clients_are_still_found_in_the_store() -> None:
    """A non-URL client_id goes to the store as before."""
    s = _Setup()
    assert s.find("no-such-client") is None


class _SlowFetcher:
    """A fetcher whose answers the test delivers."""

    def __init__(self) -> None:
        self.pending: list[Deferred[Fetched]] = []

    def fetch(self, url: str) -> Deferred[Fetched]:
        d: Deferred[Fetched] = Deferred()
        self.pending.append(d)
        return d


def test_concurrent_lookups_share_one_fetch() -> None:
    """Two authorizes racing on one URL cause one fetch."""
    clock = Clock()
    fetcher = _SlowFetcher()
    documents = DocumentClients(
        MemoryStore(), clock, KnownClients.build(), fetcher, POLICY
    )
    results: list[Any] = []
    for _ in range(3):
        Deferred.fromCoroutine(documents.resolve(URL)).addBoth(results.append)
    assert len(fetcher.pending) == 1 and results == []
    import json

    fetcher.pending[0].callback(Fetched(URL, json.dumps(DOC).encode(), None))
    assert len(results) == 3
    assert all(isinstance(r, ClientRecord) for r in results)


def test_keys_come_pinned_or_from_jwks_uri() -> None:
    """keys_for uses a record's jwks, or fetches (and caches) its jwks_uri."""
    s = _Setup()
    keys = {"keys": [{"kty": "EC", "crv": "P-256", "x": "a", "y": "b"}]}
    pinned = ClientRecord(
        URL, "cimd", "private_key_jwt", (), (), metadata={"jwks": keys}
    )
    assert settle(s.documents.keys_for(pinned)) == keys
    uri = "https://app.example/jwks.json"
    s.web.serve(uri, keys)
    remote = ClientRecord(
        URL, "cimd", "private_key_jwt", (), (), metadata={"jwks_uri": uri}
    )
    assert settle(s.documents.keys_for(remote)) == keys
    assert settle(s.documents.keys_for(remote)) == keys
    assert s.web.hits_of(uri) == 1
    bare = ClientRecord(URL, "cimd", "private_key_jwt", (), ())
    failed = settle(s.documents.keys_for(bare))
    assert isinstance(failed, Failure) and failed.check(ClientDocumentError)
    s.web.serve("https://app.example/bad.json", {"no": "keys"})
    bad = ClientRecord(
        URL,
        "cimd",
        "private_key_jwt",
        (),
        (),
        metadata={"jwks_uri": "https://app.example/bad.json"},
    )
    failed = settle(s.documents.keys_for(bad))
    assert isinstance(failed, Failure) and failed.check(ClientDocumentError)


def test_a_removed_row_is_written_again() -> None:
    """If another node purged the client's row, it is back within the floor."""
    s = _Setup()
    assert isinstance(s.find(CLAUDE), ClientRecord)
    s.store.conn.execute("DELETE FROM clients WHERE client_id = ?", (CLAUDE,))
    s.clock.advance(POLICY.floor)
    assert isinstance(s.find(CLAUDE), ClientRecord)
    assert s.store.sync.run(get_client_txn, CLAUDE) is not None
