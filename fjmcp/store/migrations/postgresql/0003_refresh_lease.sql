-- fjmcp schema 3 on PostgreSQL: the refresh lease of each Forgejo grant (see
-- SQLite's 0003_refresh_lease.sql). Additive: older nodes ignore it.
ALTER TABLE upstream_tokens ADD COLUMN lease_owner TEXT;
ALTER TABLE upstream_tokens ADD COLUMN lease_until DOUBLE PRECISION;
