-- Customers: the daily refit's book per site (`customers`): each visitor
-- with a valued conversion, their first channel, value to date, the models'
-- predictions and their segment; and the fit it came from (`customer_fits`,
-- one row per site: the parameters or why the models could not be fitted).
-- Rebuilt whole by each refit from the conversions (so retention and erasure
-- of conversions reach it by the next refit); erasure, merges and the
-- retention sweep also reach these rows at once.
CREATE TABLE IF NOT EXISTS customers (
  site_id            TEXT NOT NULL,
  visitor_id         TEXT NOT NULL,
  first_channel      TEXT NOT NULL,
  first_ts           INTEGER NOT NULL,
  last_ts            INTEGER NOT NULL,
  purchase_days      INTEGER NOT NULL,
  value_minor        INTEGER NOT NULL,
  p_alive            REAL,
  expected_purchases REAL,
  predicted_minor    INTEGER,
  segment            TEXT NOT NULL,
  PRIMARY KEY (site_id, visitor_id)
);
CREATE INDEX IF NOT EXISTS customers_by_segment ON customers (site_id, segment);
CREATE TABLE IF NOT EXISTS customer_fits (
  site_id    TEXT PRIMARY KEY,
  fitted_at  INTEGER NOT NULL,
  summary    TEXT NOT NULL          -- JSON: currency, counts, parameters or errors, thresholds, timing
);
