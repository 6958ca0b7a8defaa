# -*- test-case-name: tests.oauth.test_known_clients -*-
"""
Known clients: the operator's records of well-known vendors' metadata
documents, consulted before any fetch.

Some vendors answer a fetch from a datacenter with a bot challenge
(observed), so the broker ships what their documents say as versioned data
(``known_clients.toml`` beside this module) and an operator overrides a
record field by field (a pinned ``jwks`` replaces a ``jwks_uri``), adds
records, or disables one (``enabled = false``) in the ``known_clients``
setting. Every record is checked like a fetched
document, so a mistake in either is found at start-up, not at a login.
"""

from __future__ import annotations

import tomllib
from collections.abc import Collection, Iterator, Mapping
from importlib.resources import files
from typing import Any, Final

from attrs import frozen

from fjmcp.oauth.client_documents import (
    DOCUMENT_AUTH_METHODS,
    ClientDocument,
    ClientDocumentError,
    client_id_url_problem,
    validate_client_document,
)
from fjmcp.policy.rules import ClientNames

__all__ = ["KnownClients", "shipped_records"]

_ENABLED: Final = "enabled"


def shipped_records() -> dict[str, dict[str, Any]]:
    """The records shipped with fjmcp, keyed by document URL."""
    text = files("fjmcp.oauth").joinpath("known_clients.toml").read_text("utf-8")
    return {url: dict(record) for url, record in tomllib.loads(text).items()}


def _merged(
    shipped: Mapping[str, Mapping[str, Any]], overrides: Mapping[str, Any]
) -> Iterator[tuple[str, Mapping[str, Any]]]:
    for url in dict.fromkeys([*shipped, *overrides]):
        record = dict(shipped.get(url, {}))
        override = overrides.get(url)
        if override is not None:
            if not isinstance(override, Mapping):
                raise ClientDocumentError("must be a table of document fields")
            # Pinned keys replace fetched ones and the other way round.
            for given, other in (("jwks", "jwks_uri"), ("jwks_uri", "jwks")):
                if given in override:
                    record.pop(other, None)
            record.update(override)
        yield url, record


def _document(
    url: str, record: Mapping[str, Any], served: Collection[str]
) -> ClientDocument | None:
    enabled = record.get(_ENABLED, True)
    if not isinstance(enabled, bool):
        raise ClientDocumentError("enabled must be true or false")
    if not enabled:
        return None
    problem = client_id_url_problem(url)
    if problem is not None:
        raise ClientDocumentError(problem)
    fields = {k: v for k, v in record.items() if k != _ENABLED}
    return validate_client_document({**fields, "client_id": url}, url, served)


@frozen
class KnownClients:
    """The enabled known-client records, by document URL."""

    documents: Mapping[str, ClientDocument]

    @classmethod
    def build(
        cls,
        overrides: Mapping[str, Any] | None = None,
        served_methods: Collection[str] = DOCUMENT_AUTH_METHODS,
        shipped: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> KnownClients:
        """
        The shipped records with the operator's ``overrides`` applied.
        Raises `ValueError` naming every bad record.
        """
        base = shipped_records() if shipped is None else shipped
        documents: dict[str, ClientDocument] = {}
        problems: list[str] = []
        try:
            merged = list(_merged(base, overrides or {}))
        except ClientDocumentError as e:  # pragma: no cover - checked per record
            raise ValueError(f"known_clients: {e}") from None
        for url, record in merged:
            try:
                document = _document(url, record, served_methods)
            except ClientDocumentError as e:
                problems.append(f"known_clients[{url!r}]: {e}")
                continue
            if document is not None:
                documents[url] = document
        if problems:
            raise ValueError("; ".join(problems))
        return cls(documents)

    def get(self, client_id: str) -> ClientDocument | None:
        """The enabled record of ``client_id``, if any."""
        return self.documents.get(client_id)

    def client_names(self) -> ClientNames:
        """The records' names, which policy rules name known clients by."""
        return ClientNames(
            (url, document.client_name)
            for url, document in self.documents.items()
            if document.client_name
        )
