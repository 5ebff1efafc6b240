-- The demo site for `cargo xtask dev` (idempotent: apply it as often as you
-- like, after the migrations):
--   npx wrangler d1 execute DB --local --file migrations/seed/demo.sql
-- Its keys are public and for local use only: the server key is
-- `mfsk_demo_local_only` (stored as its SHA-256), the signing secret
-- `mfss_demo_local_only`. Never seed this into a deployed database.
INSERT INTO sites (id, name, origins, created_at, secret_hash, signing_secret, config, webhooks, retention_days, updated_at)
VALUES (
  'demo',
  'Cabinet Martin — droit du travail, Marseille (demo)',
  '["http://127.0.0.1:8787","http://localhost:8787"]',
  0,
  '612fdfe4832f77c1b5ccee021b5c50f3e2d9061e5419807c0854c8919abcd110',
  'mfss_demo_local_only',
  '{"cta":{"cold":{"text":"Lire nos guides"},"warm":{"text":"Réserver un appel"},"hot":{"text":"Prendre rendez-vous"},"very_hot":{"text":"Appeler maintenant"}},"conversions":[{"event":"Book Clicked","default_value_minor":0},{"event":"Contact Submitted","default_value_minor":15000,"currency":"EUR"}]}',
  '[]',
  395,
  0
)
ON CONFLICT(id) DO NOTHING;
