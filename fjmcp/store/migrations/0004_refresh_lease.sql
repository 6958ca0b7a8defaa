-- fjmcp schema 4: a lease on each Forgejo grant's refresh, so that of
-- several nodes sharing one store exactly one refreshes a grant at a time
-- (Forgejo rotates refresh tokens: a second refresh of one token would fail
-- and log the user out). `lease_owner` is the node id holding it,
-- `lease_until` (seconds since the epoch, the database's clock) when it
-- lapses if the node died meanwhile. Additive: older nodes ignore it.
ALTER TABLE upstream_tokens ADD COLUMN lease_owner TEXT;
ALTER TABLE upstream_tokens ADD COLUMN lease_until REAL;
