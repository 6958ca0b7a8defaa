-- fjmcp schema 3: the uid each Forgejo user's children run under, when
-- child_uid_range is set. One row per login, one login per uid, never
-- reused: a uid that two users could share would let one signal, trace or
-- read the other's children.
CREATE TABLE child_uids (
    login        TEXT PRIMARY KEY,
    uid          INTEGER NOT NULL UNIQUE CHECK (uid > 0),
    allocated_at REAL NOT NULL
);
