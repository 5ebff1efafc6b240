-- microfunnel D1 schema, step 1: sites. Later migrations add events,
-- sessions, journeys and aggregates (see ARCHITECTURE.md, "Storage").
CREATE TABLE IF NOT EXISTS sites (
  id          TEXT PRIMARY KEY,               -- public site id, as in data-site
  name        TEXT NOT NULL,
  origins     TEXT NOT NULL DEFAULT '[]',     -- JSON array of allowed origins
  created_at  INTEGER NOT NULL                -- epoch ms
);
