# -*- test-case-name: tests.oauth.test_private_key_jwt -*-
"""
``private_key_jwt`` (RFC 7523 §2.2, OpenID Connect Core §9): a client proves
itself with a short-lived JWT signed by a key it publishes.

Only clients with a metadata document (or an operator's record of one) use
it: their keys come from the document's ``jwks``, a ``jwks`` pinned in the
record, or its ``jwks_uri`` fetched through the guarded fetcher. An
assertion must be signed with an asymmetric algorithm the broker
advertises, name the client as ``iss`` and ``sub``, name the broker (its
issuer or token endpoint) in ``aud``, expire soon (``exp`` at most
`MAX_LIFETIME` ahead, by the broker's clock), and carry a ``jti`` used
once: the store remembers spent ids until they expire, so a replay fails
on every node. PyJWT checks the signature; the times are checked here,
against the injected clock. PyJWT is imported at the first assertion,
not with the authorization server: few clients use this method.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any, Final, Protocol

from attrs import frozen
from twisted.internet.interfaces import IReactorTime

from fjmcp.oauth.client_auth import Presented
from fjmcp.oauth.client_documents import ClientDocumentError
from fjmcp.oauth.errors import InvalidClientError
from fjmcp.store.assertions import spend_assertion_txn
from fjmcp.store.clients import ClientRecord
from fjmcp.store.runner import TxnRunner

__all__ = [
    "ASSERTION_TYPE",
    "MAX_LIFETIME",
    "SIGNING_ALGS",
    "KeySource",
    "PrivateKeyJwt",
]

ASSERTION_TYPE: Final = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
#: Asymmetric algorithms only: ``none`` and HMAC (keyed with a public key)
#: would let anyone sign.
SIGNING_ALGS: Final = ("ES256", "ES384", "EdDSA", "PS256", "RS256")
#: The furthest ahead an assertion's ``exp`` may be.
MAX_LIFETIME: Final = 300.0
#: Clock skew allowed on ``exp``, ``nbf`` and ``iat``.
LEEWAY: Final = 30.0
MAX_ASSERTION: Final = 16 * 1024
MAX_JTI: Final = 512


class KeySource(Protocol):
    """Where a client's keys are found (`DocumentClients.keys_for`)."""

    async def keys_for(self, client: ClientRecord) -> Mapping[str, Any]:
        """The client's JWKS; raises `ClientDocumentError`."""


def _claim_client_id(assertion: str) -> str:
    """The client an assertion claims to be (unverified: only to look it up)."""
    import jwt

    try:
        claims = jwt.decode(assertion, options={"verify_signature": False})
    except jwt.PyJWTError:
        return ""
    sub = claims.get("sub") if isinstance(claims, dict) else None
    return sub if isinstance(sub, str) else ""


def _keys(jwks: Mapping[str, Any], alg: str, kid: Any) -> list[Any]:
    """The keys of ``jwks`` that may have signed with ``alg`` (and ``kid``)."""
    import jwt

    keys = []
    for entry in jwks.get("keys", ()):
        if not isinstance(entry, dict) or "d" in entry:
            continue  # never accept private (or symmetric) key material
        if kid is not None and entry.get("kid") != kid:
            continue
        if entry.get("alg", alg) != alg or entry.get("use", "sig") != "sig":
            continue
        try:
            keys.append(jwt.PyJWK.from_dict(entry, algorithm=alg))
        except (jwt.PyJWTError, ValueError, TypeError, KeyError):
            continue
    return keys


@frozen
class PrivateKeyJwt:
    """The ``private_key_jwt`` authenticator of `ClientAuthentication`."""

    _issuer: str
    _token_endpoint: str
    _clock: IReactorTime
    _keys: KeySource
    _store: TxnRunner
    method: str = "private_key_jwt"
    signing_algs: tuple[str, ...] = SIGNING_ALGS
    needs_document: bool = True
    """Its keys come from a metadata document: not for dynamic registration."""

    def presented(
        self, form: Mapping[str, str], authorization: bytes | None
    ) -> Presented | None:
        """``client_assertion_type`` and ``client_assertion`` in the form."""
        kind = form.get("client_assertion_type")
        assertion = form.get("client_assertion")
        if kind is None and assertion is None:
            return None
        if kind != ASSERTION_TYPE:
            raise InvalidClientError(f"client_assertion_type must be {ASSERTION_TYPE}")
        if not assertion or len(assertion) > MAX_ASSERTION:
            raise InvalidClientError("client_assertion is missing or too long")
        client_id = form.get("client_id") or _claim_client_id(assertion)
        return Presented(self.method, client_id, assertion)

    async def verify(self, client: ClientRecord, presented: Presented) -> None:
        """The assertion must be valid, fresh, the client's, and new."""
        import jwt

        assertion = presented.credential or ""
        try:
            header = jwt.get_unverified_header(assertion)
        except jwt.PyJWTError:
            raise InvalidClientError("client_assertion is not a JWT") from None
        alg = header.get("alg")
        if alg not in self.signing_algs:
            allowed = ", ".join(self.signing_algs)
            raise InvalidClientError(
                f"client_assertion must be signed with one of {allowed}"
            )
        try:
            jwks = await self._keys.keys_for(client)
        except ClientDocumentError as e:
            raise InvalidClientError(
                f"the client's keys are unavailable: {e}"
            ) from None
        claims = self._verified(assertion, jwks, alg, header.get("kid"), client)
        await self._spend(client, claims)

    def _verified(
        self,
        assertion: str,
        jwks: Mapping[str, Any],
        alg: str,
        kid: Any,
        client: ClientRecord,
    ) -> dict[str, Any]:
        import jwt

        keys = _keys(jwks, alg, kid)
        if not keys:
            raise InvalidClientError("no key of the client matches the assertion")
        claims: dict[str, Any] | None = None
        for key in keys:
            try:
                claims = jwt.decode(
                    assertion,
                    key,
                    algorithms=[alg],
                    audience=[self._issuer, self._token_endpoint],
                    issuer=client.client_id,
                    options={
                        "require": ["iss", "sub", "aud", "exp", "jti"],
                        "verify_exp": False,
                        "verify_nbf": False,
                        "verify_iat": False,
                    },
                )
                break
            except jwt.InvalidSignatureError:
                continue
            except jwt.PyJWTError as e:
                raise InvalidClientError(f"client_assertion refused: {e}") from None
        if claims is None:
            raise InvalidClientError("client_assertion signature does not verify")
        if claims.get("sub") != client.client_id:
            raise InvalidClientError("client_assertion sub must be the client_id")
        self._check_times(claims)
        return claims

    def _check_times(self, claims: Mapping[str, Any]) -> None:
        now = self._clock.seconds()
        exp = claims.get("exp")
        if not isinstance(exp, int | float) or isinstance(exp, bool):
            raise InvalidClientError("client_assertion exp must be a number")
        if exp + LEEWAY < now:
            raise InvalidClientError("client_assertion has expired")
        if exp > now + MAX_LIFETIME + LEEWAY:
            raise InvalidClientError(
                f"client_assertion must expire within {MAX_LIFETIME:g} seconds"
            )
        for name in ("nbf", "iat"):
            value = claims.get(name)
            if value is None:
                continue
            if not isinstance(value, int | float) or isinstance(value, bool):
                raise InvalidClientError(f"client_assertion {name} must be a number")
            if value > now + LEEWAY:
                raise InvalidClientError(f"client_assertion {name} is in the future")

    async def _spend(self, client: ClientRecord, claims: Mapping[str, Any]) -> None:
        jti = claims.get("jti")
        if not isinstance(jti, str) or not 0 < len(jti) <= MAX_JTI:
            raise InvalidClientError("client_assertion jti must be a short string")
        digest = hashlib.sha256(
            json.dumps([client.client_id, jti]).encode()
        ).hexdigest()
        fresh = await self._store.run(
            spend_assertion_txn,
            client.client_id,
            digest,
            float(claims["exp"]) + LEEWAY,
            self._clock.seconds(),
        )
        if not fresh:
            raise InvalidClientError("client_assertion was already used (jti)")
