-- fjmcp schema 3 on PostgreSQL: the uid each Forgejo user's children run
-- under (see SQLite's 0003_child_uids.sql).
CREATE TABLE child_uids (
    login        TEXT PRIMARY KEY,
    uid          BIGINT NOT NULL UNIQUE CHECK (uid > 0),
    allocated_at DOUBLE PRECISION NOT NULL
);
