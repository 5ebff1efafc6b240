-- microfunnel D1 schema, step 6: conversions after the lead.

-- A conversion credited on an earlier conversion's path (its definition's
-- `inherits`): that conversion's message id. NULL: credited on its own journey.
ALTER TABLE conversions ADD COLUMN inherited_from TEXT;

-- `properties.transaction_id` as sent: a later conversion of the same
-- definition and transaction replaces the value (refund, upsell) instead of
-- counting twice, and says when.
ALTER TABLE conversions ADD COLUMN transaction_id TEXT;
ALTER TABLE conversions ADD COLUMN adjusted_at INTEGER;

-- Reports filter by conversion name.
CREATE INDEX IF NOT EXISTS conversions_by_name ON conversions (site_id, name, ts);
