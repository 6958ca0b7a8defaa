# -*- test-case-name: tests.bridge.test_request_state -*-
"""
The ``requestState`` of an input-required result, sealed.

A stateless client that is asked for input (sampling, elicitation, roots)
retries its call with the answers and the ``requestState`` it was given.
The client is not trusted with it: the state is AES-256-GCM sealed (keys
derived from the broker's token key ring, so there is one secret to
guard) and names who may use it and for what: the identity (user and OAuth
client), the original request (method, and a digest of its params), the
held call it resumes, the node that holds that call, and an expiry. A
token that does not open, is past its expiry or was made for another
identity or request is refused (`RequestStateError`, with a reason for the
log only); one made on another node says so (`held_elsewhere`).

The node is also written in clear, ``v2.<node>.<sealed>``, and bound to
the sealed part as associated data: a balancer routes the retry to that
node by reading the prefix (``deploy/haproxy/haproxy.cfg``), and a changed
prefix makes the token refuse to open.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
from collections.abc import Callable, Mapping
from typing import Any, Final

from attrs import frozen
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

__all__ = [
    "RequestStateError",
    "RequestStateSealer",
    "StateClaims",
    "request_digest",
]

_PREFIX: Final = "v2."
_AAD: Final = b"fjmcp/request-state/v2\x00"
_NONCE_BYTES: Final = 12
#: Longest token opened (a sealed state is about 300 characters).
MAX_TOKEN_CHARS: Final = 4096
#: Params that are not part of what a retry must repeat.
_NOT_BOUND: Final = ("_meta", "inputResponses", "requestState")


class RequestStateError(Exception):
    """A requestState that may not be used; ``reason`` is for the log."""

    def __init__(self, reason: str, *, node: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.node = node
        """Set when the state is good but was made on another node."""


def request_digest(method: str, params: Mapping[str, Any]) -> str:
    """What a retry must repeat: the method and its params (without _meta)."""
    bound = {k: v for k, v in params.items() if k not in _NOT_BOUND}
    text = json.dumps([method, bound], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:32]


@frozen
class StateClaims:
    """What a requestState says."""

    user: str
    client_id: str
    digest: str
    held: str
    """The id of the held call it resumes."""
    node: str
    expires: float


def _aad(node: str) -> bytes:
    """The associated data: the format and the node named in clear."""
    return _AAD + node.encode("utf-8", "surrogatepass")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


@frozen
class RequestStateSealer:
    """
    Seals requestState tokens with the active key and opens them with any
    current key, on one node; keys from the token key ring, so a key
    rotation voids no state in flight and every node opens every node's.
    """

    keys: Callable[[], tuple[bytes, ...]]
    """The keys as they are now, active first."""
    node: str

    @classmethod
    def local(cls, node: str) -> RequestStateSealer:
        """A sealer with a fresh key its states open only in this process."""
        key = (os.urandom(32),)
        return cls(lambda: key, node)

    def seal(self, claims: StateClaims) -> str:
        """The token for ``claims`` (random nonce; opaque to the client)."""
        plain = json.dumps(
            {
                "u": claims.user,
                "c": claims.client_id,
                "d": claims.digest,
                "h": claims.held,
                "n": claims.node,
                "e": claims.expires,
            },
            separators=(",", ":"),
        ).encode("utf-8")
        nonce = os.urandom(_NONCE_BYTES)
        sealed = AESGCM(self.keys()[0]).encrypt(nonce, plain, _aad(claims.node))
        return f"{_PREFIX}{claims.node}.{_b64(nonce + sealed)}"

    def _decrypt(self, raw: bytes, node: str) -> bytes:
        nonce, sealed = raw[:_NONCE_BYTES], raw[_NONCE_BYTES:]
        for key in self.keys():
            try:
                return AESGCM(key).decrypt(nonce, sealed, _aad(node))
            except InvalidTag:
                continue
        raise RequestStateError("does not open (tampered or another key)")

    def open(
        self, token: Any, *, user: str, client_id: str, digest: str, now: float
    ) -> StateClaims:
        """
        The claims of ``token`` if it may resume a call of ``user`` through
        ``client_id`` with params of ``digest`` at ``now`` on this node.
        Raises `RequestStateError`.
        """
        if not isinstance(token, str) or len(token) > MAX_TOKEN_CHARS:
            raise RequestStateError("not a string of a sensible length")
        if not token.startswith(_PREFIX) or "." not in token[len(_PREFIX) :]:
            raise RequestStateError("unknown format")
        # The sealed part is base64url (no dots): the node is what is left.
        node, body = token[len(_PREFIX) :].rsplit(".", 1)
        try:
            raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
        except (binascii.Error, ValueError):
            raise RequestStateError("not base64") from None
        if len(raw) < _NONCE_BYTES + 16:
            raise RequestStateError("truncated")
        plain = self._decrypt(raw, node)
        try:
            values = json.loads(plain)
            claims = StateClaims(
                user=str(values["u"]),
                client_id=str(values["c"]),
                digest=str(values["d"]),
                held=str(values["h"]),
                node=str(values["n"]),
                expires=float(values["e"]),
            )
        except (ValueError, KeyError, TypeError):  # pragma: no cover - we sealed it
            raise RequestStateError("malformed claims") from None
        if claims.node != node:  # pragma: no cover - bound as associated data
            raise RequestStateError("malformed claims")
        if claims.user != user or claims.client_id != client_id:
            raise RequestStateError("made for another identity")
        if claims.digest != digest:
            raise RequestStateError("made for another request")
        if claims.expires <= now:
            raise RequestStateError("expired")
        if claims.node != self.node:
            raise RequestStateError("held on another node", node=claims.node)
        return claims
