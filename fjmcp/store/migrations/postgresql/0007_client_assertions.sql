-- fjmcp schema 7 on PostgreSQL: client assertions already used (RFC 7523
-- private_key_jwt; see SQLite's 0007_client_assertions.sql). Additive: older
-- nodes ignore it.
--
-- Each assertion's `jti` may be accepted once per client; the row is kept
-- until the assertion expires, so a replay is refused by every broker node
-- sharing the store. `jti_hash`: SHA-256 hex of the jti.
CREATE TABLE client_assertions (
    client_id  TEXT NOT NULL,
    jti_hash   TEXT NOT NULL,
    expires_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (client_id, jti_hash)
);
CREATE INDEX client_assertions_expires ON client_assertions (expires_at);
