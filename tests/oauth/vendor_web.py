# -*- test-case-name: tests.oauth.test_document_fetch -*-
"""
The vendors' web, in memory: a twisted.web resource that answers by host
and path, for fetching client metadata documents and JWKS over
``StubTreq`` (no sockets), and a key pair to sign client assertions with.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from treq.testing import StubTreq
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET

__all__ = ["HANG", "SigningKey", "VendorWeb"]

#: A page body that never finishes (a server that hangs).
HANG = object()


class VendorWeb(Resource):
    """Pages by (host, path); every request is recorded in ``hits``."""

    isLeaf = True

    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.pages: dict[tuple[str, str], tuple[int, dict[str, str], Any]] = {}
        self.hits: list[tuple[str, str]] = []
        self.hanging: list[Any] = []

    def serve(
        self,
        url: str,
        body: Any,
        status: int = 200,
        headers: dict[str, str] | None = None,
    ) -> None:
        """Answer ``url`` with ``body`` (JSON unless bytes, or `HANG`)."""
        rest = url.split("://", 1)[1]
        host, _, path = rest.partition("/")
        self.pages[(host, "/" + path)] = (status, dict(headers or {}), body)

    def hits_of(self, url: str) -> int:
        """How many requests asked for ``url``."""
        rest = url.split("://", 1)[1]
        host, _, path = rest.partition("/")
        return self.hits.count((host, "/" + path))

    def render(self, request: Any) -> Any:
        """Answer the page of the request's host and path (404 otherwise)."""
        host = request.getRequestHostname().decode()
        path = request.path.decode()
        self.hits.append((host, path))
        found = self.pages.get((host, path))
        if found is None:
            request.setResponseCode(404)
            return b"not found"
        status, headers, body = found
        request.setResponseCode(status)
        for name, value in headers.items():
            request.setHeader(name.encode(), value.encode())
        if body is HANG:
            self.hanging.append(request)
            return NOT_DONE_YET
        if not isinstance(body, bytes):
            request.setHeader(b"content-type", b"application/json")
            body = json.dumps(body).encode()
        return body

    def client(self) -> Any:
        """A treq client whose requests this web answers."""
        return StubTreq(self)


class SigningKey:
    """A key pair (EC P-256, or RSA for RS256): its public JWK, and assertions."""

    def __init__(self, kid: str = "k1", alg: str = "ES256") -> None:
        self.kid = kid
        self.alg = alg
        public: dict[str, Any]
        if alg == "RS256":
            self.private: Any = rsa.generate_private_key(65537, 2048)
            public = json.loads(
                jwt.algorithms.RSAAlgorithm.to_jwk(self.private.public_key())
            )
        else:
            self.private = ec.generate_private_key(ec.SECP256R1())
            public = json.loads(
                jwt.algorithms.ECAlgorithm.to_jwk(self.private.public_key())
            )
        self.jwk = {**public, "kid": kid, "alg": alg, "use": "sig"}

    @property
    def jwks(self) -> dict[str, Any]:
        """A JWKS holding the public key."""
        return {"keys": [self.jwk]}

    def assertion(
        self, client_id: str, audience: str, now: float, **claims: Any
    ) -> str:
        """A client assertion (RFC 7523) valid at ``now`` unless overridden."""
        body: dict[str, Any] = {
            "iss": client_id,
            "sub": client_id,
            "aud": audience,
            "iat": int(now),
            "exp": int(now) + 60,
            "jti": uuid.uuid4().hex,
        }
        body.update(claims)
        body = {k: v for k, v in body.items() if v is not None}
        headers = {"kid": self.kid}
        return jwt.encode(body, self.private, algorithm=self.alg, headers=headers)
