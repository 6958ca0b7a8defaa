# -*- test-case-name: tests.standin.test_scopes -*-
"""
The stand-in keeps and enforces a grant's scope as Forgejo 9.0 and later
do: a token of a grant made with read scopes reads and is refused every
write with Forgejo's 403; a grant keeps its first consent's scope; no more
is refused than Forgejo refuses.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from treq.testing import StubTreq

from fjmcp.standin.app import StandinForgejo, StandinUser, token_allows, token_scopes
from tests.standin.support import (
    ISSUER,
    PUBLIC_CLIENT_ID,
    PUBLIC_REDIRECT_URI,
    authorize_params,
    exchange,
    get_code,
    log_in,
    make_standin,
    pkce_pair,
    query_of,
    result_of,
)

ALICE = StandinUser("alice", "alice-password", orgs=("ops",), repos=("notes",))
READ = "read:repository read:issue read:user read:organization"


def _standin() -> tuple[StandinForgejo, Any]:
    standin = make_standin(users=(ALICE,))
    return standin, StubTreq(standin.app.resource())


def _token(stub: Any, scope: str) -> str:
    code, verifier = get_code(stub, ALICE, scope=scope)
    status, answer = exchange(stub, code, verifier)
    assert status == 200, answer
    token: str = answer["access_token"]
    return token


def _call(stub: Any, method: str, path: str, token: str, **kw: Any) -> tuple[int, Any]:
    response = result_of(
        stub.request(
            method,
            f"{ISSUER}/api/v1{path}",
            headers={"Authorization": f"Bearer {token}"},
            **kw,
        )
    )
    body = result_of(response.content())
    return response.code, (result_of(response.json()) if body else None)


def test_a_read_scoped_token_reads_and_every_write_is_refused() -> None:
    """GETs pass; DELETE and POST get Forgejo's 403 naming the scope lacked."""
    standin, stub = _standin()
    token = _token(stub, READ)
    assert _call(stub, "GET", "/user", token)[0] == 200
    assert _call(stub, "GET", "/user/orgs", token)[1][0]["name"] == "ops"
    assert _call(stub, "GET", "/repos/alice/notes", token)[1]["name"] == "notes"
    status, body = _call(stub, "DELETE", "/repos/alice/notes", token)
    assert status == 403
    assert body == {
        "message": "token does not have at least one of required scope(s): "
        "[write:repository]",
        "url": f"{ISSUER}/api/swagger",
    }
    status, body = _call(
        stub, "POST", "/repos/alice/notes/issues", token, json={"title": "x"}
    )
    assert status == 403 and body["message"].endswith("[write:issue]")
    assert _call(stub, "GET", "/repos/alice/notes", token)[0] == 200  # still there
    assert standin.refusals == {"write:repository": 1, "write:issue": 1}


def test_the_scope_is_checked_before_the_repository_is_looked_up() -> None:
    """As Forgejo's route group does: a write to no repository is still a 403."""
    _standin_, stub = _standin()
    token = _token(stub, READ)
    assert _call(stub, "DELETE", "/repos/alice/nothing", token)[0] == 403
    assert _call(stub, "GET", "/repos/alice/nothing", token)[0] == 404


def test_routes_of_two_groups_need_both() -> None:
    """/user/orgs needs read:user and read:organization, named together."""
    _standin_, stub = _standin()
    token = _token(stub, "read:user read:repository")
    status, body = _call(stub, "GET", "/user/orgs", token)
    assert status == 403
    assert body["message"].endswith("[read:user read:organization]")
    assert _call(stub, "GET", "/user/repos", token)[1][0]["name"] == "notes"


def test_write_scopes_and_unscoped_grants_may_write() -> None:
    """write: implies read:; a grant asking for no token scope may do everything."""
    for scope in ("write:repository write:issue", "", "openid profile"):
        _standin_, stub = _standin()
        token = _token(stub, scope)
        assert _call(stub, "GET", "/repos/alice/notes", token)[0] == 200
        created = _call(
            stub, "POST", "/repos/alice/notes/issues", token, json={"title": "t"}
        )
        assert created[0] == 201 and created[1]["title"] == "t"
        assert _call(stub, "DELETE", "/repos/alice/notes", token)[0] == 204
        assert _call(stub, "GET", "/repos/alice/notes", token)[0] == 404


def test_a_confidential_clients_grant_keeps_its_first_scope() -> None:
    """
    Forgejo sends a confidential client with a grant back at once with a code
    of that grant: asking again for more gets the first consent's scope.
    """
    standin, stub = _standin()
    _token(stub, READ)
    wider = _token(stub, "")
    assert standin.grant_scope("alice", "broker-client") == READ
    assert _call(stub, "DELETE", "/repos/alice/notes", wider)[0] == 403


def test_a_public_client_asking_for_another_scope_is_refused() -> None:
    """Forgejo's consent of a public client: "a grant exists with different scope"."""
    standin, stub = _standin()
    _verifier, challenge = pkce_pair()
    public = authorize_params(
        challenge, client_id=PUBLIC_CLIENT_ID, redirect_uri=PUBLIC_REDIRECT_URI
    )
    first = log_in(stub, {**public, "scope": READ}, ALICE)
    assert "code" in query_of(first.headers.getRawHeaders("location")[0])
    again = log_in(stub, {**public, "scope": "write:repository"}, ALICE)
    answer = query_of(again.headers.getRawHeaders("location")[0])
    assert answer["error"] == "server_error"
    assert answer["error_description"] == "a grant exists with different scope"
    assert standin.grant_scope("alice", PUBLIC_CLIENT_ID) == READ


@pytest.mark.parametrize(
    ("scope", "expected"),
    [
        ("", {"all"}),
        ("openid profile email groups", {"all"}),
        ("read:repo", {"all"}),  # a name Forgejo does not know is dropped
        ("read:repo read:user", {"read:user"}),
        ("openid read:issue write:user", {"read:issue", "write:user"}),
        ("public-only read:repository", {"public-only", "read:repository"}),
    ],
)
def test_token_scopes_as_forgejo_reads_a_grant(scope: str, expected: set[str]) -> None:
    """OpenID Connect and unknown names are not limits; nothing left is ``all``."""
    assert token_scopes(scope) == expected


GROUPS = ("repository", "issue", "user", "organization", "package", "misc")
SCOPE = st.sampled_from(
    [f"{level}:{g}" for level in ("read", "write") for g in GROUPS]
    + ["openid", "profile", "read:repo", "all"]
)


@given(st.lists(SCOPE, max_size=6), st.sampled_from(GROUPS))
def test_reading_needs_read_or_write_and_writing_needs_write(
    names: list[str], group: str
) -> None:
    """No more is refused than Forgejo refuses, and no write passes a read scope."""
    scopes = token_scopes(" ".join(names))
    unlimited = "all" in scopes
    assert token_allows(scopes, (f"read:{group}",)) == (
        unlimited or bool({f"read:{group}", f"write:{group}"} & scopes)
    )
    assert token_allows(scopes, (f"write:{group}",)) == (
        unlimited or f"write:{group}" in scopes
    )
