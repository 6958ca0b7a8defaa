# -*- test-case-name: tests.upstream.test_forgejo -*-
"""
The Forgejo client sends exactly what Forgejo expects, bounds every call by
its timeout, and turns every answer into tokens, a user, or one of the two
typed errors: against exact request stubs and against the stand-in Forgejo.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar, cast
from urllib.parse import parse_qs, urlsplit

import pytest
from hypothesis import given
from hypothesis import strategies as st
from treq.client import HTTPClient
from treq.testing import RequestSequence, StringStubbingResource, StubTreq
from twisted.internet.defer import Deferred, fail
from twisted.internet.error import ConnectionRefusedError
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactorClock
from twisted.logger import ILogObserver, LogEvent, formatEvent, globalLogPublisher
from twisted.web.iweb import IAgent
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET
from zope.interface import implementer

from fjmcp.standin.app import StandinForgejo
from fjmcp.upstream.errors import ForgejoAuthError, ForgejoError, ForgejoUnavailable
from fjmcp.upstream.forgejo import (
    MAX_ANSWER_BYTES,
    ForgejoClient,
    ForgejoSettings,
    ForgejoTokens,
    ForgejoUser,
    IHTTPReactor,
    parse_token_response,
    parse_user_response,
    parse_version_response,
)
from tests.standin.support import (
    CLIENT_ID,
    CLIENT_SECRET,
    ISSUER,
    REDIRECT_URI,
    make_standin,
    pkce_pair,
    query_of,
    result_of,
)

T = TypeVar("T")
TOKEN_URL = f"{ISSUER}/login/oauth/access_token"
TIMEOUT = 5.0
GOOD_TOKENS = {
    "access_token": "at-123",
    "token_type": "bearer",
    "expires_in": 3600,
    "refresh_token": "rt-456",
}


def client_on(resource: Resource, clock: Clock | None = None) -> ForgejoClient:
    """A client whose HTTP goes to ``resource`` in memory."""
    # StubTreq exposes HTTPClient's API (request, get, post, ...) over memory.
    stub = StubTreq(resource)  # type: ignore[no-untyped-call, unused-ignore]
    return ForgejoClient(
        cast(HTTPClient, stub),
        ISSUER + "/",
        CLIENT_ID,
        CLIENT_SECRET,
        clock=clock or Clock(),
        timeout=TIMEOUT,
    )


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine that completes synchronously (in-memory HTTP)."""
    return result_of(Deferred.fromCoroutine(coro))


def failure_of(coro: Coroutine[Any, Any, object]) -> BaseException:
    """The exception a synchronously completing coroutine raised."""
    with pytest.raises(ForgejoError) as info:
        run(coro)
    return info.value


class FormBody:
    """Equal to a form-encoded body holding exactly ``fields`` (any order)."""

    def __init__(self, fields: dict[str, str]) -> None:
        self.fields = fields

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, bytes):
            return False
        parsed = parse_qs(other.decode("ascii"), keep_blank_values=True)
        return parsed == {k: [v] for k, v in self.fields.items()}

    def __repr__(self) -> str:
        return f"FormBody({sorted(self.fields)})"


def sequence(
    expected: list[tuple[tuple[Any, ...], tuple[int, dict[bytes, bytes], bytes]]],
) -> tuple[RequestSequence, list[str]]:
    failures: list[str] = []
    return RequestSequence(expected, failures.append), failures  # type: ignore[no-untyped-call, unused-ignore]


def form_headers() -> Any:
    from treq.testing import HasHeaders

    return HasHeaders(  # type: ignore[no-untyped-call, unused-ignore]
        {
            b"content-type": [b"application/x-www-form-urlencoded"],
            b"accept": [b"application/json"],
        }
    )


def form_post(fields: dict[str, str]) -> tuple[Any, ...]:
    """The expected form POST to the token endpoint holding exactly ``fields``
    (twisted.web parses the form body into the request's parameters too)."""
    params = {k.encode(): [v.encode()] for k, v in fields.items()}
    return (b"post", TOKEN_URL, params, form_headers(), FormBody(fields))


def token_answer(
    status: int = 200, body: object = GOOD_TOKENS
) -> tuple[int, dict[bytes, bytes], bytes]:
    return (status, {b"Content-Type": b"application/json"}, json.dumps(body).encode())


def sync_fail(message: str) -> None:
    raise AssertionError(message)


# --- the authorize URL --------------------------------------------------------------


def test_authorize_url_carries_pkce_state_and_client() -> None:
    """The authorize URL is Forgejo's endpoint with client_id, redirect_uri,
    response_type=code, state and an S256 challenge, and no scope by default."""
    client = client_on(Resource())
    url = client.authorize_url(REDIRECT_URI, "st-1", "c" * 43)
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == (
        f"{ISSUER}/login/oauth/authorize"
    )
    assert query_of(url) == {
        "client_id": CLIENT_ID,
        "redirect_uri": REDIRECT_URI,
        "response_type": "code",
        "state": "st-1",
        "code_challenge": "c" * 43,
        "code_challenge_method": "S256",
    }
    assert CLIENT_SECRET not in url


def test_authorize_url_joins_scopes_with_spaces() -> None:
    """Asked-for scopes are sent space-separated in ``scope``."""
    url = client_on(Resource()).authorize_url(
        REDIRECT_URI, "s", "c" * 43, ("read:user", "read:repository")
    )
    assert query_of(url)["scope"] == "read:user read:repository"


# --- exact outgoing requests --------------------------------------------------------


def test_exchange_code_posts_the_form_forgejo_expects() -> None:
    """The code exchange is a form POST with the code, redirect URI, PKCE
    verifier and the client's id and secret; the answer becomes ForgejoTokens."""
    seq, failures = sequence(
        [
            (
                form_post(
                    {
                        "grant_type": "authorization_code",
                        "code": "the-code",
                        "redirect_uri": REDIRECT_URI,
                        "code_verifier": "the-verifier",
                        "client_id": CLIENT_ID,
                        "client_secret": CLIENT_SECRET,
                    }
                ),
                token_answer(),
            )
        ]
    )
    client = client_on(StringStubbingResource(seq))  # type: ignore[no-untyped-call, unused-ignore]
    with seq.consume(sync_fail):  # type: ignore[no-untyped-call, unused-ignore]
        tokens = run(client.exchange_code("the-code", REDIRECT_URI, "the-verifier"))
    assert failures == []
    assert tokens == ForgejoTokens("at-123", "bearer", 3600, "rt-456")


def test_refresh_sends_the_client_secret() -> None:
    """A refresh is a form POST with grant_type=refresh_token, the refresh token
    and the client secret (a confidential client authenticates on refresh)."""
    seq, failures = sequence(
        [
            (
                form_post(
                    {
                        "grant_type": "refresh_token",
                        "refresh_token": "rt-old",
                        "client_id": CLIENT_ID,
                        "client_secret": CLIENT_SECRET,
                    }
                ),
                token_answer(),
            )
        ]
    )
    client = client_on(StringStubbingResource(seq))  # type: ignore[no-untyped-call, unused-ignore]
    with seq.consume(sync_fail):  # type: ignore[no-untyped-call, unused-ignore]
        tokens = run(client.refresh("rt-old"))
    assert failures == []
    assert tokens.refresh_token == "rt-456"


def test_get_user_sends_the_token_as_bearer() -> None:
    """``/api/v1/user`` is asked with ``Authorization: Bearer <token>``."""
    from treq.testing import HasHeaders

    user = {
        "id": 7,
        "login": "carol",
        "full_name": "C",
        "email": "c@x",
        "avatar_url": "a",
    }
    seq, failures = sequence(
        [
            (
                (
                    b"get",
                    f"{ISSUER}/api/v1/user",
                    {},
                    HasHeaders({b"authorization": [b"Bearer at-9"]}),  # type: ignore[no-untyped-call, unused-ignore]
                    b"",
                ),
                token_answer(200, user),
            )
        ]
    )
    client = client_on(StringStubbingResource(seq))  # type: ignore[no-untyped-call, unused-ignore]
    with seq.consume(sync_fail):  # type: ignore[no-untyped-call, unused-ignore]
        found = run(client.get_user("at-9"))
    assert failures == []
    assert found == ForgejoUser(7, "carol", "C", "c@x", "a")


@pytest.mark.parametrize(
    ("status", "body", "error_type", "code"),
    [
        (
            400,
            {"error": "invalid_grant", "error_description": "grant does not exist"},
            ForgejoAuthError,
            "invalid_grant",
        ),
        (
            400,
            {
                "error": "unauthorized_client",
                "error_description": "token was already used",
            },
            ForgejoAuthError,
            "unauthorized_client",
        ),
        (401, {"error": "invalid_client"}, ForgejoAuthError, "invalid_client"),
        (400, "not an object", ForgejoUnavailable, None),
        (404, {"message": "not found"}, ForgejoUnavailable, None),
        (429, {"error": "slow_down"}, ForgejoUnavailable, None),
        (500, {"error": "server_error"}, ForgejoUnavailable, None),
        (502, "<html>bad gateway</html>", ForgejoUnavailable, None),
        (503, {}, ForgejoUnavailable, None),
        (200, {"access_token": "x"}, ForgejoUnavailable, None),
        (302, {}, ForgejoUnavailable, None),
    ],
)
def test_token_endpoint_answers_become_typed_errors(
    status: int, body: object, error_type: type[ForgejoError], code: str | None
) -> None:
    """4xx OAuth errors mean the user must log in again (with the code kept);
    5xx, 429, other 4xx, redirects and malformed answers are transient."""

    def answer(*_: Any) -> tuple[int, dict[bytes, bytes], bytes]:
        raw = (
            body.encode()
            if isinstance(body, str) and body.startswith("<")
            else json.dumps(body).encode()
        )
        return (status, {b"Content-Type": b"application/json"}, raw)

    client = client_on(StringStubbingResource(answer))  # type: ignore[no-untyped-call, unused-ignore]
    error = failure_of(client.refresh("rt"))
    assert type(error) is error_type
    if isinstance(error, ForgejoAuthError):
        assert error.error == code
        assert error.status == status
    else:
        assert isinstance(error, ForgejoUnavailable)


# --- timeouts and broken transports -------------------------------------------------


class Hang(Resource):
    """Answers nothing, or only the start of a body, and never finishes."""

    isLeaf = True

    def __init__(self, partial: bytes | None = None) -> None:
        super().__init__()  # type: ignore[no-untyped-call, unused-ignore]
        self.partial = partial
        self.requests: list[Any] = []

    def render(self, request: Any) -> Any:
        """Record the request; maybe start a body; never finish."""
        self.requests.append(request)
        if self.partial is not None:
            request.setHeader(b"content-type", b"application/json")
            request.write(self.partial)
        return NOT_DONE_YET


@pytest.mark.parametrize("partial", [None, b'{"version": "1'])
@pytest.mark.parametrize(
    "call",
    [
        lambda c: c.version(),
        lambda c: c.refresh("rt"),
        lambda c: c.exchange_code("code", REDIRECT_URI, "v"),
        lambda c: c.get_user("at"),
    ],
)
def test_a_call_that_does_not_finish_times_out_as_unavailable(
    partial: bytes | None, call: Callable[[ForgejoClient], Coroutine[Any, Any, object]]
) -> None:
    """A call with no answer, or with a body that never ends, fails with
    ForgejoUnavailable exactly when the timeout passes on the injected clock."""
    clock = Clock()
    hang = Hang(partial)
    client = client_on(hang, clock)
    d = Deferred.fromCoroutine(call(client))
    results: list[Any] = []
    d.addBoth(results.append)
    clock.advance(TIMEOUT - 0.1)
    assert results == [] and len(hang.requests) == 1
    clock.advance(0.1)
    assert len(results) == 1
    assert results[0].check(ForgejoUnavailable)
    assert "timed out" in str(results[0].value)


@implementer(IAgent)
class RefusingAgent:
    """An agent whose every connection is refused."""

    def request(
        self, method: bytes, uri: bytes, headers: Any = None, bodyProducer: Any = None
    ) -> Deferred[Any]:
        """Fail at once with ConnectionRefusedError."""
        return fail(ConnectionRefusedError())


def test_connection_errors_are_unavailable() -> None:
    """A refused connection is transient: ForgejoUnavailable."""
    client = ForgejoClient(
        HTTPClient(RefusingAgent()), ISSUER, CLIENT_ID, CLIENT_SECRET, clock=Clock()
    )
    error = failure_of(client.version())
    assert isinstance(error, ForgejoUnavailable)
    assert "ConnectionRefusedError" in str(error)


def test_oversized_answers_are_unavailable() -> None:
    """An answer larger than MAX_ANSWER_BYTES is cut off and is transient."""

    def answer(*_: Any) -> tuple[int, dict[bytes, bytes], bytes]:
        return (200, {}, b" " * (MAX_ANSWER_BYTES + 10))

    client = client_on(StringStubbingResource(answer))  # type: ignore[no-untyped-call, unused-ignore]
    error = failure_of(client.version())
    assert isinstance(error, ForgejoUnavailable)
    assert "exceeds" in str(error)


# --- against the stand-in Forgejo ---------------------------------------------------


def standin_client(standin: StandinForgejo) -> tuple[ForgejoClient, Any]:
    stub = StubTreq(standin.app.resource())  # type: ignore[no-untyped-call, unused-ignore]
    client = ForgejoClient(
        cast(HTTPClient, stub), ISSUER, CLIENT_ID, CLIENT_SECRET, clock=Clock()
    )
    return client, stub


def login(client: ForgejoClient, stub: Any) -> ForgejoTokens:
    """Walk authorize (auto-approved) -> code -> exchange through the client."""
    verifier, challenge = pkce_pair()
    url = client.authorize_url(REDIRECT_URI, "st", challenge)
    response = result_of(stub.get(url, allow_redirects=False))
    assert response.code == 303
    query = query_of(response.headers.getRawHeaders("location")[0])
    assert query["state"] == "st"
    return run(client.exchange_code(query["code"], REDIRECT_URI, verifier))


def test_full_flow_against_the_standin() -> None:
    """authorize_url is accepted by the stand-in; the code exchange, user fetch,
    refresh and version all work against it."""
    standin = make_standin(auto_approve="alice", token_lifetime=120)
    client, stub = standin_client(standin)
    tokens = login(client, stub)
    assert tokens.token_type == "bearer" and tokens.expires_in == 120
    assert tokens.expires_at(1000.0) == 1120.0
    user = run(client.get_user(tokens.access_token))
    assert (user.id, user.login, user.full_name) == (1, "alice", "Alice A.")
    fresh = run(client.refresh(tokens.refresh_token or ""))
    assert fresh.access_token != tokens.access_token
    assert run(client.get_user(fresh.access_token)).login == "alice"
    assert run(client.version()) == standin.config.version
    assert standin.refresh_count("alice") == 1


def test_reused_refresh_token_in_invalidate_mode_is_an_auth_error() -> None:
    """With Forgejo's invalidate-on-use mode, reusing a spent refresh token raises
    ForgejoAuthError('unauthorized_client')."""
    client, stub = standin_client(
        make_standin(auto_approve="alice", invalidate_refresh_tokens=True)
    )
    tokens = login(client, stub)
    run(client.refresh(tokens.refresh_token or ""))
    error = failure_of(client.refresh(tokens.refresh_token or ""))
    assert isinstance(error, ForgejoAuthError)
    assert (error.error, error.status) == ("unauthorized_client", 400)


def test_revoked_user_gets_auth_errors_from_user_and_refresh() -> None:
    """After the stand-in revokes the user, /api/v1/user raises ForgejoAuthError
    (401) and the refresh raises ForgejoAuthError('invalid_grant')."""
    standin = make_standin(auto_approve="alice")
    client, stub = standin_client(standin)
    tokens = login(client, stub)
    standin.revoke_user("alice")
    user_error = failure_of(client.get_user(tokens.access_token))
    refresh_error = failure_of(client.refresh(tokens.refresh_token or ""))
    assert isinstance(user_error, ForgejoAuthError) and user_error.status == 401
    assert isinstance(refresh_error, ForgejoAuthError)
    assert refresh_error.error == "invalid_grant"


def test_wrong_client_secret_is_an_auth_error() -> None:
    """A client secret Forgejo does not accept surfaces as unauthorized_client."""
    standin = make_standin(auto_approve="alice")
    stub = StubTreq(standin.app.resource())  # type: ignore[no-untyped-call, unused-ignore]
    good = ForgejoClient(
        cast(HTTPClient, stub), ISSUER, CLIENT_ID, CLIENT_SECRET, clock=Clock()
    )
    bad = ForgejoClient(
        cast(HTTPClient, stub), ISSUER, CLIENT_ID, "wrong", clock=Clock()
    )
    tokens = login(good, stub)
    error = failure_of(bad.refresh(tokens.refresh_token or ""))
    assert isinstance(error, ForgejoAuthError) and error.error == "unauthorized_client"


# --- secrets stay out of logs and reprs ---------------------------------------------


def test_no_secret_reaches_a_log_event_or_repr() -> None:
    """Across successful calls, OAuth refusals, timeouts and 5xx, no log event
    (formatted or raw) and no repr holds the client secret or any token."""
    events: list[LogEvent] = []
    observer = cast(ILogObserver, events.append)
    globalLogPublisher.addObserver(observer)
    try:
        standin = make_standin(auto_approve="alice", invalidate_refresh_tokens=True)
        client, stub = standin_client(standin)
        tokens = login(client, stub)
        fresh = run(client.refresh(tokens.refresh_token or ""))
        failure_of(client.refresh(tokens.refresh_token or ""))
        clock = Clock()
        slow = client_on(Hang(), clock)
        d = Deferred.fromCoroutine(slow.refresh(fresh.refresh_token or ""))
        d.addErrback(lambda _: None)
        clock.advance(TIMEOUT)
        broken = client_on(
            StringStubbingResource(lambda *_: (500, {}, b"oops"))  # type: ignore[no-untyped-call, unused-ignore]
        )
        failure_of(broken.refresh(fresh.refresh_token or ""))
    finally:
        globalLogPublisher.removeObserver(observer)
    secrets = [
        CLIENT_SECRET,
        tokens.access_token,
        tokens.refresh_token,
        fresh.access_token,
        fresh.refresh_token,
    ]
    assert events, "expected the failures to be logged"
    rendered = [formatEvent(e) + repr(e) for e in events]
    rendered += [repr(tokens), repr(fresh), repr(client), repr(slow)]
    for secret in secrets:
        assert secret
        assert not any(secret in text for text in rendered), "a secret leaked"


# --- construction and import cost ---------------------------------------------------


def test_from_reactor_builds_a_pooled_client() -> None:
    """from_reactor strips the base URL's slash and closes its pool on close()."""
    settings = ForgejoSettings(
        base_url="https://forgejo.example/",
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
    )
    reactor = cast(IHTTPReactor, MemoryReactorClock())
    client = ForgejoClient.from_reactor(reactor, settings)
    assert client.base_url == "https://forgejo.example"
    assert client.client_id == CLIENT_ID
    assert result_of(client.close()) is None
    assert CLIENT_SECRET not in repr(client)
    assert CLIENT_SECRET not in repr(settings)


def test_building_the_client_imports_treq_at_its_first_call() -> None:
    """from_reactor leaves treq and twisted.web.client unloaded; the first call
    imports them and connects through the pool to the configured host."""
    code = (
        "import sys\n"
        "from twisted.internet.defer import Deferred\n"
        "from twisted.internet.testing import MemoryReactorClock\n"
        "from fjmcp.upstream.forgejo import ForgejoClient, ForgejoSettings\n"
        "reactor = MemoryReactorClock()\n"
        "settings = ForgejoSettings(base_url='http://127.0.0.1:3000/', "
        "client_id='c', client_secret='s')\n"
        "client = ForgejoClient.from_reactor(reactor, settings)\n"
        "heavy = ('treq', 'twisted.web.client')\n"
        "print(','.join(m for m in heavy if m in sys.modules))\n"
        "Deferred.fromCoroutine(client.version())\n"
        "print(','.join(m for m in heavy if m in sys.modules))\n"
        "print(reactor.tcpClients[0][:2])\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert out.stdout.splitlines() == [
        "",
        "treq,twisted.web.client",
        "('127.0.0.1', 3000)",
    ]


def test_importing_the_client_does_not_import_treq() -> None:
    """The module is cheap to import for its types: treq, pyOpenSSL and the
    stand-in stay unloaded until a client is built."""
    code = (
        "import sys, fjmcp.upstream.forgejo\n"
        "bad = [m for m in ('treq', 'OpenSSL', 'fjmcp.standin') if m in sys.modules]\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == ""


# --- parsers never crash ------------------------------------------------------------

_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=10,
)
_token_like = st.fixed_dictionaries(
    {},
    optional={
        "access_token": _json_values,
        "token_type": st.sampled_from(["bearer", "Bearer", "mac"]) | _json_values,
        "expires_in": st.integers(-5, 10**12) | _json_values,
        "refresh_token": _json_values,
        "error": st.text(max_size=80) | _json_values,
        "error_description": _json_values,
    },
)


def _encode(value: object) -> bytes:
    return json.dumps(value, allow_nan=True).encode()


_bodies = st.one_of(
    st.binary(max_size=200),
    _json_values.map(_encode),
    _token_like.map(_encode),
)


@given(status=st.integers(100, 599), body=_bodies)
def test_token_parser_gives_tokens_or_a_typed_error(status: int, body: bytes) -> None:
    """Any status and body yield ForgejoTokens (only for 200) or a ForgejoError;
    5xx is always transient, and tokens always have a bearer type and a
    non-negative whole expires_in."""
    try:
        tokens = parse_token_response(status, body)
    except ForgejoAuthError as e:
        assert 400 <= status < 500 and status not in (408, 425, 429)
        assert e.error and len(e.error) <= 64 and e.error.isprintable()
    except ForgejoUnavailable:
        pass
    else:
        assert status == 200
        assert tokens.token_type.lower() == "bearer"
        assert isinstance(tokens.expires_in, int) and tokens.expires_in >= 0
        assert tokens.access_token


@given(status=st.integers(100, 599), body=_bodies)
def test_user_and_version_parsers_never_crash(status: int, body: bytes) -> None:
    """Any answer to /api/v1/user or /api/v1/version is a value or a ForgejoError;
    401 from the API is always an auth error."""
    try:
        user = parse_user_response(status, body)
    except ForgejoAuthError:
        assert status in (401, 403)
    except ForgejoUnavailable:
        assert status not in (401, 403)
    else:
        assert status == 200 and user.login and isinstance(user.id, int)
    try:
        parse_version_response(status, body)
    except ForgejoUnavailable:
        pass
