-- microfunnel D1 schema, step 5: tenants. Per-site tokens with a role, share
-- links to a site's aggregates, and the audit log of administrative acts.
-- Secrets are stored only as their SHA-256 (shown once, at creation).

CREATE TABLE IF NOT EXISTS site_tokens (
  id            TEXT PRIMARY KEY,             -- public id (mftk_…), for lists and revocation
  site_id       TEXT NOT NULL REFERENCES sites(id),
  role          TEXT NOT NULL CHECK (role IN ('owner', 'analyst', 'privacy', 'ingest')),
  name          TEXT NOT NULL,
  digest        TEXT NOT NULL UNIQUE,         -- hex SHA-256 of the token (mft_…)
  created_at    INTEGER NOT NULL,             -- epoch ms
  created_by    TEXT NOT NULL,                -- the acting token's id, or 'admin'
  expires_at    INTEGER,                      -- epoch ms; NULL = no expiry
  revoked_at    INTEGER,
  last_used_at  INTEGER
);
CREATE INDEX IF NOT EXISTS site_tokens_by_site ON site_tokens (site_id, created_at);

CREATE TABLE IF NOT EXISTS shares (
  id            TEXT PRIMARY KEY,             -- public id (mfsh_…)
  site_id       TEXT NOT NULL REFERENCES sites(id),
  name          TEXT NOT NULL,
  digest        TEXT NOT NULL UNIQUE,         -- hex SHA-256 of the link's secret (mfs_…)
  created_at    INTEGER NOT NULL,
  created_by    TEXT NOT NULL,
  expires_at    INTEGER,
  revoked_at    INTEGER
);
CREATE INDEX IF NOT EXISTS shares_by_site ON shares (site_id, created_at);

CREATE TABLE IF NOT EXISTS audit_log (
  id            INTEGER PRIMARY KEY AUTOINCREMENT,
  site_id       TEXT NOT NULL,
  at            INTEGER NOT NULL,             -- epoch ms
  action        TEXT NOT NULL,                -- token.created, config.changed, subject.erased, …
  actor_id      TEXT NOT NULL,                -- token id, share id, or 'admin'
  actor_name    TEXT NOT NULL,
  request_id    TEXT NOT NULL,
  detail        TEXT NOT NULL DEFAULT '{}'    -- JSON: what changed (field names, counts); never a secret or a subject's id
);
CREATE INDEX IF NOT EXISTS audit_log_by_site ON audit_log (site_id, at);

-- One HMAC secret per direction, derived from the Worker secret SECRETS_KEY
-- (see crates/edge/src/secrets.rs), never stored: `*_version` says which,
-- `*_previous_until` (epoch ms) how long the one before it stays valid after
-- a rotation. Version 0 is the plain-text `signing_secret` of the sites that
-- exist now, for both directions, until each is rotated.
ALTER TABLE sites ADD COLUMN signing_version INTEGER NOT NULL DEFAULT 0;
ALTER TABLE sites ADD COLUMN signing_previous_until INTEGER NOT NULL DEFAULT 0;
ALTER TABLE sites ADD COLUMN webhook_version INTEGER NOT NULL DEFAULT 0;
ALTER TABLE sites ADD COLUMN webhook_previous_until INTEGER NOT NULL DEFAULT 0;
