-- fjmcp schema 8 on PostgreSQL: the consent mode the user chose for a
-- client (see SQLite's 0008_consent_mode.sql). Additive: older nodes ignore
-- it, and every consent given before was given for everything: 'full'.
ALTER TABLE consents ADD COLUMN mode TEXT NOT NULL DEFAULT 'full'
    CHECK (mode IN ('full', 'read-only'));
