-- fjmcp schema 2 on PostgreSQL: Forgejo tokens keyed by upstream grant (user
-- and scope set), as SQLite's 0002_upstream_grants.sql explains; rows of
-- schema 1 get scopes ''. PostgreSQL changes the key in place.
ALTER TABLE upstream_tokens ADD COLUMN scopes TEXT NOT NULL DEFAULT '';
ALTER TABLE upstream_tokens ALTER COLUMN scopes DROP DEFAULT;
ALTER TABLE upstream_tokens DROP CONSTRAINT upstream_tokens_pkey;
ALTER TABLE upstream_tokens ADD PRIMARY KEY (user_id, scopes);
