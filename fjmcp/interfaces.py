# -*- test-case-name: tests.test_interfaces -*-
"""
The seams between fjmcp's components, as typed values and protocols.

Each component depends on these, never on another component's classes, so
that each can be tested against a fake and wired in one place
(`fjmcp.service`). The three lines not to cross: the supervisor knows no
HTTP; the per-message path of ``/mcp`` never waits on the database; and
production code never imports the stand-in Forgejo.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Protocol

from attrs import field, frozen
from twisted.internet.defer import Deferred

__all__ = [
    "ChildExit",
    "ChildReceiver",
    "ChildSpec",
    "ICallObserver",
    "IOAuthObserver",
    "IPolicyObserver",
    "IResponseObserver",
    "ISpawnObserver",
    "IAuthenticator",
    "IChild",
    "ISessionControl",
    "ISpawner",
    "IUpstreamTokens",
    "Identity",
    "InvalidToken",
    "FULL_CONSENT",
    "UpstreamGrant",
    "UpstreamGrants",
    "UpstreamToken",
]


# --- identity and the bearer check ------------------------------------------


@frozen
class Identity:
    """
    Who is calling ``/mcp``: a Forgejo user through one OAuth client.

    Sessions and children are bound to ``(user, client_id)``, not to one
    access token, so a refreshed broker token keeps its sessions.
    """

    user: str
    """Forgejo login."""
    client_id: str
    """The broker-side OAuth client the token was issued to."""
    scopes: tuple[str, ...] = ("mcp",)
    token_id: str = ""
    """A non-secret id of the access token (hash prefix), for logs and audit."""
    consent: str = "full"
    """The consent mode of the grant: ``full`` or ``read-only`` (fjmcp.policy)."""

    @property
    def key(self) -> tuple[str, str]:
        """The owner key of stateless children (roadmap: by identity)."""
        return (self.user, self.client_id)


class InvalidToken(Exception):
    """
    The bearer check failed; ``token_sent`` says whether to add
    ``error="invalid_token"`` to the challenge.
    """

    def __init__(self, reason: str, *, token_sent: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.token_sent = token_sent


class IAuthenticator(Protocol):
    """Resolves an ``Authorization`` header to an `Identity`."""

    def authenticate(self, authorization: bytes | None) -> Deferred[Identity]:
        """
        Check a bearer header. On a cache hit the Deferred has already fired,
        so the hot path runs synchronously; a miss reads the store once.
        Fails with `InvalidToken`.
        """

    def cached_identity(self, authorization: bytes | None) -> Identity | None:
        """
        The identity of a header value already found valid and still
        trusted, at once (no Deferred); None means: ask `authenticate`.
        """


# --- the user's Forgejo token ------------------------------------------------


def _scope_set(scopes: Iterable[str]) -> tuple[str, ...]:
    return tuple(sorted(set(scopes)))


@frozen
class UpstreamGrant:
    """
    One grant at Forgejo: a user and the scope set it was granted with.

    Each grant has its own Forgejo token and is refreshed on its own, so
    one user's read-only and full-access grants never share a token.
    """

    user: str
    scopes: tuple[str, ...] = field(default=(), converter=_scope_set)
    """Sorted and unique, so that equal sets make equal grants."""

    @property
    def key(self) -> str:
        """The scope set as the store keys it (sorted, space-joined)."""
        return " ".join(self.scopes)


#: The consent mode that keeps the full-access upstream grant; any other
#: (read-only, or a mode this version does not know) is the narrow one.
FULL_CONSENT = "full"


def _optional_scope_set(scopes: Iterable[str] | None) -> tuple[str, ...] | None:
    return None if scopes is None else _scope_set(scopes)


@frozen
class UpstreamGrants:
    """
    The grants at Forgejo the broker keeps for each user: one for full
    access (``forgejo_scopes``), and one for read-only consents when the
    operator gives them a scope set of their own (``forgejo_scopes_read_only``,
    made through an OAuth2 application of its own: Forgejo keeps one grant
    per user and application). Otherwise read-only consents share the
    full-access grant and the broker alone narrows them.
    """

    full: tuple[str, ...] = field(default=(), converter=_scope_set)
    read_only: tuple[str, ...] | None = field(
        default=None, converter=_optional_scope_set
    )
    """None (or the same set as ``full``): read-only shares the full grant."""

    def __attrs_post_init__(self) -> None:
        if self.read_only == self.full:
            object.__setattr__(self, "read_only", None)

    @property
    def separate(self) -> bool:
        """Whether read-only consents have an upstream grant of their own."""
        return self.read_only is not None

    def scopes(self, consent: str) -> tuple[str, ...]:
        """The Forgejo scopes of the grant a consent mode uses."""
        if consent != FULL_CONSENT and self.read_only is not None:
            return self.read_only
        return self.full

    def of(self, user: str, consent: str = FULL_CONSENT) -> UpstreamGrant:
        """``user``'s upstream grant for a consent mode."""
        return UpstreamGrant(user, self.scopes(consent))

    def is_read_only(self, grant: UpstreamGrant) -> bool:
        """Whether ``grant`` is the read-only consents' own grant."""
        return self.read_only is not None and grant.scopes == self.read_only


@frozen
class UpstreamToken:
    """The Forgejo access token a user's children run with."""

    user: str
    access_token: str
    expires_at: float
    generation: int
    """Grows by one on every refresh; a child started with an older one is stale."""
    scopes: tuple[str, ...] = ()
    """The Forgejo scopes of the upstream grant the token belongs to."""

    @property
    def grant(self) -> UpstreamGrant:
        """The upstream grant (user and scope set) this token is the token of."""
        return UpstreamGrant(self.user, self.scopes)

    def __repr__(self) -> str:  # never leak the token through a repr in a log
        return (
            f"UpstreamToken(user={self.user!r}, generation={self.generation}, "
            f"expires_at={self.expires_at})"
        )


class IUpstreamTokens(Protocol):
    """The broker's view of the current Forgejo token of each upstream grant."""

    def current(self, grant: UpstreamGrant) -> Deferred[UpstreamToken]:
        """The grant's current token (memory first; the store once on a miss)."""


# --- children -------------------------------------------------------------------


@frozen
class ChildSpec:
    """Everything the supervisor needs to start one child (no HTTP in here)."""

    argv: tuple[str, ...]
    env: Mapping[str, str]
    label: str
    """Log context, e.g. ``session=ab12cd user=alice``."""
    secrets: tuple[str, ...] = ()
    """Strings redacted from the child's stderr before it is logged."""
    uid: int | None = None
    gid: int | None = None
    max_line_bytes: int = 16 * 1024 * 1024
    stop_grace: float = 3.0
    inputs: Mapping[int, bytes] = field(factory=dict)
    """Extra descriptors (beyond 0-2) fed once and closed: a token's pipe."""

    def __repr__(self) -> str:  # env and inputs hold the token
        return f"ChildSpec(argv={self.argv!r}, label={self.label!r})"


@frozen
class ChildExit:
    """How a child ended."""

    reason: str
    """``exited``, ``signalled``, ``stopped``, ``line-too-long``..."""
    exit_code: int | None = None
    signal: int | None = None


class ChildReceiver(Protocol):
    """What a child's output is delivered to (the session/bridge side)."""

    def line_received(self, line: bytes) -> None:
        """One complete line of the child's stdout, without the newline."""

    def child_exited(self, exit: ChildExit) -> None:
        """The child is gone (reaped); called exactly once."""


class IChild(Protocol):
    """A running child process."""

    @property
    def pid(self) -> int | None:
        """The process id while it runs."""

    def write_line(self, line: bytes) -> None:
        """
        Send one JSON-RPC message (without newline) to the child's stdin.

        Raises `ValueError` if ``line`` contains a newline, and
        ``twisted.internet.error.ProcessExitedAlready`` once the child is
        stopping or gone (its `ChildReceiver.child_exited` follows or came).
        """

    def stop(self) -> Deferred[None]:
        """Close stdin, TERM, KILL after the grace; fires once reaped."""

    @property
    def ended(self) -> Deferred[ChildExit]:
        """
        Fires when the child has exited and been reaped (a new Deferred on
        each access, so several callers may wait on it).
        """


class ISpawner(Protocol):
    """Starts children; implemented by `fjmcp.supervisor`."""

    def spawn(self, spec: ChildSpec, receiver: ChildReceiver) -> IChild:
        """Start a child now; output and exit go to ``receiver``."""

    def stop_all(self) -> Deferred[None]:
        """Stop every child (shutdown); fires when all are reaped."""

    @property
    def live(self) -> int:
        """How many children are alive."""


# --- lifecycle control, called by maintenance, OAuth and admin ----------------


class ISessionControl(Protocol):
    """What the rest of the broker may ask of the live sessions."""

    def live_users(self) -> frozenset[str]:
        """Forgejo logins with at least one live session or child."""

    def live_grants(self) -> frozenset[UpstreamGrant]:
        """The upstream grants whose tokens live children hold."""

    def end_user(self, user: str, reason: str) -> Deferred[None]:
        """End every session of a user (revoke-user, Forgejo said 401/4xx)."""

    def end_user_client(self, user: str, client_id: str, reason: str) -> Deferred[None]:
        """End the sessions of one user through one client (token revoked)."""

    def token_rotated(self, token: UpstreamToken) -> None:
        """A grant's Forgejo token changed: respawn the children holding it."""


# --- what the broker tells metrics and the audit log -------------------------
# Each is called where the event happens and must cost little: an increment,
# an observation, a pre-formatted line. `fjmcp.observers.NO_OBSERVER` does
# nothing; `fjmcp.metrics` and `fjmcp.audit` implement them.


class ISpawnObserver(Protocol):
    """Hears how long a new owner's first child took to come up."""

    def spawned(self, seconds: float) -> None:
        """A child was started for a new owner in ``seconds``."""


class ICallObserver(Protocol):
    """Hears of every MCP request a child answered (or failed to)."""

    def call_done(
        self,
        identity: Identity,
        session: str,
        method: str,
        tool: str | None,
        outcome: str,
        seconds: float,
    ) -> None:
        """
        One request finished: ``outcome`` is ``ok`` (a result), ``error``
        (a JSON-RPC error from the child) or ``failed`` (the broker answered
        for a child that could not). Never given the arguments or the result.
        """


class IPolicyObserver(Protocol):
    """Hears of every call the policy refused (`fjmcp.bridge.policy`)."""

    def policy_refused(
        self, identity: Identity, session: str, what: str, name: str, rule: str
    ) -> None:
        """
        A ``tools/call`` (``what`` = ``tool``), ``resources/read``
        (``resource``) or ``prompts/get`` (``prompt``) of ``name`` was
        refused by ``rule``. Never given the arguments.
        """


class IResponseObserver(Protocol):
    """Hears of every HTTP response's status."""

    def responded(self, status: int) -> None:
        """A response with ``status`` was sent."""


class IOAuthObserver(Protocol):
    """Hears how OAuth endpoints answered and what grants changed."""

    def endpoint_outcome(self, endpoint: str, outcome: str) -> None:
        """``endpoint`` answered ``ok`` or an OAuth error code."""

    def oauth_event(
        self, event: str, user: str | None, client_id: str | None, outcome: str
    ) -> None:
        """
        A grant, refresh, revocation or consent decision (``event``) of
        ``user`` through ``client_id`` ended with ``outcome``.
        """
