# -*- test-case-name: tests.oauth.test_server -*-
"""
The authorization server, assembled from its small objects.

Each job is its own object: registration (`Registrar`), the authorization
endpoint and consent (`AuthorizeEndpoint`), the login through Forgejo and
its callback (`ForgejoLogin`), the token grants (`TokenEndpoint`) with
client authentication as a registry of authenticators
(`ClientAuthentication`), and revocation (`RevocationEndpoint`); every
revocation reaches the bearer cache and the sessions through one
`RevocationFanout`. `build_authorization_server` is a pure factory: the
composition root hands it every collaborator, it wires the parts in
dependency order, and `fjmcp.web.oauth_routes` routes HTTP to them.
"""

from __future__ import annotations

from attrs import frozen
from twisted.internet.interfaces import IReactorTime

from fjmcp.oauth.authorize import AuthorizeEndpoint
from fjmcp.oauth.browser import BrowserCookies
from fjmcp.oauth.client_auth import ClientAuthentication, default_client_authentication
from fjmcp.oauth.clients import ClientDirectory
from fjmcp.oauth.fanout import ClientSessions, RevocationFanout, TokenForgetter
from fjmcp.oauth.keys import KeyRing
from fjmcp.oauth.login import ForgejoLike, ForgejoLogin
from fjmcp.oauth.refresh_replay import RefreshAnswers
from fjmcp.oauth.registrar import Registrar
from fjmcp.oauth.revocation import RevocationEndpoint
from fjmcp.oauth.settings import OAuthSettings
from fjmcp.oauth.token_endpoint import TokenEndpoint
from fjmcp.oauth.upstream_tokens import UpstreamTokens
from fjmcp.store.runner import TxnRunner

__all__ = ["AuthorizationServer", "build_authorization_server"]


@frozen
class AuthorizationServer:
    """The parts of the authorization server that answer HTTP endpoints."""

    settings: OAuthSettings
    cookies: BrowserCookies
    registrar: Registrar
    authorize: AuthorizeEndpoint
    login: ForgejoLogin
    tokens: TokenEndpoint
    revocation: RevocationEndpoint


def build_authorization_server(
    settings: OAuthSettings,
    store: TxnRunner,
    clock: IReactorTime,
    keys: KeyRing,
    forgejo: ForgejoLike,
    upstream: UpstreamTokens,
    bearer: TokenForgetter,
    sessions: ClientSessions,
    authentication: ClientAuthentication | None = None,
) -> AuthorizationServer:
    """
    Build the authorization server's objects.

    :param bearer: the bearer cache, told about revoked tokens.
    :param sessions: the session layer, told to end a revoked grant's sessions.
    :param authentication: the client authentication registry (default: the
        methods the metadata advertises, over the stored clients).
    """
    clients = ClientDirectory(store, clock)
    if authentication is None:
        authentication = default_client_authentication(clients)
    fanout = RevocationFanout(bearer, sessions)
    cookies = BrowserCookies(keys.derive("cookies"), settings.secure_cookies, clock)
    login = ForgejoLogin(settings, store, clock, keys, forgejo, upstream, cookies)
    return AuthorizationServer(
        settings=settings,
        cookies=cookies,
        registrar=Registrar(clients, clock),
        authorize=AuthorizeEndpoint(settings, store, clock, clients, cookies, login),
        login=login,
        tokens=TokenEndpoint(
            settings,
            store,
            clock,
            authentication,
            clients,
            fanout,
            RefreshAnswers(keys, settings.refresh_reuse_grace),
        ),
        revocation=RevocationEndpoint(store, clock, authentication, fanout),
    )
