-- microfunnel D1 schema, step 2: the collector (issue 6).
-- Every row is keyed by its site. Times are epoch milliseconds. No table
-- holds a raw IP: rate_limits keys carry at most a daily-salted HMAC of it.

-- Sites: credentials, the admin-managed configuration and retention.
ALTER TABLE sites ADD COLUMN secret_hash TEXT NOT NULL DEFAULT '';     -- hex SHA-256 of the server key (Bearer)
ALTER TABLE sites ADD COLUMN signing_secret TEXT NOT NULL DEFAULT '';  -- HMAC-SHA256 key: signed server events, webhooks
ALTER TABLE sites ADD COLUMN config TEXT NOT NULL DEFAULT '{}';        -- JSON: rules, cta, consent, channels, conversions, limits
ALTER TABLE sites ADD COLUMN webhooks TEXT NOT NULL DEFAULT '[]';      -- JSON array of https URLs
ALTER TABLE sites ADD COLUMN retention_days INTEGER NOT NULL DEFAULT 395;
ALTER TABLE sites ADD COLUMN updated_at INTEGER NOT NULL DEFAULT 0;

-- Raw events, minimised by the core before they get here. (site_id,
-- message_id) is the de-duplication key: INSERT … ON CONFLICT DO NOTHING
-- makes storage exactly-once under client retries.
CREATE TABLE IF NOT EXISTS events (
  site_id      TEXT NOT NULL,
  message_id   TEXT NOT NULL,
  type         TEXT NOT NULL,                 -- page | track | identify | alias
  name         TEXT,                          -- track event name
  visitor_id   TEXT,                          -- the Durable Object key inside the site (NULL: cookieless count)
  anonymous_id TEXT,
  user_id      TEXT,
  channel      TEXT,
  source       TEXT NOT NULL,                 -- browser | server
  ts           INTEGER NOT NULL,
  received_at  INTEGER NOT NULL,
  payload      TEXT NOT NULL,                 -- the minimised event as JSON
  PRIMARY KEY (site_id, message_id)
);
CREATE INDEX IF NOT EXISTS events_by_visitor ON events (site_id, visitor_id, ts);
CREATE INDEX IF NOT EXISTS events_by_received ON events (site_id, received_at);

-- One row per visitor: the Durable Object's latest score, for leads queries.
CREATE TABLE IF NOT EXISTS visitors (
  site_id        TEXT NOT NULL,
  visitor_id     TEXT NOT NULL,
  user_id        TEXT,
  first_seen     INTEGER NOT NULL,
  last_seen      INTEGER NOT NULL,
  events         INTEGER NOT NULL DEFAULT 0,
  score_milli    INTEGER NOT NULL DEFAULT 0,
  tier           TEXT NOT NULL DEFAULT '',
  rules_version  TEXT NOT NULL DEFAULT '',
  PRIMARY KEY (site_id, visitor_id)
);
CREATE INDEX IF NOT EXISTS visitors_by_tier ON visitors (site_id, tier, score_milli DESC);

-- Sessions (a 30-minute inactivity gap starts a new one), kept by each
-- visitor's Durable Object and mirrored here for reports.
CREATE TABLE IF NOT EXISTS sessions (
  site_id     TEXT NOT NULL,
  session_id  TEXT NOT NULL,                  -- the messageId of its first event
  visitor_id  TEXT NOT NULL,
  started_at  INTEGER NOT NULL,
  ended_at    INTEGER NOT NULL,
  events      INTEGER NOT NULL,
  channel     TEXT,                           -- the channel it started from
  landing     TEXT,                           -- the path it started on
  PRIMARY KEY (site_id, session_id)
);
CREATE INDEX IF NOT EXISTS sessions_by_visitor ON sessions (site_id, visitor_id, started_at);

-- Identity stitching: anonymousId / userId / hashed e-mail → visitor.
CREATE TABLE IF NOT EXISTS identities (
  site_id     TEXT NOT NULL,
  kind        TEXT NOT NULL,                  -- anonymous | user | email_sha256
  value       TEXT NOT NULL,
  visitor_id  TEXT NOT NULL,
  created_at  INTEGER NOT NULL,
  PRIMARY KEY (site_id, kind, value)
);
CREATE INDEX IF NOT EXISTS identities_by_visitor ON identities (site_id, visitor_id);

-- Journeys live in each visitor's Durable Object while open; a conversion
-- closes one and records it here with its path. Credits per model are in
-- integer minor units.
CREATE TABLE IF NOT EXISTS conversions (
  site_id      TEXT NOT NULL,
  message_id   TEXT NOT NULL,
  visitor_id   TEXT NOT NULL,
  name         TEXT NOT NULL,
  value_minor  INTEGER NOT NULL,
  currency     TEXT,
  ts           INTEGER NOT NULL,
  received_at  INTEGER NOT NULL,
  tta_ms       INTEGER NOT NULL,              -- time to attribute: receipt → credits stored
  path         TEXT NOT NULL,                 -- channels in order, joined by ' > '
  PRIMARY KEY (site_id, message_id)
);
CREATE TABLE IF NOT EXISTS credits (
  site_id      TEXT NOT NULL,
  message_id   TEXT NOT NULL,
  visitor_id   TEXT NOT NULL,
  model        TEXT NOT NULL,
  channel      TEXT NOT NULL,
  share        REAL NOT NULL,                 -- fraction of the conversion
  credit_minor INTEGER NOT NULL,
  PRIMARY KEY (site_id, message_id, model, channel)
);

-- Path aggregates (ChannelAttribution's shape), updated per conversion, the
-- input of the Markov and Shapley reports.
CREATE TABLE IF NOT EXISTS paths (
  site_id      TEXT NOT NULL,
  path         TEXT NOT NULL,
  conversions  INTEGER NOT NULL DEFAULT 0,
  value_minor  INTEGER NOT NULL DEFAULT 0,
  nulls        INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (site_id, path)
);

-- Fixed-window counters; key = scope:subject:window. Purged by the cron.
CREATE TABLE IF NOT EXISTS rate_limits (
  key         TEXT PRIMARY KEY,
  window_end  INTEGER NOT NULL,
  count       INTEGER NOT NULL
);

-- Outgoing webhooks: one row per attempt.
CREATE TABLE IF NOT EXISTS webhook_deliveries (
  id          INTEGER PRIMARY KEY AUTOINCREMENT,
  site_id     TEXT NOT NULL,
  url         TEXT NOT NULL,
  event       TEXT NOT NULL,
  visitor_id  TEXT,
  attempt     INTEGER NOT NULL,
  status      INTEGER,
  error       TEXT,
  at          INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS webhook_deliveries_by_site ON webhook_deliveries (site_id, at);
