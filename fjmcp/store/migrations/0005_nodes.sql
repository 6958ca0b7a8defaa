-- fjmcp schema 5: the nodes running on this store, so that a second node
-- started with a node_id already in use is refused (session ids carry the
-- node id, and the balancer routes on it). `seen_at` (the database's
-- clock) is renewed by a running node; a row not renewed for a while, or
-- naming a dead process on this host, belongs to a node that is gone.
-- Additive: older nodes ignore it.
CREATE TABLE nodes (
    node_id    TEXT PRIMARY KEY,
    host       TEXT NOT NULL,
    pid        INTEGER NOT NULL,
    started_at REAL NOT NULL,
    seen_at    REAL NOT NULL
);
