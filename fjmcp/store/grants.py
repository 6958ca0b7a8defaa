# -*- test-case-name: tests.store.test_grants -*-
"""
Users, consents, logins in progress, authorization codes and broker tokens.

The rules that must hold under concurrency live here, inside one
transaction each, so that they hold however requests interleave:

- an authorization code is redeemed at most once (a conditional ``UPDATE``
  whose row count decides the winner); a second redemption revokes every
  token minted from the code;
- a refresh token is rotated at most once; presenting a rotated one again
  revokes its whole family (RFC 9700 §4.14);
- a login in progress (``pending_authorizations``) is taken exactly once,
  and stays, marked taken, until it expires.

Each query is a synchronous ``_txn(cursor, ...)`` function (tested directly
on an in-memory store) with a thin async wrapper over `TxnRunner.run`.
Only digests of secrets reach these functions.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from attrs import field, frozen

from fjmcp.store.events import StoreEvent, publish_txn
from fjmcp.store.runner import Cursor, TxnRunner

__all__ = [
    "AccessRecord",
    "CodeGrant",
    "Grant",
    "GrantOutcome",
    "Mint",
    "PendingAuthorization",
    "SealedAnswer",
    "find_pending_txn",
    "has_consent_txn",
    "insert_code_txn",
    "insert_pending_txn",
    "change_consent_mode_txn",
    "consent_mode_txn",
    "issue_admin_tokens_txn",
    "lookup_access",
    "lookup_access_txn",
    "purge_expired_txn",
    "record_consent_txn",
    "redeem_code_txn",
    "refresh_txn",
    "revoke_family_txn",
    "revoke_token_txn",
    "take_pending_txn",
    "upsert_user_txn",
    "user_id_txn",
]

#: How long used or expired codes are kept so that a replay is still seen.
CODE_RETENTION: Final = 24 * 3600.0


# --- users ----------------------------------------------------------------------


def user_id_txn(cursor: Cursor, login: str) -> int | None:
    """Our id of the user with this Forgejo login, or ``None``."""
    row = cursor.execute("SELECT id FROM users WHERE login = ?", (login,)).fetchone()
    return None if row is None else int(row[0])


def _free_login(cursor: Cursor, user_id: int, login: str) -> None:
    """A stale row holds a login Forgejo now gives to someone else: rename it."""
    cursor.execute(
        "UPDATE users SET login = ? WHERE id = ?", (f"{login}#stale-{user_id}", user_id)
    )


def upsert_user_txn(
    cursor: Cursor, login: str, forgejo_id: int | None, now: float
) -> int:
    """
    The id of the user ``login`` (Forgejo id ``forgejo_id``), created or
    updated: a Forgejo account keeps its row across a rename, and a row
    made by ``issue-token`` (no Forgejo id yet) is claimed on first login.
    ``forgejo_id=None`` (admin tokens) only finds or creates by login.
    """
    by_login = cursor.execute(
        "SELECT id, forgejo_id FROM users WHERE login = ?", (login,)
    ).fetchone()
    if forgejo_id is None:
        if by_login is not None:
            return int(by_login[0])
        return cursor.insert_id(
            "INSERT INTO users (login, created_at) VALUES (?, ?)", (login, now)
        )
    by_fid = cursor.execute(
        "SELECT id FROM users WHERE forgejo_id = ?", (forgejo_id,)
    ).fetchone()
    if by_fid is not None:
        uid = int(by_fid[0])
        if by_login is not None and int(by_login[0]) != uid:
            _free_login(cursor, int(by_login[0]), login)
        cursor.execute(
            "UPDATE users SET login = ?, last_login_at = ? WHERE id = ?",
            (login, now, uid),
        )
        return uid
    if by_login is not None:
        if by_login[1] is None:
            cursor.execute(
                "UPDATE users SET forgejo_id = ?, last_login_at = ? WHERE id = ?",
                (forgejo_id, now, by_login[0]),
            )
            return int(by_login[0])
        _free_login(cursor, int(by_login[0]), login)
    return cursor.insert_id(
        "INSERT INTO users (login, forgejo_id, created_at, last_login_at) "
        "VALUES (?, ?, ?, ?)",
        (login, forgejo_id, now, now),
    )


# --- consents ---------------------------------------------------------------------


def record_consent_txn(
    cursor: Cursor, user_id: int, client_id: str, now: float, mode: str = "full"
) -> None:
    """Remember that the user approved this client id, in this consent mode."""
    cursor.upsert(
        "consents",
        {"user_id": user_id, "client_id": client_id, "granted_at": now, "mode": mode},
        key=("user_id", "client_id"),
    )


def consent_mode_txn(cursor: Cursor, login: str, client_id: str) -> str | None:
    """The consent mode ``login`` chose for ``client_id`` (None: never approved)."""
    row = cursor.execute(
        "SELECT consents.mode FROM consents JOIN users ON users.id = consents.user_id "
        "WHERE users.login = ? AND consents.client_id = ?",
        (login, client_id),
    ).fetchone()
    return None if row is None else str(row[0])


def has_consent_txn(cursor: Cursor, login: str, client_id: str) -> bool:
    """Whether the user ``login`` has approved ``client_id``."""
    row = cursor.execute(
        "SELECT 1 FROM consents JOIN users ON users.id = consents.user_id "
        "WHERE users.login = ? AND consents.client_id = ?",
        (login, client_id),
    ).fetchone()
    return row is not None


# --- logins in progress ------------------------------------------------------------


@frozen
class PendingAuthorization:
    """An approved authorization request waiting for Forgejo's callback."""

    state_hash: str
    browser_hash: str
    client_id: str
    redirect_uri: str
    client_state: str | None
    code_challenge: str
    scope: str
    resource: str
    consent_user: str | None
    """The login whose earlier consent let the page be skipped (``None``:
    the user approved on the page); the callback checks it is who logged in."""
    key_id: str
    verifier_sealed: bytes = field(repr=False)
    created_at: float
    expires_at: float


_PENDING_COLUMNS = (
    "state_hash, browser_hash, client_id, redirect_uri, client_state, "
    "code_challenge, scope, resource, consent_user, key_id, verifier_sealed, "
    "created_at, expires_at"
)


def insert_pending_txn(cursor: Cursor, pending: PendingAuthorization) -> str:
    """
    Store a login in progress (and drop the expired ones). The same state
    again (a second Approve of one consent form) stores nothing: the answer
    says whether the login is ``new``, still ``pending`` or already
    ``taken`` by its callback.
    """
    cursor.execute(
        "DELETE FROM pending_authorizations WHERE expires_at <= ?",
        (pending.created_at,),
    )
    row = cursor.execute(
        "SELECT taken_at FROM pending_authorizations WHERE state_hash = ?",
        (pending.state_hash,),
    ).fetchone()
    if row is not None:
        return "pending" if row[0] is None else "taken"
    cursor.execute(
        f"INSERT INTO pending_authorizations ({_PENDING_COLUMNS}) "  # noqa: S608
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            pending.state_hash,
            pending.browser_hash,
            pending.client_id,
            pending.redirect_uri,
            pending.client_state,
            pending.code_challenge,
            pending.scope,
            pending.resource,
            pending.consent_user,
            pending.key_id,
            pending.verifier_sealed,
            pending.created_at,
            pending.expires_at,
        ),
    )
    return "new"


def find_pending_txn(
    cursor: Cursor, state_hash: str, now: float
) -> tuple[PendingAuthorization | None, bool]:
    """
    The login with this state digest, without taking it, and whether its
    callback already took it. ``(None, False)`` if unknown or expired.
    """
    row = cursor.execute(
        f"SELECT {_PENDING_COLUMNS}, taken_at "  # noqa: S608
        "FROM pending_authorizations WHERE state_hash = ?",
        (state_hash,),
    ).fetchone()
    if row is None or now >= row[12]:
        return None, False
    pending = PendingAuthorization(
        state_hash=row[0],
        browser_hash=row[1],
        client_id=row[2],
        redirect_uri=row[3],
        client_state=row[4],
        code_challenge=row[5],
        scope=row[6],
        resource=row[7],
        consent_user=row[8],
        key_id=row[9],
        verifier_sealed=bytes(row[10]),
        created_at=row[11],
        expires_at=row[12],
    )
    return pending, row[13] is not None


def take_pending_txn(
    cursor: Cursor, state_hash: str, now: float
) -> PendingAuthorization | None:
    """
    Take the login with this state digest: each state is good for one
    callback. ``None`` if unknown, already taken or expired. The row stays,
    marked taken, until it expires (so a reload is recognised).
    """
    pending, taken = find_pending_txn(cursor, state_hash, now)
    if pending is None or taken:
        if pending is None:
            cursor.execute(
                "DELETE FROM pending_authorizations "
                "WHERE state_hash = ? AND expires_at <= ?",
                (state_hash, now),
            )
        return None
    cursor.execute(
        "UPDATE pending_authorizations SET taken_at = ? "
        "WHERE state_hash = ? AND taken_at IS NULL",
        (now, state_hash),
    )
    if cursor.rowcount != 1:  # pragma: no cover - one connection serialises
        return None
    return pending


# --- codes and tokens --------------------------------------------------------------


@frozen
class CodeGrant:
    """A broker authorization code (by digest) and what it is bound to."""

    code_hash: str
    client_id: str
    user_id: int
    redirect_uri: str
    code_challenge: str
    scope: str
    resource: str
    family_id: str
    created_at: float
    expires_at: float


@frozen
class Mint:
    """Digests and expiries of a token pair to store (no refresh: ``None``)."""

    access_hash: str
    access_expires_at: float
    refresh_hash: str | None
    refresh_expires_at: float | None
    now: float


@frozen
class Grant:
    """Who a minted or revoked token family belongs to."""

    user_id: int
    user: str
    client_id: str
    scope: str
    audience: str
    family_id: str


@frozen
class SealedAnswer:
    """A refresh's answer, sealed, kept for the reuse grace."""

    key_id: str
    sealed: bytes = field(repr=False)
    expires_at: float
    """Until when a retry of the spent refresh token gets it again."""


@frozen
class GrantOutcome:
    """
    What a redemption, refresh or revocation did.

    ``status``: ``ok``; ``unknown``; ``expired``; ``rejected`` (a binding
    check failed; the code is spent); ``replayed`` (a used code: its tokens
    are revoked); ``foreign`` (another client's token: nothing changed);
    ``revoked``; ``reused`` (a rotated refresh token: the family is revoked);
    ``retried`` (a rotated refresh token within its grace: ``answer`` is the
    answer it got). ``revoked`` lists the digests of every token of the
    family revoked now, so caches can forget them.
    """

    status: str
    grant: Grant | None = None
    reason: str = ""
    revoked: tuple[str, ...] = ()
    answer: SealedAnswer | None = None


def insert_code_txn(cursor: Cursor, code: CodeGrant) -> None:
    """Store a new authorization code (and drop long-dead ones)."""
    cursor.execute(
        "DELETE FROM auth_codes WHERE expires_at <= ?",
        (code.created_at - CODE_RETENTION,),
    )
    cursor.execute(
        "INSERT INTO auth_codes (code_hash, client_id, user_id, redirect_uri, "
        "code_challenge, scope, resource, family_id, created_at, expires_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            code.code_hash,
            code.client_id,
            code.user_id,
            code.redirect_uri,
            code.code_challenge,
            code.scope,
            code.resource,
            code.family_id,
            code.created_at,
            code.expires_at,
        ),
    )


def _login(cursor: Cursor, user_id: int) -> str:
    row = cursor.execute("SELECT login FROM users WHERE id = ?", (user_id,)).fetchone()
    return str(row[0]) if row else ""


def _insert_pair(
    cursor: Cursor,
    mint: Mint,
    *,
    family_id: str,
    parent_hash: str | None,
    client_id: str,
    user_id: int,
    audience: str,
    scope: str,
) -> None:
    rows: list[tuple[Any, ...]] = [
        (mint.access_hash, "access", mint.access_expires_at, None)
    ]
    if mint.refresh_hash is not None and mint.refresh_expires_at is not None:
        refresh = (mint.refresh_hash, "refresh", mint.refresh_expires_at, parent_hash)
        rows.append(refresh)
    for token_hash, kind, expiry, parent in rows:
        cursor.execute(
            "INSERT INTO tokens (token_hash, kind, family_id, parent_hash, client_id, "
            "user_id, audience, scope, issued_at, expires_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                token_hash,
                kind,
                family_id,
                parent,
                client_id,
                user_id,
                audience,
                scope,
                mint.now,
                expiry,
            ),
        )


def revoke_family_txn(
    cursor: Cursor, family_id: str, now: float, reason: str
) -> tuple[str, ...]:
    """Revoke every live token of a family; their digests."""
    hashes = tuple(
        str(r[0])
        for r in cursor.execute(
            "SELECT token_hash FROM tokens WHERE family_id = ? AND revoked_at IS NULL",
            (family_id,),
        ).fetchall()
    )
    cursor.execute(
        "UPDATE tokens SET revoked_at = ?, revoked_reason = ? "
        "WHERE family_id = ? AND revoked_at IS NULL",
        (now, reason, family_id),
    )
    if hashes:
        owner = cursor.execute(
            "SELECT users.login, tokens.client_id FROM tokens "
            "JOIN users ON users.id = tokens.user_id WHERE tokens.family_id = ?",
            (family_id,),
        ).fetchone()
        if owner is not None:
            publish_txn(cursor, StoreEvent("revoked", str(owner[0]), str(owner[1])))
    return hashes


def change_consent_mode_txn(
    cursor: Cursor, login: str, client_id: str, mode: str, now: float
) -> tuple[Grant | None, tuple[str, ...]]:
    """
    Change the consent mode ``login`` gave ``client_id`` and revoke every
    live token of that grant: each carries the mode it was minted with, so
    the client must come back through the authorization (which now starts
    from the new mode). Returns the grant (None if there was no consent)
    and the revoked digests.
    """
    row = cursor.execute(
        "SELECT users.id FROM consents JOIN users ON users.id = consents.user_id "
        "WHERE users.login = ? AND consents.client_id = ?",
        (login, client_id),
    ).fetchone()
    if row is None:
        return None, ()
    user_id = int(row[0])
    cursor.execute(
        "UPDATE consents SET mode = ? WHERE user_id = ? AND client_id = ?",
        (mode, user_id, client_id),
    )
    families = [
        str(r[0])
        for r in cursor.execute(
            "SELECT DISTINCT family_id FROM tokens WHERE user_id = ? "
            "AND client_id = ? AND revoked_at IS NULL",
            (user_id, client_id),
        ).fetchall()
    ]
    hashes: tuple[str, ...] = ()
    for family in families:
        hashes += revoke_family_txn(cursor, family, now, "consent-mode-changed")
    grant = Grant(user_id, login, client_id, "", "", families[0] if families else "")
    return grant, hashes


def redeem_code_txn(
    cursor: Cursor,
    code_hash: str,
    check: Callable[[CodeGrant], str | None],
    mint: Mint,
) -> GrantOutcome:
    """
    Redeem an authorization code once.

    ``check(code)`` returns why the request does not match the code (client,
    redirect URI, PKCE verifier, resource) or ``None``. The code is spent by
    the first redemption whatever the check says; a later one is a replay
    and revokes the tokens minted from the code.
    """
    row = cursor.execute(
        "SELECT code_hash, client_id, user_id, redirect_uri, code_challenge, scope, "
        "resource, family_id, created_at, expires_at, used_at "
        "FROM auth_codes WHERE code_hash = ?",
        (code_hash,),
    ).fetchone()
    if row is None:
        return GrantOutcome("unknown")
    code = CodeGrant(*row[:10])
    grant = Grant(
        user_id=code.user_id,
        user=_login(cursor, code.user_id),
        client_id=code.client_id,
        scope=code.scope,
        audience=code.resource,
        family_id=code.family_id,
    )
    if row[10] is not None:
        revoked = revoke_family_txn(cursor, code.family_id, mint.now, "code-replay")
        return GrantOutcome("replayed", grant, "code already used", revoked)
    cursor.execute(
        "UPDATE auth_codes SET used_at = ? WHERE code_hash = ? AND used_at IS NULL",
        (mint.now, code_hash),
    )
    if cursor.rowcount != 1:  # another node spent it while this one waited
        return GrantOutcome("replayed", grant, "code already used")
    if mint.now >= code.expires_at:
        return GrantOutcome("expired", grant, "code expired")
    problem = check(code)
    if problem is not None:
        return GrantOutcome("rejected", grant, problem)
    _insert_pair(
        cursor,
        mint,
        family_id=code.family_id,
        parent_hash=None,
        client_id=code.client_id,
        user_id=code.user_id,
        audience=code.resource,
        scope=code.scope,
    )
    return GrantOutcome("ok", grant)


def _kept_answer(cursor: Cursor, refresh_hash: str, now: float) -> SealedAnswer | None:
    """
    The answer a spent refresh token got, if its grace has not run out and
    the refresh token of that answer is still unspent and unrevoked.
    """
    row = cursor.execute(
        "SELECT refresh_replays.key_id, refresh_replays.answer_sealed, "
        "refresh_replays.expires_at FROM refresh_replays "
        "JOIN tokens ON tokens.token_hash = refresh_replays.child_hash "
        "WHERE refresh_replays.refresh_hash = ? AND refresh_replays.expires_at > ? "
        "AND tokens.rotated_at IS NULL AND tokens.revoked_at IS NULL",
        (refresh_hash, now),
    ).fetchone()
    if row is None:
        return None
    return SealedAnswer(str(row[0]), bytes(row[1]), float(row[2]))


def refresh_txn(
    cursor: Cursor,
    refresh_hash: str,
    client_id: str,
    mint: Mint,
    keep: SealedAnswer | None = None,
) -> GrantOutcome:
    """
    Rotate a refresh token: spend it and mint a new pair in its family.

    Another client's token changes nothing (``foreign``); a token rotated
    before is reuse and revokes the whole family (``reused``), unless the
    answer it got is still kept (``retried``: the same answer again).
    ``keep`` is this rotation's answer, sealed, kept until its
    ``expires_at`` under the spent token's digest (``None``: no grace).
    """
    row = cursor.execute(
        "SELECT family_id, client_id, user_id, audience, scope, expires_at, "
        "rotated_at, revoked_at FROM tokens WHERE token_hash = ? AND kind = 'refresh'",
        (refresh_hash,),
    ).fetchone()
    if row is None:
        return GrantOutcome("unknown")
    family_id, owner, user_id, audience, scope, expiry, rotated, revoked = row
    grant = Grant(user_id, _login(cursor, user_id), owner, scope, audience, family_id)
    if owner != client_id:
        return GrantOutcome("foreign", grant, "refresh token of another client")
    if revoked is not None:
        return GrantOutcome("revoked", grant, "refresh token revoked")
    if rotated is not None:
        kept = _kept_answer(cursor, refresh_hash, mint.now)
        if kept is not None:
            return GrantOutcome("retried", grant, "refresh retried", answer=kept)
        hashes = revoke_family_txn(cursor, family_id, mint.now, "refresh-reuse")
        return GrantOutcome("reused", grant, "refresh token reused", hashes)
    if mint.now >= expiry:
        return GrantOutcome("expired", grant, "refresh token expired")
    cursor.execute(
        "UPDATE tokens SET rotated_at = ? WHERE token_hash = ? "
        "AND rotated_at IS NULL AND revoked_at IS NULL",
        (mint.now, refresh_hash),
    )
    if cursor.rowcount != 1:  # another node spent it while this one waited
        return GrantOutcome("reused", grant, "refresh token reused")
    _insert_pair(
        cursor,
        mint,
        family_id=family_id,
        parent_hash=refresh_hash,
        client_id=owner,
        user_id=user_id,
        audience=audience,
        scope=scope,
    )
    if keep is not None and mint.refresh_hash is not None:
        cursor.execute("DELETE FROM refresh_replays WHERE expires_at <= ?", (mint.now,))
        cursor.execute(
            "INSERT INTO refresh_replays (refresh_hash, child_hash, key_id, "
            "answer_sealed, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?)",
            (
                refresh_hash,
                mint.refresh_hash,
                keep.key_id,
                keep.sealed,
                mint.now,
                keep.expires_at,
            ),
        )
    return GrantOutcome("ok", grant)


def revoke_token_txn(
    cursor: Cursor, token_hash: str, client_id: str, now: float
) -> GrantOutcome:
    """
    RFC 7009: revoke the family of an access or refresh token of
    ``client_id`` (the whole grant ends, so its sessions can end too).
    Unknown tokens and other clients' tokens change nothing.
    """
    row = cursor.execute(
        "SELECT family_id, client_id, user_id, audience, scope FROM tokens "
        "WHERE token_hash = ?",
        (token_hash,),
    ).fetchone()
    if row is None:
        return GrantOutcome("unknown")
    family_id, owner, user_id, audience, scope = row
    grant = Grant(user_id, _login(cursor, user_id), owner, scope, audience, family_id)
    if owner != client_id:
        return GrantOutcome("foreign", grant)
    hashes = revoke_family_txn(cursor, family_id, now, "revoked-by-client")
    return GrantOutcome("ok", grant, revoked=hashes)


@frozen
class AccessRecord:
    """What the bearer check needs of an access token row."""

    token_hash: str
    user: str
    client_id: str
    audience: str
    scope: str
    expires_at: float
    revoked: bool


def lookup_access_txn(cursor: Cursor, token_hash: str) -> AccessRecord | None:
    """The access token with this digest (revoked ones too), or ``None``."""
    row = cursor.execute(
        "SELECT tokens.token_hash, users.login, tokens.client_id, tokens.audience, "
        "tokens.scope, tokens.expires_at, tokens.revoked_at "
        "FROM tokens JOIN users ON users.id = tokens.user_id "
        "WHERE tokens.token_hash = ? AND tokens.kind = 'access'",
        (token_hash,),
    ).fetchone()
    if row is None:
        return None
    return AccessRecord(
        row[0], row[1], row[2], row[3], row[4], row[5], revoked=row[6] is not None
    )


async def lookup_access(store: TxnRunner, token_hash: str) -> AccessRecord | None:
    """Async wrapper of `lookup_access_txn`."""
    return await store.run(lookup_access_txn, token_hash)


def issue_admin_tokens_txn(
    cursor: Cursor,
    user_id: int,
    client_id: str,
    hashes: tuple[str, ...],
    *,
    audience: str,
    scope: str,
    now: float,
    expires_at: float,
    family_ids: tuple[str, ...],
) -> None:
    """Store access tokens minted by the operator (one family each, no refresh)."""
    for token_hash, family_id in zip(hashes, family_ids, strict=True):
        _insert_pair(
            cursor,
            Mint(token_hash, expires_at, None, None, now),
            family_id=family_id,
            parent_hash=None,
            client_id=client_id,
            user_id=user_id,
            audience=audience,
            scope=scope,
        )


def purge_expired_txn(cursor: Cursor, now: float) -> dict[str, int]:
    """Delete expired logins in progress, long-dead codes and expired tokens."""
    counts: dict[str, int] = {}
    cursor.execute("DELETE FROM pending_authorizations WHERE expires_at <= ?", (now,))
    counts["pending"] = cursor.rowcount
    cursor.execute(
        "DELETE FROM auth_codes WHERE expires_at <= ?", (now - CODE_RETENTION,)
    )
    counts["codes"] = cursor.rowcount
    cursor.execute("DELETE FROM tokens WHERE expires_at <= ?", (now,))
    counts["tokens"] = cursor.rowcount
    return counts
