-- Segment's HTTP Tracking API names no site: the write key (a site's server
-- key) is the site. The key is stored only as its SHA-256 (`secret_hash`),
-- so the site is found by that digest, an indexed lookup.
CREATE INDEX IF NOT EXISTS sites_secret_hash ON sites (secret_hash);
