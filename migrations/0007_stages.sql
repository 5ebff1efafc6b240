-- Lifecycle stages (issue 14): a lead's current stage and its stage history
-- ([{"to": stage id, "at": ms}], in order), written from the core's score.
-- They live on the visitor's row, so retention and erasure reach them with it.
ALTER TABLE visitors ADD COLUMN stage TEXT;
ALTER TABLE visitors ADD COLUMN stages TEXT;
CREATE INDEX IF NOT EXISTS visitors_by_stage ON visitors (site_id, stage);
