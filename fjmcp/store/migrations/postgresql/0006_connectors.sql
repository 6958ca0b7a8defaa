-- fjmcp schema 6 on PostgreSQL: what real connectors need of the flow (see
-- SQLite's 0006_connectors.sql). Additive: older nodes ignore it.
--
-- A login in progress is no longer deleted by its callback but marked
-- taken, until it expires: a second Approve of the same consent form (a
-- double click) or a reloaded callback then finds it and shows a clear
-- page, instead of starting a second login that would issue a second code.
ALTER TABLE pending_authorizations ADD COLUMN taken_at DOUBLE PRECISION;

-- The answer of a refresh, kept sealed (AES-GCM, key `key_id`, bound to
-- `refresh_hash`) for the reuse grace, keyed by the digest of the refresh
-- token it spent: a client that lost the answer and retries with the same
-- token within the grace gets the very same answer again, whichever node
-- or process answers. `child_hash` is the refresh token the answer holds:
-- once that one is spent, the retry is reuse.
CREATE TABLE refresh_replays (
    refresh_hash  TEXT PRIMARY KEY,
    child_hash    TEXT NOT NULL,
    key_id        TEXT NOT NULL,
    answer_sealed BYTEA NOT NULL,
    created_at    DOUBLE PRECISION NOT NULL,
    expires_at    DOUBLE PRECISION NOT NULL
);
CREATE INDEX refresh_replays_expires ON refresh_replays (expires_at);

-- Logins at Forgejo for the /account page (not for a client): bound to the
-- browser like a login for a client, single use, short-lived.
CREATE TABLE account_logins (
    state_hash      TEXT PRIMARY KEY,
    browser_hash    TEXT NOT NULL,
    key_id          TEXT NOT NULL,
    verifier_sealed BYTEA NOT NULL,
    created_at      DOUBLE PRECISION NOT NULL,
    expires_at      DOUBLE PRECISION NOT NULL,
    taken_at        DOUBLE PRECISION
);
CREATE INDEX account_logins_expires ON account_logins (expires_at);
