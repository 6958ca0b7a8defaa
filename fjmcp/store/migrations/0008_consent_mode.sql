-- fjmcp schema 8: the consent mode the user chose for a client.
--
-- 'full' or 'read-only' (the consent page's choice). Tokens carry it in
-- their scope (`mcp:read-only`), so the bearer check needs no join; this
-- column is what a later authorization of the same client starts from, and
-- what the account page shows and changes. Consents given before schema 8
-- were given for everything: 'full'.
ALTER TABLE consents ADD COLUMN mode TEXT NOT NULL DEFAULT 'full'
    CHECK (mode IN ('full', 'read-only'));
