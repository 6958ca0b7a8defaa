-- fjmcp schema 2: Forgejo tokens keyed by upstream grant, not by user.
--
-- One user may hold several Forgejo grants (a read-only and a full-access
-- one, say), each with its own token and its own refresh, so the key is the
-- user and the Forgejo scope set the grant was made with (`scopes`: the
-- scope names sorted, deduplicated and joined by one space). Rows of
-- schema 1 do not say which scopes they were granted with: they move over
-- with `scopes` = '' and the broker's configured grant adopts a user's ''
-- row the first time it reads or writes that user's token. The sealed
-- columns stay bound to (user, column), so adopting a row re-keys it
-- without opening it. SQLite cannot change a primary key in place: the
-- table is rebuilt (foreign keys are off while a migration runs).
CREATE TABLE upstream_tokens_new (
    user_id        INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    scopes         TEXT NOT NULL,
    key_id         TEXT NOT NULL,
    access_sealed  BLOB NOT NULL,
    refresh_sealed BLOB,
    expires_at     REAL,
    generation     INTEGER NOT NULL,
    updated_at     REAL NOT NULL,
    PRIMARY KEY (user_id, scopes)
);
INSERT INTO upstream_tokens_new (user_id, scopes, key_id, access_sealed,
                                 refresh_sealed, expires_at, generation,
                                 updated_at)
SELECT user_id, '', key_id, access_sealed, refresh_sealed, expires_at,
       generation, updated_at
FROM upstream_tokens;
DROP TABLE upstream_tokens;
ALTER TABLE upstream_tokens_new RENAME TO upstream_tokens;
CREATE INDEX upstream_tokens_expires ON upstream_tokens (expires_at);
