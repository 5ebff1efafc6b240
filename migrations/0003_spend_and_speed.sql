-- microfunnel D1 schema, step 3: channel spend (POST /v1/spend), the input of
-- CPA and ROAS in the KPI report. One row per (site, channel, UTC day); an
-- upload of the same day replaces the figure.
CREATE TABLE IF NOT EXISTS spend (
  site_id       TEXT NOT NULL,
  channel       TEXT NOT NULL,
  day_ms        INTEGER NOT NULL,             -- UTC midnight of the day
  amount_minor  INTEGER NOT NULL,
  currency      TEXT,
  updated_at    INTEGER NOT NULL,
  PRIMARY KEY (site_id, channel, day_ms)
);

-- When the converting journey's first touch happened: the paths report's
-- "fastest sequences" (time from first touch to conversion).
ALTER TABLE conversions ADD COLUMN first_touch_ts INTEGER;

-- A lead's top score drivers (JSON: [{action, points, count}], fit rules
-- included), written by the visitor's Durable Object with its score, so
-- `GET /v1/leads` says why each lead is where it is.
ALTER TABLE visitors ADD COLUMN drivers TEXT;

-- The score's snapshot (core `scoring::Snapshot`): engagement as of the last
-- activity, fit and the fold's instants, so `GET /v1/leads` shows each lead's
-- score decayed to the time of the request, not frozen at its last event.
ALTER TABLE visitors ADD COLUMN engagement_milli INTEGER;
ALTER TABLE visitors ADD COLUMN fit_milli INTEGER;
ALTER TABLE visitors ADD COLUMN last_activity_ms INTEGER;
ALTER TABLE visitors ADD COLUMN last_at_ms INTEGER;
