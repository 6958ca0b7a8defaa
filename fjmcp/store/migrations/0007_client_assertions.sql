-- fjmcp schema 7: client assertions already used (RFC 7523 private_key_jwt).
--
-- Each assertion's `jti` may be accepted once per client; the row is kept
-- until the assertion expires (after that its `exp` refuses it anyway), so
-- a replay is refused by every broker node sharing the store and after a
-- restart. `jti_hash`: SHA-256 hex of the jti (its size is the client's
-- choice, the row's is not).
CREATE TABLE client_assertions (
    client_id  TEXT NOT NULL,
    jti_hash   TEXT NOT NULL,
    expires_at REAL NOT NULL,
    PRIMARY KEY (client_id, jti_hash)
);
CREATE INDEX client_assertions_expires ON client_assertions (expires_at);
