-- fjmcp schema 4 on PostgreSQL: the refresh lease of each Forgejo grant (see
-- SQLite's 0004_refresh_lease.sql). Additive: older nodes ignore it.
ALTER TABLE upstream_tokens ADD COLUMN lease_owner TEXT;
ALTER TABLE upstream_tokens ADD COLUMN lease_until DOUBLE PRECISION;
