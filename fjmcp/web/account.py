# -*- test-case-name: tests.web.test_account -*-
"""
The ``/account`` routes (Klein): the page, its login through Forgejo, and
the forms that change a grant's consent mode, revoke one grant, all of
them, or end the session.

Like the consent page: HTML only, no framing, no caching, strict CSP; every
form is a POST carrying a CSRF token bound to the session (checked in
`fjmcp.oauth.account.AccountPage`). The login's callback is Forgejo's one
``/oauth/callback`` (`fjmcp.web.oauth_routes`), which hands account logins
to the same `AccountPage`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping

from attrs import define
from klein import Klein
from twisted.web.iweb import IRequest

from fjmcp.oauth.account import AccountPage
from fjmcp.oauth.errors import OAuthError
from fjmcp.oauth.outcomes import Page, Redirect
from fjmcp.web.oauth_routes import answer_browser, read_form, request_cookies

__all__ = ["AccountRoutes"]

_FormStep = Callable[[Mapping[str, str], Mapping[str, str]], Awaitable[Redirect | Page]]


@define
class AccountRoutes:
    """The Klein app of ``/account``."""

    _account: AccountPage
    _secure: bool
    """Whether the broker is https (cookie flags)."""

    app = Klein()

    def _answer(self, request: IRequest, outcome: Redirect | Page, post: bool) -> bytes:
        return answer_browser(request, outcome, post=post, secure=self._secure)

    @app.route("/account", methods=["GET"])
    async def show(self, request: IRequest) -> bytes:
        """The list of granted clients, or the login view."""
        page = await self._account.show(request_cookies(request))
        return self._answer(request, page, post=False)

    @app.route("/account/login", methods=["GET"])
    async def login(self, request: IRequest) -> bytes:
        """Off to Forgejo to log in."""
        return self._answer(request, await self._account.start_login(), post=False)

    async def _post(self, request: IRequest, step: _FormStep) -> bytes:
        try:
            form = read_form(request)
        except OAuthError as e:
            page = Page(
                400, "account.html", {"view": "error", "message": e.description}
            )
            return self._answer(request, page, post=True)
        outcome = await step(form, request_cookies(request))
        return self._answer(request, outcome, post=True)

    @app.route("/account/revoke", methods=["POST"])
    async def revoke(self, request: IRequest) -> bytes:
        """Revoke one grant."""
        return await self._post(request, self._account.revoke)

    @app.route("/account/mode", methods=["POST"])
    async def change_mode(self, request: IRequest) -> bytes:
        """Change one grant's consent mode (read-only or full access)."""
        return await self._post(request, self._account.change_mode)

    @app.route("/account/revoke-all", methods=["POST"])
    async def revoke_all(self, request: IRequest) -> bytes:
        """Revoke every grant."""
        return await self._post(request, self._account.revoke_all)

    @app.route("/account/logout", methods=["POST"])
    async def logout(self, request: IRequest) -> bytes:
        """End the account session."""
        return await self._post(request, self._account.logout)
