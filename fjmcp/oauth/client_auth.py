# -*- test-case-name: tests.oauth.test_client_auth -*-
"""
Client authentication at the token and revocation endpoints, as a registry
of authenticators keyed by ``token_endpoint_auth_method``.

Each method is one small class that finds its credentials in a request
(`ClientAuthenticator.presented`) and checks them against the client's
registration (`ClientAuthenticator.verify`); a new method, such as
``private_key_jwt``, is one more class given to `ClientAuthentication`.
The registry holds the rules common to all methods: a request proves
itself with one method only; an ``Authorization`` header must be one a
method understands; a ``client_id`` in the form must name the client the
credentials name; the client must exist and must use the method it
presented. A request that proves nothing is a public client's (``none``).
Every failure is `InvalidClientError` (401), with a ``Basic`` challenge
when the client tried HTTP Basic, except two methods at once
(`InvalidRequestError`).
"""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Iterable, Mapping
from typing import Final, Protocol
from urllib.parse import unquote

from attrs import field, frozen

from fjmcp.oauth.client_documents import ClientDocumentError
from fjmcp.oauth.errors import InvalidClientError, InvalidRequestError
from fjmcp.oauth.tokens import hash_secret
from fjmcp.store.clients import ClientRecord

__all__ = [
    "BASIC_CHALLENGE",
    "ClientAuthentication",
    "ClientAuthenticator",
    "ClientFinder",
    "ClientSecretBasic",
    "ClientSecretPost",
    "NoClientAuthentication",
    "Presented",
    "default_client_authentication",
]

BASIC_CHALLENGE: Final = {"WWW-Authenticate": 'Basic realm="fjmcp"'}


@frozen
class Presented:
    """The credentials a request presents for one method."""

    method: str
    """The ``token_endpoint_auth_method`` they belong to."""
    client_id: str
    """The client they name."""
    credential: str | None = field(repr=False)
    """The proof (a secret, an assertion); ``None`` for a public client."""
    in_header: bool = False
    """Whether they came in the ``Authorization`` header."""
    challenge: Mapping[str, str] = field(factory=dict)
    """Headers of a 401 answer to a failure of these credentials."""


class ClientAuthenticator(Protocol):
    """One client authentication method."""

    @property
    def method(self) -> str:
        """The ``token_endpoint_auth_method`` this authenticator serves."""

    def presented(
        self, form: Mapping[str, str], authorization: bytes | None
    ) -> Presented | None:
        """
        This method's credentials in a request, or ``None`` when the request
        does not use this method. Raises `InvalidClientError` when it does,
        but malformed.
        """

    async def verify(self, client: ClientRecord, presented: Presented) -> None:
        """Raise `InvalidClientError` unless ``presented`` proves ``client``."""


class ClientFinder(Protocol):
    """Where the registry looks clients up (`fjmcp.oauth.clients.ClientDirectory`)."""

    async def find(self, client_id: str) -> ClientRecord | None:
        """The client ``client_id`` names, if any."""


def _secret_matches(client: ClientRecord, secret: str | None) -> bool:
    expected = client.secret_hash or ""
    return secret is not None and hmac.compare_digest(
        hash_secret(secret).encode(), expected.encode()
    )


@frozen
class NoClientAuthentication:
    """``none``: a public client names itself by ``client_id`` (PKCE guards it)."""

    method: str = "none"

    def presented(
        self, form: Mapping[str, str], authorization: bytes | None
    ) -> Presented | None:
        """A bare ``client_id`` in the form (no ``Authorization`` header)."""
        if authorization is not None:
            return None
        return Presented(self.method, form.get("client_id", ""), None)

    async def verify(self, client: ClientRecord, presented: Presented) -> None:
        """Nothing to prove."""


@frozen
class ClientSecretBasic:
    """``client_secret_basic``: id and secret in HTTP Basic (RFC 6749 §2.3.1)."""

    method: str = "client_secret_basic"

    def presented(
        self, form: Mapping[str, str], authorization: bytes | None
    ) -> Presented | None:
        """The form-urlencoded id and secret of a ``Basic`` header."""
        if authorization is None or authorization[:6].lower() != b"basic ":
            return None
        try:
            decoded = base64.b64decode(authorization[6:].strip(), validate=True)
            raw_id, sep, raw_secret = decoded.decode("utf-8").partition(":")
        except (binascii.Error, ValueError):
            raw_id, sep, raw_secret = "", "", ""
        if not sep:
            raise InvalidClientError(
                "malformed Basic credentials", headers=BASIC_CHALLENGE
            )
        return Presented(
            self.method,
            unquote(raw_id),
            unquote(raw_secret),
            in_header=True,
            challenge=BASIC_CHALLENGE,
        )

    async def verify(self, client: ClientRecord, presented: Presented) -> None:
        """The secret must be the client's."""
        if not _secret_matches(client, presented.credential):
            raise InvalidClientError(
                "client authentication failed", headers=presented.challenge
            )


@frozen
class ClientSecretPost:
    """``client_secret_post``: ``client_id`` and ``client_secret`` in the form."""

    method: str = "client_secret_post"

    def presented(
        self, form: Mapping[str, str], authorization: bytes | None
    ) -> Presented | None:
        """A ``client_secret`` form field."""
        secret = form.get("client_secret")
        if secret is None:
            return None
        return Presented(self.method, form.get("client_id", ""), secret)

    async def verify(self, client: ClientRecord, presented: Presented) -> None:
        """The secret must be the client's."""
        if not _secret_matches(client, presented.credential):
            raise InvalidClientError("client authentication failed")


class ClientAuthentication:
    """
    The registry: authenticates the client of a token or revocation request
    with the method its registration names.
    """

    def __init__(
        self, clients: ClientFinder, authenticators: Iterable[ClientAuthenticator]
    ) -> None:
        self._clients = clients
        self._authenticators: dict[str, ClientAuthenticator] = {}
        for authenticator in authenticators:
            if authenticator.method in self._authenticators:
                raise ValueError(f"two authenticators for {authenticator.method}")
            self._authenticators[authenticator.method] = authenticator

    @property
    def methods(self) -> tuple[str, ...]:
        """The ``token_endpoint_auth_method`` values served, sorted."""
        return tuple(sorted(self._authenticators))

    @property
    def registrable_methods(self) -> tuple[str, ...]:
        """
        The methods a dynamic registration may choose: those that need no
        keys published in a metadata document.
        """
        return tuple(
            method
            for method in self.methods
            if not getattr(self._authenticators[method], "needs_document", False)
        )

    @property
    def signing_algs(self) -> tuple[str, ...]:
        """The JWS algorithms of the assertion-based methods, sorted."""
        algs: set[str] = set()
        for authenticator in self._authenticators.values():
            algs.update(getattr(authenticator, "signing_algs", ()))
        return tuple(sorted(algs))

    def _presented(
        self, form: Mapping[str, str], authorization: bytes | None
    ) -> Presented:
        claims = [
            found
            for authenticator in self._authenticators.values()
            if (found := authenticator.presented(form, authorization)) is not None
        ]
        if authorization is not None and not any(c.in_header for c in claims):
            raise InvalidClientError("unsupported client authentication scheme")
        proving = [c for c in claims if c.credential is not None]
        if len(proving) > 1:
            raise InvalidRequestError("use one client authentication method")
        chosen = proving or claims
        if not chosen:
            raise InvalidClientError("client authentication is required")
        presented = chosen[0]
        if form.get("client_id", presented.client_id) != presented.client_id:
            raise InvalidClientError(
                "client_id does not match", headers=presented.challenge
            )
        return presented

    async def authenticate(
        self, form: Mapping[str, str], authorization: bytes | None
    ) -> ClientRecord:
        """
        The client of a request, proven with the method it registered.
        Raises `InvalidClientError` (401) or `InvalidRequestError`.
        """
        presented = self._presented(form, authorization)
        if not presented.client_id:
            raise InvalidClientError("client authentication is required")
        try:
            client = await self._clients.find(presented.client_id)
        except ClientDocumentError as e:
            raise InvalidClientError(str(e), headers=presented.challenge) from None
        if client is None:
            raise InvalidClientError("unknown client", headers=presented.challenge)
        if client.auth_method != presented.method:
            raise InvalidClientError(
                f"this client authenticates with {client.auth_method}",
                headers=presented.challenge,
            )
        await self._authenticators[presented.method].verify(client, presented)
        return client


def default_client_authentication(
    clients: ClientFinder, *extra: ClientAuthenticator
) -> ClientAuthentication:
    """
    The registry of the secret-based and public methods, plus ``extra``
    ones (``private_key_jwt`` where clients have metadata documents).
    """
    return ClientAuthentication(
        clients,
        (ClientSecretBasic(), ClientSecretPost(), NoClientAuthentication(), *extra),
    )
