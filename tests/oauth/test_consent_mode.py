# -*- test-case-name: tests.oauth.test_consent_mode -*-
"""
Tests of the consent mode: the consent page's choice, the operator's default
and prohibition, the stored mode of a known user, and the bearer's identity.
"""

from __future__ import annotations

from attrs import evolve
from twisted.internet.task import Clock

from fjmcp.oauth.authorize import AuthorizeEndpoint
from fjmcp.oauth.clients import ClientDirectory
from fjmcp.oauth.outcomes import Page, Redirect
from fjmcp.policy.rules import NO_CLIENT_NAMES, ClientNames, parse_policy
from fjmcp.store.grants import consent_mode_txn, record_consent_txn, upsert_user_txn
from tests.oauth.support import settle
from tests.oauth.test_authorize import NATIVE, SETTINGS, _params, _Setup, _setup


def _with_policy(
    table: dict[str, object], names: ClientNames = NO_CLIENT_NAMES
) -> _Setup:
    setup = _setup()
    settings = evolve(SETTINGS, policy=parse_policy(table), client_names=names)
    clock = Clock()
    clock.advance(50_000)
    setup.endpoint = AuthorizeEndpoint(
        settings,
        setup.store,
        clock,
        ClientDirectory(setup.store, clock),
        setup.cookies,
        setup.login,
    )
    return setup


def _choose(setup: _Setup, mode: str | None) -> Redirect | Page:
    page = settle(setup.endpoint.authorize(_params(), {}))
    assert isinstance(page, Page)
    jar = {c.name: c.value for c in page.cookies}
    form = {
        "request": page.fields["request"],
        "csrf": page.fields["csrf"],
        "decision": "allow",
    }
    if mode is not None:
        form["mode"] = mode
    outcome = settle(setup.endpoint.consent(form, jar))
    assert isinstance(outcome, Redirect | Page)
    return outcome


def test_the_page_offers_both_modes_full_preselected_by_default() -> None:
    """Without a policy, full access is offered and checked."""
    page = settle(_setup().endpoint.authorize(_params(), {}))
    assert isinstance(page, Page)
    assert page.fields["full_checked"] == "checked"
    assert page.fields["full_disabled"] == ""


def test_read_only_choice_is_in_the_scope_handed_to_the_login() -> None:
    """Choosing read-only adds mcp:read-only to the request's scope."""
    setup = _setup()
    assert isinstance(_choose(setup, "read-only"), Redirect)
    ((request, _),) = setup.login.started
    assert request.scope.split() == ["mcp", "mcp:read-only"]


def test_operator_default_applies_when_the_form_has_no_choice() -> None:
    """default_mode = read-only preselects it and applies it."""
    setup = _with_policy({"default_mode": "read-only"})
    page = settle(setup.endpoint.authorize(_params(), {}))
    assert isinstance(page, Page) and page.fields["read_only_checked"] == "checked"
    _choose(setup, None)
    ((request, _),) = setup.login.started
    assert "mcp:read-only" in request.scope.split()


def test_full_access_forbidden_for_a_client() -> None:
    """A forbidden full access is disabled on the page and refused if posted."""
    setup = _with_policy({"full_access_forbidden": ["c1"]})
    page = settle(setup.endpoint.authorize(_params(), {}))
    assert isinstance(page, Page) and page.fields["full_disabled"] == "disabled"
    outcome = _choose(setup, "full")
    assert isinstance(outcome, Page) and outcome.status == 403
    assert setup.login.started == []


def test_full_access_forbidden_names_known_clients_only() -> None:
    """
    A client's self-declared name is no known-client name: naming it forbids
    nothing; the name of the client's known record does.
    """
    page = settle(
        _with_policy({"full_access_forbidden": ["App"]}).endpoint.authorize(
            _params(), {}
        )
    )
    assert isinstance(page, Page) and page.fields["full_disabled"] == ""
    known = ClientNames([("c1", "Known App")])
    setup = _with_policy({"full_access_forbidden": ["Known App"]}, known)
    page = settle(setup.endpoint.authorize(_params(), {}))
    assert isinstance(page, Page) and page.fields["full_disabled"] == "disabled"


def test_a_known_user_keeps_the_stored_mode() -> None:
    """Skipping the page reuses the stored mode (narrowed if full is forbidden)."""
    setup = _with_policy({"full_access_forbidden": ["c1"]})
    user_id = setup.store.sync.run(upsert_user_txn, "alice", 7, 1.0)
    setup.store.sync.run(record_consent_txn, user_id, "c1", 1.0, "full")
    assert setup.store.sync.run(consent_mode_txn, "alice", "c1") == "full"
    cookie = setup.cookies.user_cookie("alice")
    outcome = settle(setup.endpoint.authorize(_params(), {cookie.name: cookie.value}))
    assert isinstance(outcome, Redirect)
    ((request, user),) = setup.login.started
    assert user == "alice" and "mcp:read-only" in request.scope.split()


def test_a_bad_mode_is_a_page() -> None:
    """A mode that is neither is an error page, not a login."""
    setup = _setup()
    outcome = _choose(setup, "admin")
    assert isinstance(outcome, Page)
    assert setup.login.started == []


def _stored(setup: _Setup, mode: str) -> dict[str, str]:
    """Alice approved c1 with ``mode``; her browser's cookie names her."""
    user_id = setup.store.sync.run(upsert_user_txn, "alice", 7, 1.0)
    setup.store.sync.run(record_consent_txn, user_id, "c1", 1.0, mode)
    cookie = setup.cookies.user_cookie("alice")
    return {cookie.name: cookie.value}


def test_asking_again_preselects_the_stored_mode() -> None:
    """
    When the page is shown to a user who approved the client before
    (prompt=consent, or a loopback redirect, which never skips it), the mode
    they chose is preselected, not the operator's default.
    """
    for params in (_params(prompt="consent"), _params(redirect_uri=NATIVE)):
        setup = _setup()
        cookies = _stored(setup, "read-only")
        page = settle(setup.endpoint.authorize(params, cookies))
        assert isinstance(page, Page) and page.template == "consent.html"
        assert page.fields["read_only_checked"] == "checked"
        assert page.fields["full_checked"] == ""
        assert setup.login.started == []
    setup = _with_policy({"default_mode": "read-only"})
    page = settle(
        setup.endpoint.authorize(_params(prompt="consent"), _stored(setup, "full"))
    )
    assert isinstance(page, Page) and page.fields["full_checked"] == "checked"


def test_a_new_consent_preselects_the_operators_default() -> None:
    """Another user's cookie, or none: the default; never a forbidden full access."""
    setup = _with_policy({"default_mode": "read-only"})
    page = settle(setup.endpoint.authorize(_params(), {}))
    assert isinstance(page, Page) and page.fields["read_only_checked"] == "checked"
    setup = _with_policy({"full_access_forbidden": ["c1"]})
    page = settle(
        setup.endpoint.authorize(_params(prompt="consent"), _stored(setup, "full"))
    )
    assert isinstance(page, Page) and page.fields["read_only_checked"] == "checked"
    assert page.fields["full_disabled"] == "disabled"
