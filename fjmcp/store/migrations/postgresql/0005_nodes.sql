-- fjmcp schema 5 on PostgreSQL: the nodes running on this store (see
-- SQLite's 0005_nodes.sql). Additive: older nodes ignore it.
CREATE TABLE nodes (
    node_id    TEXT PRIMARY KEY,
    host       TEXT NOT NULL,
    pid        BIGINT NOT NULL,
    started_at DOUBLE PRECISION NOT NULL,
    seen_at    DOUBLE PRECISION NOT NULL
);
