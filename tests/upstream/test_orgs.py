# -*- test-case-name: tests.upstream.test_orgs -*-
"""
The user's organizations: the stand-in's ``/api/v1/user/orgs`` paginated as
Forgejo's, and the client reading every page of it.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from fjmcp.standin.app import StandinUser
from fjmcp.upstream.errors import ForgejoAuthError, ForgejoError
from fjmcp.upstream.forgejo import ORGS_PAGE_SIZE, parse_orgs_response
from tests.standin.support import ISSUER, make_standin, result_of
from tests.upstream.test_forgejo import failure_of, login, run, standin_client

MANY = tuple(f"org{i:03d}" for i in range(ORGS_PAGE_SIZE + 7))
CAROL = StandinUser("carol", "carol-password", orgs=MANY)


def test_client_reads_every_page() -> None:
    """More organizations than one page holds are all read."""
    standin = make_standin(auto_approve="carol", users=(CAROL,))
    client, stub = standin_client(standin)
    tokens = login(client, stub)
    assert run(client.get_orgs(tokens.access_token)) == frozenset(MANY)


def test_standin_paginates_like_forgejo() -> None:
    """page and limit, X-Total-Count, and a Link header with next and last."""
    standin = make_standin(auto_approve="carol", users=(CAROL,))
    client, stub = standin_client(standin)
    token = login(client, stub).access_token
    headers = {"Authorization": f"token {token}"}
    url = f"{ISSUER}/api/v1/user/orgs?limit=10&page=2"
    response: Any = result_of(stub.get(url, headers=headers))
    names = [o["name"] for o in result_of(response.json())]
    assert names == list(MANY[10:20])
    assert response.headers.getRawHeaders("x-total-count") == [str(len(MANY))]
    link = response.headers.getRawHeaders("link")[0]
    assert 'page=3>; rel="next"' in link and 'page=6>; rel="last"' in link
    last: Any = result_of(
        stub.get(f"{ISSUER}/api/v1/user/orgs?limit=10&page=6", headers=headers)
    )
    assert len(result_of(last.json())) == 7
    assert last.headers.getRawHeaders("link") is None
    default: Any = result_of(stub.get(f"{ISSUER}/api/v1/user/orgs", headers=headers))
    assert len(result_of(default.json())) == 30


def test_a_dead_token_cannot_list_organizations() -> None:
    """401 from the organizations endpoint is an auth error."""
    standin = make_standin(auto_approve="carol", users=(CAROL,))
    client, stub = standin_client(standin)
    tokens = login(client, stub)
    standin.revoke_user("carol")
    error = failure_of(client.get_orgs(tokens.access_token))
    assert isinstance(error, ForgejoAuthError) and error.status == 401


@given(st.integers(100, 599), st.binary(max_size=200))
def test_any_answer_parses_or_is_a_forgejo_error(status: int, body: bytes) -> None:
    """Whatever Forgejo answers, the parser returns names or a typed error."""
    try:
        names = parse_orgs_response(status, body)
    except ForgejoError:
        return
    assert all(isinstance(n, str) and n for n in names)
