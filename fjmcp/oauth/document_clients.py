# -*- test-case-name: tests.oauth.test_document_clients -*-
"""
Clients named by a metadata document URL, resolved into client records.

The operator's known-client records answer first (no fetch); otherwise the
document is fetched through the guarded fetcher, validated and cached (a
failure too, briefly). Concurrent requests for one URL share one fetch. A
resolved client is written to the store's client table (``known`` or
``cimd``) before it is returned, so the flow's rows (pending logins,
consents, codes, tokens) can name it like a registered client. The same
object fetches a client's ``jwks_uri`` for ``private_key_jwt``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine, Mapping
from typing import Any, Protocol, TypeVar

from attrs import define, field
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from fjmcp.oauth.client_documents import (
    ClientDocument,
    ClientDocumentError,
    client_id_url_problem,
    validate_client_document,
)
from fjmcp.oauth.document_cache import CachePolicy, TtlCache
from fjmcp.oauth.document_fetch import Fetched
from fjmcp.oauth.known_clients import KnownClients
from fjmcp.store.clients import ClientRecord, save_document_client_txn
from fjmcp.store.runner import TxnRunner

__all__ = ["DocumentClients", "Fetcher"]

T = TypeVar("T")


class Fetcher(Protocol):
    """`fjmcp.oauth.document_fetch.GuardedFetcher`, as used here."""

    def fetch(self, url: str) -> Deferred[Fetched]:
        """The body at ``url``, or a `ClientDocumentError`."""


_Cached = tuple[ClientDocument | ClientDocumentError, float]
_Keys = Mapping[str, Any] | ClientDocumentError


def _json(fetched: Fetched, what: str) -> Any:
    try:
        return json.loads(fetched.body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise ClientDocumentError(f"{what} is not valid JSON") from None


def _record(document: ClientDocument, kind: str, now: float) -> ClientRecord:
    return ClientRecord(
        client_id=document.client_id,
        kind=kind,
        auth_method=document.auth_method,
        grant_types=document.grant_types,
        redirect_uris=document.redirect_uris,
        client_name=document.client_name,
        metadata=document.metadata,
        created_at=now,
    )


@define
class DocumentClients:
    """Resolves document-URL client ids (known records first, then fetches)."""

    _store: TxnRunner
    _clock: IReactorTime
    _known: KnownClients
    _fetcher: Fetcher
    _policy: CachePolicy = CachePolicy()
    _served_methods: frozenset[str] = frozenset({"none", "private_key_jwt"})
    _documents: TtlCache[_Cached] = field(init=False)
    _keys: TtlCache[_Keys] = field(init=False)
    _in_flight: dict[str, Deferred[Any]] = field(init=False, factory=dict)
    _saved: TtlCache[ClientRecord] = field(init=False)

    log = Logger()

    def __attrs_post_init__(self) -> None:
        self._documents = TtlCache(self._clock, self._policy.max_entries)
        self._keys = TtlCache(self._clock, self._policy.max_entries)
        self._saved = TtlCache(self._clock, self._policy.max_entries)

    async def resolve(self, client_id: str) -> ClientRecord:
        """The client ``client_id`` names; raises `ClientDocumentError`."""
        problem = client_id_url_problem(client_id)
        if problem is not None:
            raise ClientDocumentError(f"The client_id is not a usable URL: {problem}.")
        known = self._known.get(client_id)
        if known is not None:
            return await self._save(
                _record(known, "known", self._clock.seconds()), None
            )
        document, expires_at = await self._document(client_id)
        return await self._save(
            _record(document, "cimd", self._clock.seconds()), expires_at
        )

    async def _save(
        self, record: ClientRecord, expires_at: float | None
    ) -> ClientRecord:
        """
        Write the record unless this process wrote the same one lately (the
        row is written again after ``floor`` seconds, in case a purge on
        another node removed it).
        """
        previous = self._saved.get(record.client_id)
        if previous is None or previous.metadata != record.metadata:
            await self._store.run(save_document_client_txn, record, expires_at)
            self._saved.put(record.client_id, record, self._policy.floor)
        return record

    async def _document(self, url: str) -> tuple[ClientDocument, float]:
        cached = self._documents.get(url)
        if cached is None:
            cached = await self._shared(url, lambda: self._fetch_document(url))
        found, expires_at = cached
        if isinstance(found, ClientDocumentError):
            raise found
        return found, expires_at

    async def _shared(self, key: str, work: Callable[[], Coroutine[Any, Any, T]]) -> T:
        """Run ``work`` once for all concurrent callers with the same ``key``."""
        running = self._in_flight.get(key)
        if running is None:
            running = Deferred.fromCoroutine(work())
            self._in_flight[key] = running

            def done(result: Any) -> Any:
                self._in_flight.pop(key, None)
                return result

            running.addBoth(done)
        waiter: Deferred[T] = Deferred()

        def hand_over(result: Any) -> Any:
            if isinstance(result, Failure):
                waiter.errback(result)
            else:
                waiter.callback(result)
            return result

        running.addBoth(hand_over)
        return await waiter

    async def _fetch_document(self, url: str) -> _Cached:
        try:
            fetched = await self._fetcher.fetch(url)
            document = validate_client_document(
                _json(fetched, "The client's metadata document"),
                url,
                self._served_methods,
            )
        except ClientDocumentError as e:
            self.log.info(
                "client metadata document refused: {url}: {why}", url=url, why=str(e)
            )
            error = ClientDocumentError(
                f"The application's metadata document ({url[:200]}) cannot be used: {e}"
            )
            self._documents.put(url, (error, 0.0), self._policy.negative_ttl)
            return error, 0.0
        ttl = self._policy.lifetime(fetched.lifetime)
        expires_at = self._clock.seconds() + ttl
        self._documents.put(url, (document, expires_at), ttl)
        return document, expires_at

    async def keys_for(self, client: ClientRecord) -> Mapping[str, Any]:
        """
        The JWKS a ``private_key_jwt`` client signs with: pinned in its record
        (``jwks``) or fetched from its ``jwks_uri``. Raises `ClientDocumentError`.
        """
        jwks = client.metadata.get("jwks")
        if isinstance(jwks, Mapping):
            return jwks
        uri = client.metadata.get("jwks_uri")
        if not isinstance(uri, str) or client_id_url_problem(uri) is not None:
            raise ClientDocumentError("the client publishes no usable keys")
        found = self._keys.get(uri)
        if found is None:
            found = await self._shared("jwks " + uri, lambda: self._fetch_keys(uri))
        if isinstance(found, ClientDocumentError):
            raise found
        return found

    async def _fetch_keys(self, uri: str) -> _Keys:
        try:
            fetched = await self._fetcher.fetch(uri)
            keys = _json(fetched, "The client's JWKS")
            if not isinstance(keys, dict) or not isinstance(keys.get("keys"), list):
                raise ClientDocumentError("the JWKS has no keys list")
        except ClientDocumentError as e:
            self._keys.put(uri, e, self._policy.negative_ttl)
            return e
        self._keys.put(uri, keys, self._policy.lifetime(fetched.lifetime))
        return keys
