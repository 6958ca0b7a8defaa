-- fjmcp schema 1: users, OAuth clients, the authorization flow, broker
-- tokens and the users' sealed Forgejo tokens.
--
-- Times are seconds since the epoch (REAL), read from the reactor's clock.
-- No secret is stored in the clear: broker tokens, authorization codes,
-- client secrets, state values and cookies only as SHA-256 hex digests;
-- Forgejo tokens (and the PKCE verifier toward Forgejo) sealed with AES-GCM,
-- each row naming its key id, with the row's identity as associated data.

-- Forgejo accounts that logged in (or were named by `fjmcp admin issue-token`).
-- `id` is ours and stable: a Forgejo login can be renamed, its id cannot.
CREATE TABLE users (
    id            INTEGER PRIMARY KEY,
    login         TEXT NOT NULL UNIQUE,
    forgejo_id    INTEGER UNIQUE,        -- NULL until the user logs in through Forgejo
    created_at    REAL NOT NULL,
    last_login_at REAL
);

-- OAuth clients of the broker. `kind`: 'dcr' (RFC 7591 registration),
-- 'cimd' (client ID metadata document, cached), 'known' (operator records
-- for well-known vendors), 'builtin' (admin-cli). JSON columns hold arrays
-- (grant_types, redirect_uris) or the registered metadata object.
CREATE TABLE clients (
    client_id           TEXT PRIMARY KEY,
    kind                TEXT NOT NULL
                        CHECK (kind IN ('dcr', 'cimd', 'known', 'builtin')),
    secret_hash         TEXT,
    auth_method         TEXT NOT NULL
                        CHECK (auth_method IN ('none', 'client_secret_basic',
                               'client_secret_post', 'private_key_jwt')),
    grant_types         TEXT NOT NULL DEFAULT '[]',
    redirect_uris       TEXT NOT NULL DEFAULT '[]',
    client_name         TEXT,
    metadata            TEXT NOT NULL DEFAULT '{}',
    created_at          REAL NOT NULL,
    last_used_at        REAL,
    metadata_expires_at REAL,            -- CIMD: when the cached document goes stale
    CHECK ((auth_method IN ('client_secret_basic', 'client_secret_post'))
           = (secret_hash IS NOT NULL))
);
CREATE INDEX clients_last_used ON clients (last_used_at);

-- The broker's own client for tokens minted by `fjmcp admin issue-token`:
-- no redirect URI and no grant type, so it can never take part in a flow.
INSERT INTO clients (client_id, kind, secret_hash, auth_method, grant_types,
                     redirect_uris, client_name, metadata, created_at)
VALUES ('admin-cli', 'builtin', NULL, 'none', '[]', '[]', 'fjmcp admin', '{}', 0);

-- Logins in progress: created when the user approves (or consent is
-- skipped), right before the redirect to Forgejo; taken (deleted) by the
-- callback. Keyed by the hash of the single-use state sent to Forgejo, and
-- bound to the browser by the hash of a cookie set with that redirect.
CREATE TABLE pending_authorizations (
    state_hash      TEXT PRIMARY KEY,
    browser_hash    TEXT NOT NULL,
    client_id       TEXT NOT NULL REFERENCES clients (client_id) ON DELETE CASCADE,
    redirect_uri    TEXT NOT NULL,
    client_state    TEXT,                -- the client's own state, echoed back
    code_challenge  TEXT NOT NULL,
    scope           TEXT NOT NULL,
    resource        TEXT NOT NULL,
    consent_user    TEXT,                -- consent skipped for this login (cookie)
    key_id          TEXT NOT NULL,
    verifier_sealed BLOB NOT NULL,       -- our PKCE verifier toward Forgejo
    created_at      REAL NOT NULL,
    expires_at      REAL NOT NULL
);
CREATE INDEX pending_expires ON pending_authorizations (expires_at);

-- A user approved a client id (recorded at the callback, for the user who
-- then logged in).
CREATE TABLE consents (
    user_id    INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    client_id  TEXT NOT NULL REFERENCES clients (client_id) ON DELETE CASCADE,
    granted_at REAL NOT NULL,
    PRIMARY KEY (user_id, client_id)
);

-- Broker authorization codes: single use, bound to client, redirect URI,
-- PKCE challenge, scope and resource. `family_id` names the tokens minted
-- from the code, so that a replay can revoke them.
CREATE TABLE auth_codes (
    code_hash      TEXT PRIMARY KEY,
    client_id      TEXT NOT NULL REFERENCES clients (client_id) ON DELETE CASCADE,
    user_id        INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    redirect_uri   TEXT NOT NULL,
    code_challenge TEXT NOT NULL,
    scope          TEXT NOT NULL,
    resource       TEXT NOT NULL,
    family_id      TEXT NOT NULL,
    created_at     REAL NOT NULL,
    expires_at     REAL NOT NULL,
    used_at        REAL
);
CREATE INDEX auth_codes_expires ON auth_codes (expires_at);

-- Broker access and refresh tokens. A family is everything minted from one
-- authorization code (and its rotations); `parent_hash` is the refresh
-- token a pair was minted from; `rotated_at` marks a spent refresh token
-- (reusing it revokes the family, RFC 9700 4.14; the time also allows a
-- short retry grace later).
CREATE TABLE tokens (
    token_hash     TEXT PRIMARY KEY,
    kind           TEXT NOT NULL CHECK (kind IN ('access', 'refresh')),
    family_id      TEXT NOT NULL,
    parent_hash    TEXT,
    client_id      TEXT NOT NULL REFERENCES clients (client_id) ON DELETE CASCADE,
    user_id        INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    audience       TEXT NOT NULL,
    scope          TEXT NOT NULL,
    issued_at      REAL NOT NULL,
    expires_at     REAL NOT NULL,
    rotated_at     REAL,
    revoked_at     REAL,
    revoked_reason TEXT
);
CREATE INDEX tokens_family ON tokens (family_id);
CREATE INDEX tokens_user_client ON tokens (user_id, client_id);
CREATE INDEX tokens_expires ON tokens (expires_at);

-- Each user's current Forgejo tokens, sealed (AES-GCM) with key `key_id`.
-- `generation` grows by one on every replacement (login or refresh), so a
-- child started with an older one is known to be stale. `expires_at` NULL:
-- the token does not expire (e.g. a personal access token given to
-- issue-token).
CREATE TABLE upstream_tokens (
    user_id        INTEGER PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    key_id         TEXT NOT NULL,
    access_sealed  BLOB NOT NULL,
    refresh_sealed BLOB,
    expires_at     REAL,
    generation     INTEGER NOT NULL,
    updated_at     REAL NOT NULL
);
CREATE INDEX upstream_tokens_expires ON upstream_tokens (expires_at);
