-- Erasure records (issue 12): an erasure is written down before it starts,
-- with the visitors and ids it must reach, and marked done in the same D1
-- batch that deletes the last rows — its ids cleared then, so a completed
-- record holds counts of nothing personal. The daily cron completes any
-- record a failed request left pending.
CREATE TABLE IF NOT EXISTS erasures (
  id            TEXT PRIMARY KEY,
  site_id       TEXT NOT NULL,
  visitors      TEXT NOT NULL,               -- JSON array of visitor ids ('[]' once done)
  ids           TEXT NOT NULL,               -- JSON array of every linked id ('[]' once done)
  requested_at  INTEGER NOT NULL,
  completed_at  INTEGER,
  attempts      INTEGER NOT NULL DEFAULT 1,
  last_error    TEXT
);
CREATE INDEX IF NOT EXISTS erasures_pending ON erasures (completed_at, requested_at);
