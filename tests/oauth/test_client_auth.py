# -*- test-case-name: tests.oauth.test_client_auth -*-
"""
The client authentication registry: each method's class, the rules common
to all methods, and a new method plugged in as one more class.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

import pytest
from attrs import frozen
from hypothesis import given
from hypothesis import strategies as st
from twisted.internet.defer import Deferred
from twisted.python.failure import Failure

from fjmcp.oauth.client_auth import (
    BASIC_CHALLENGE,
    ClientAuthentication,
    ClientSecretBasic,
    ClientSecretPost,
    NoClientAuthentication,
    Presented,
    default_client_authentication,
)
from fjmcp.oauth.errors import InvalidClientError, InvalidRequestError, OAuthError
from fjmcp.oauth.tokens import hash_secret
from fjmcp.store.clients import ClientRecord

SECRET = "s3cret-value-of-the-client"  # noqa: S105 - a test value


def _client(client_id: str, method: str) -> ClientRecord:
    return ClientRecord(
        client_id=client_id,
        kind="dcr",
        auth_method=method,
        grant_types=("authorization_code",),
        redirect_uris=("https://app.example/cb",),
        secret_hash=hash_secret(SECRET) if method.startswith("client_secret") else None,
    )


class _Clients:
    """An in-memory client finder."""

    def __init__(self, *clients: ClientRecord) -> None:
        self.by_id = {c.client_id: c for c in clients}

    async def find(self, client_id: str) -> ClientRecord | None:
        """The client, if known."""
        return self.by_id.get(client_id)


CLIENTS = _Clients(
    _client("public", "none"),
    _client("basic", "client_secret_basic"),
    _client("post", "client_secret_post"),
    _client("jwt", "private_key_jwt"),
)


def _basic(client_id: str, secret: str) -> bytes:
    return b"Basic " + base64.b64encode(f"{client_id}:{secret}".encode())


def _outcome(
    registry: ClientAuthentication,
    form: Mapping[str, str],
    authorization: bytes | None = None,
) -> Any:
    results: list[Any] = []
    Deferred.fromCoroutine(registry.authenticate(form, authorization)).addBoth(
        results.append
    )
    assert len(results) == 1
    return results[0]


def _client_of(form: Mapping[str, str], authorization: bytes | None = None) -> str:
    result = _outcome(default_client_authentication(CLIENTS), form, authorization)
    assert isinstance(result, ClientRecord), result
    return result.client_id


def _error(
    form: Mapping[str, str],
    authorization: bytes | None = None,
    registry: ClientAuthentication | None = None,
) -> OAuthError:
    result = _outcome(
        registry or default_client_authentication(CLIENTS), form, authorization
    )
    assert isinstance(result, Failure), result
    error = result.value
    assert isinstance(error, OAuthError), result
    return error


def test_default_registry_serves_the_advertised_methods() -> None:
    """The default registry serves exactly the methods the metadata advertises."""
    registry = default_client_authentication(CLIENTS)
    assert registry.methods == ("client_secret_basic", "client_secret_post", "none")
    assert registry.methods == ("client_secret_basic", "client_secret_post", "none")


def test_none_names_the_client_by_client_id() -> None:
    """A public client is authenticated by its client_id alone."""
    assert _client_of({"client_id": "public"}) == "public"


def test_client_secret_basic_accepts_the_right_secret() -> None:
    """HTTP Basic with the client's id and secret authenticates it."""
    assert _client_of({}, _basic("basic", SECRET)) == "basic"


def test_client_secret_basic_decodes_form_urlencoding() -> None:
    """Basic credentials are form-urlencoded (RFC 6749 §2.3.1) and decoded."""
    client = _client("a:b", "client_secret_basic")
    registry = default_client_authentication(_Clients(client))
    result = _outcome(registry, {}, _basic("a%3Ab", SECRET))
    assert isinstance(result, ClientRecord) and result.client_id == "a:b"


def test_client_secret_basic_accepts_a_matching_form_client_id() -> None:
    """A client_id in the form beside Basic is fine when it names the same client."""
    assert _client_of({"client_id": "basic"}, _basic("basic", SECRET)) == "basic"


def test_client_secret_post_accepts_the_right_secret() -> None:
    """client_id and client_secret in the form authenticate a post client."""
    assert _client_of({"client_id": "post", "client_secret": SECRET}) == "post"


@pytest.mark.parametrize(
    ("form", "authorization"),
    [
        ({}, _basic("basic", "wrong")),
        ({"client_id": "post", "client_secret": "wrong"}, None),
        ({"client_id": "post", "client_secret": ""}, None),
    ],
)
def test_wrong_secret_is_invalid_client(
    form: dict[str, str], authorization: bytes | None
) -> None:
    """A wrong secret, by either method, is invalid_client."""
    error = _error(form, authorization)
    assert isinstance(error, InvalidClientError)
    assert error.description == "client authentication failed"
    assert error.headers == (BASIC_CHALLENGE if authorization else {})


def test_a_confidential_client_without_its_secret_is_refused() -> None:
    """A confidential client cannot authenticate as a public one (method mismatch)."""
    error = _error({"client_id": "basic"})
    assert isinstance(error, InvalidClientError)
    assert error.description == "this client authenticates with client_secret_basic"


def test_a_public_client_cannot_present_a_secret() -> None:
    """A public client presenting a secret is refused: it registered none."""
    error = _error({"client_id": "public", "client_secret": SECRET})
    assert isinstance(error, InvalidClientError)
    assert error.description == "this client authenticates with none"


def test_a_client_registered_with_an_unserved_method_is_refused() -> None:
    """A client whose method no authenticator serves can never authenticate."""
    for form, header in (
        ({"client_id": "jwt"}, None),
        ({"client_id": "jwt", "client_secret": SECRET}, None),
        ({}, _basic("jwt", SECRET)),
    ):
        error = _error(form, header)
        assert isinstance(error, InvalidClientError)
        assert error.description == "this client authenticates with private_key_jwt"


def test_unknown_header_scheme_is_refused_without_a_challenge() -> None:
    """An Authorization header no method understands is invalid_client, no Basic."""
    error = _error({"client_id": "public"}, b"Bearer abc")
    assert isinstance(error, InvalidClientError)
    assert error.description == "unsupported client authentication scheme"
    assert error.headers == {}


@pytest.mark.parametrize(
    "header", [b"Basic !!!", b"Basic " + base64.b64encode(b"no-colon"), b"Basic "]
)
def test_malformed_basic_is_refused_with_a_challenge(header: bytes) -> None:
    """Undecodable Basic credentials are invalid_client with the Basic challenge."""
    error = _error({}, header)
    assert isinstance(error, InvalidClientError)
    assert error.description == "malformed Basic credentials"
    assert error.headers == BASIC_CHALLENGE


def test_two_methods_at_once_are_invalid_request() -> None:
    """Basic and a form secret together are invalid_request (use one method)."""
    error = _error({"client_secret": SECRET}, _basic("basic", SECRET))
    assert isinstance(error, InvalidRequestError)


def test_form_client_id_must_match_the_basic_one() -> None:
    """A client_id in the form naming another client than Basic does is refused."""
    error = _error({"client_id": "post"}, _basic("basic", SECRET))
    assert isinstance(error, InvalidClientError)
    assert error.description == "client_id does not match"
    assert error.headers == BASIC_CHALLENGE


@pytest.mark.parametrize(
    ("form", "authorization"),
    [({}, None), ({"client_secret": SECRET}, None), ({}, _basic("", SECRET))],
)
def test_no_client_id_is_refused(
    form: dict[str, str], authorization: bytes | None
) -> None:
    """A request naming no client is invalid_client (authentication required)."""
    error = _error(form, authorization)
    assert isinstance(error, InvalidClientError)
    assert error.description == "client authentication is required"


def test_unknown_client_is_invalid_client() -> None:
    """A client_id the broker does not know is invalid_client."""
    for form, header in (
        ({"client_id": "nobody"}, None),
        ({}, _basic("nobody", SECRET)),
    ):
        error = _error(form, header)
        assert isinstance(error, InvalidClientError)
        assert error.description == "unknown client"
        assert error.headers == (BASIC_CHALLENGE if header else {})


def test_two_authenticators_for_one_method_are_refused() -> None:
    """A registry cannot hold two authenticators of one method."""
    with pytest.raises(ValueError, match="client_secret_post"):
        ClientAuthentication(CLIENTS, (ClientSecretPost(), ClientSecretPost()))


def test_a_registry_without_none_refuses_public_clients() -> None:
    """Without the none authenticator, a bare client_id proves nothing."""
    registry = ClientAuthentication(CLIENTS, (ClientSecretBasic(), ClientSecretPost()))
    error = _error({"client_id": "public"}, registry=registry)
    assert isinstance(error, InvalidClientError)
    assert error.description == "client authentication is required"


@frozen
class _AssertionAuthenticator:
    """A stand-in for a form-based method such as private_key_jwt."""

    method: str = "private_key_jwt"

    def presented(
        self, form: Mapping[str, str], authorization: bytes | None
    ) -> Presented | None:
        """A client_assertion form field."""
        assertion = form.get("client_assertion")
        if assertion is None:
            return None
        return Presented(self.method, form.get("client_id", ""), assertion)

    async def verify(self, client: ClientRecord, presented: Presented) -> None:
        """Only the assertion "good" proves the client."""
        if presented.credential != "good":
            raise InvalidClientError("client authentication failed")


def test_a_new_method_is_one_more_authenticator() -> None:
    """A registry given one more class serves one more method, beside the others."""
    registry = ClientAuthentication(
        CLIENTS,
        (
            ClientSecretBasic(),
            ClientSecretPost(),
            NoClientAuthentication(),
            _AssertionAuthenticator(),
        ),
    )
    good = _outcome(registry, {"client_id": "jwt", "client_assertion": "good"})
    assert isinstance(good, ClientRecord) and good.client_id == "jwt"
    bad = _error({"client_id": "jwt", "client_assertion": "bad"}, registry=registry)
    assert bad.description == "client authentication failed"
    both = _error(
        {"client_id": "post", "client_secret": SECRET, "client_assertion": "good"},
        registry=registry,
    )
    assert isinstance(both, InvalidRequestError)
    public = _outcome(registry, {"client_id": "public"})
    assert isinstance(public, ClientRecord) and public.client_id == "public"


_FIELDS = st.sampled_from(["client_id", "client_secret", "grant_type", "x"])
_VALUES = st.sampled_from(["public", "basic", "post", "jwt", SECRET, "", "a:b"]) | (
    st.text(max_size=30)
)


@given(
    st.dictionaries(_FIELDS, _VALUES, max_size=4),
    st.none() | st.binary(max_size=80) | st.builds(_basic, _VALUES, _VALUES),
)
def test_any_request_gets_a_client_or_an_oauth_error(
    form: dict[str, str], authorization: bytes | None
) -> None:
    """Whatever a request carries, the answer is a client or an OAuth error."""
    result = _outcome(default_client_authentication(CLIENTS), form, authorization)
    if isinstance(result, Failure):
        assert isinstance(result.value, OAuthError), result
    else:
        assert isinstance(result, ClientRecord)
