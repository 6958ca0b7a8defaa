# -*- test-case-name: tests.oauth.test_server -*-
"""
The authorization server, assembled from its small objects.

Each job is its own object: registration (`Registrar`), the authorization
endpoint and consent (`AuthorizeEndpoint`), the login through Forgejo and
its callback (`ForgejoLogin`), the token grants (`TokenEndpoint`) with
client authentication as a registry of authenticators
(`ClientAuthentication`), and revocation (`RevocationEndpoint`); every
revocation reaches the bearer cache and the sessions through one
`RevocationFanout`; the ``/account`` page's logic (`AccountPage`) revokes
through the same fan-out. Clients named by a metadata document URL are
resolved by `DocumentClients` behind the one `ClientDirectory`, and prove
themselves with ``private_key_jwt`` when their document says so.
`build_authorization_server` is a pure factory: the
composition root hands it every collaborator, it wires the parts in
dependency order, and `fjmcp.web.oauth_routes` routes HTTP to them.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Protocol

from attrs import frozen
from twisted.internet.interfaces import IReactorTime

from fjmcp.interfaces import IOAuthObserver
from fjmcp.oauth.account import AccountPage, GrantSessions
from fjmcp.oauth.authorize import AuthorizeEndpoint
from fjmcp.oauth.browser import BrowserCookies
from fjmcp.oauth.client_auth import (
    ClientAuthentication,
    ClientAuthenticator,
    default_client_authentication,
)
from fjmcp.oauth.clients import ClientDirectory
from fjmcp.oauth.consent_modes import ConsentModes
from fjmcp.oauth.document_clients import DocumentClients
from fjmcp.oauth.fanout import ClientSessions, RevocationFanout, TokenForgetter
from fjmcp.oauth.keys import SealingKeys
from fjmcp.oauth.login import ForgejoLike, ForgejoLogin
from fjmcp.oauth.metadata import endpoint
from fjmcp.oauth.private_key_jwt import PrivateKeyJwt
from fjmcp.oauth.refresh_replay import RefreshAnswers
from fjmcp.oauth.registrar import Registrar
from fjmcp.oauth.revocation import RevocationEndpoint
from fjmcp.oauth.settings import OAuthSettings
from fjmcp.oauth.token_endpoint import TokenEndpoint
from fjmcp.oauth.upstream_tokens import UpstreamTokens
from fjmcp.observers import NO_OBSERVER
from fjmcp.store.runner import TxnRunner

__all__ = ["AuthorizationServer", "BrokerSessions", "build_authorization_server"]


class BrokerSessions(ClientSessions, GrantSessions, Protocol):
    """The session layer as the authorization server sees it."""


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
    authentication: ClientAuthentication
    account: AccountPage
    consent_modes: ConsentModes
    """Changes a grant's consent mode (for the account page)."""
    client_documents: bool = False
    """Whether a ``client_id`` may be a metadata document URL."""


def build_authorization_server(
    settings: OAuthSettings,
    store: TxnRunner,
    clock: IReactorTime,
    keys: SealingKeys,
    forgejo: ForgejoLike,
    upstream: UpstreamTokens,
    bearer: TokenForgetter,
    sessions: BrokerSessions,
    authentication: ClientAuthentication | None = None,
    events: IOAuthObserver = NO_OBSERVER,
    documents: DocumentClients | None = None,
    *,
    memberships: Callable[[str, frozenset[str]], None],
    read_only_forgejo: ForgejoLike | None = None,
) -> AuthorizationServer:
    """
    Build the authorization server's objects.

    :param bearer: the bearer cache, told about revoked tokens.
    :param sessions: the session layer, told to end a revoked grant's sessions.
    :param memberships: told each user's Forgejo organizations at login.
    :param read_only_forgejo: the OAuth2 application at Forgejo read-only
        grants are made through, when they have scopes of their own.
    :param authentication: the client authentication registry (default: the
        secret-based and public methods, and ``private_key_jwt`` with
        ``documents``, over the directory's clients).
    :param events: told of every grant, refresh, revocation and consent
        decision (the audit log).
    :param documents: resolves ``client_id`` URLs (metadata documents and
        known-client records); without it only registered clients exist.
    """
    clients = ClientDirectory(store, clock, documents)
    if authentication is None:
        extra: tuple[ClientAuthenticator, ...] = ()
        if documents is not None:
            extra = (
                PrivateKeyJwt(
                    settings.issuer,
                    endpoint(settings.public_url, "/oauth/token"),
                    clock,
                    documents,
                    store,
                ),
            )
        authentication = default_client_authentication(clients, *extra)
    fanout = RevocationFanout(bearer, sessions)
    cookies = BrowserCookies(
        partial(keys.derive_each, "cookies"), settings.secure_cookies, clock
    )
    login = ForgejoLogin(
        settings,
        store,
        clock,
        keys,
        forgejo,
        upstream,
        cookies,
        memberships,
        read_only_forgejo=read_only_forgejo,
    )
    consent_modes = ConsentModes(
        store, clock, fanout, settings.policy, client_names=settings.client_names
    )
    account = AccountPage(
        settings,
        store,
        clock,
        keys,
        forgejo,
        upstream,
        cookies,
        fanout,
        sessions,
        consent_modes,
        read_only_forgejo=read_only_forgejo,
    )
    return AuthorizationServer(
        settings=settings,
        cookies=cookies,
        registrar=Registrar(clients, clock, authentication.registrable_methods),
        authorize=AuthorizeEndpoint(
            settings, store, clock, clients, cookies, login, events=events
        ),
        login=login,
        tokens=TokenEndpoint(
            settings,
            store,
            clock,
            authentication,
            clients,
            fanout,
            RefreshAnswers(keys, settings.refresh_reuse_grace),
            events=events,
        ),
        revocation=RevocationEndpoint(
            store, clock, authentication, fanout, events=events
        ),
        authentication=authentication,
        account=account,
        client_documents=documents is not None,
        consent_modes=consent_modes,
    )
