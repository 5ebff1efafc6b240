-- CTA holdout tests: each event's arm as the collector derived it from the
-- visitor id and the site's `cta.holdout_percent` (NULL: no test, or no
-- analytics consent), for the lift report. Erased and expired with its event.
ALTER TABLE events ADD COLUMN cta_arm TEXT;
CREATE INDEX IF NOT EXISTS events_by_arm ON events (site_id, cta_arm, ts) WHERE cta_arm IS NOT NULL;
