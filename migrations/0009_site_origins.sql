-- Which site lists which origin (issue 12, L11): CORS on an error raised
-- before the site is known asks whether any site lists the caller's origin,
-- an indexed lookup here instead of a json_each scan of every site. Kept by
-- site creation and update, in the same batch as the row it mirrors.
CREATE TABLE IF NOT EXISTS site_origins (
  origin   TEXT NOT NULL,
  site_id  TEXT NOT NULL,
  PRIMARY KEY (origin, site_id)
);
INSERT OR IGNORE INTO site_origins (origin, site_id)
  SELECT json_each.value, sites.id FROM sites, json_each(sites.origins);
