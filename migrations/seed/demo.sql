-- The demo site for `cargo xtask dev` (idempotent: apply it as often as you
-- like, after the migrations):
--   npx wrangler d1 execute DB --local --file migrations/seed/demo.sql
-- Its keys are public and for local use only: the server key is
-- `mfsk_demo_local_only` (stored as its SHA-256), the signing secret
-- `mfss_demo_local_only`, the identity secret `mfis_demo_local_only`. Never
-- seed this into a deployed database.
-- Its rules are the default rules (version `demo-1`) with the demo's own
-- French paths added to the web page matchers: `/demo` (home),
-- `/demo/blog/**` (articles), `/demo/tarifs/**` (pricing).
INSERT INTO sites (id, name, origins, created_at, secret_hash, signing_secret, identity_secret, config, webhooks, retention_days, updated_at)
VALUES (
  'demo',
  'Cabinet Martin — droit du travail, Marseille (demo)',
  '["http://127.0.0.1:8787","http://localhost:8787"]',
  0,
  '612fdfe4832f77c1b5ccee021b5c50f3e2d9061e5419807c0854c8919abcd110',
  'mfss_demo_local_only',
  'mfis_demo_local_only',
  '{"rules":{"version":"demo-1","session_timeout_minutes":30,"decay":{"kind":"linear","points":2,"period_days":7},"velocity":{"factor":2.0,"baseline_days":28,"min_points":15},"tiers":{"cold":0,"warm":26,"hot":51,"very_hot":76},"stages":[{"id":"lead","label":"Lead","any_conversion":true},{"id":"qualified","label":"Qualifié","min_score":51},{"id":"client","label":"Client"}],"actions":{"web":{"home_view":{"label":"home page view","points":1,"frequency":"once_per_session","match":[{"page":"/"},{"page":"/demo"}]},"blog_read":{"label":"blog article read","points":3,"frequency":{"per_day":5},"match":[{"page":"/blog/**"},{"page":"/demo/blog"},{"page":"/demo/blog/**"}]},"pricing_view":{"label":"pricing page view","points":15,"frequency":"once_per_session","match":[{"page":"/pricing"},{"page":"/pricing/**"},{"page":"/demo/tarifs"},{"page":"/demo/tarifs/**"}]},"buy_click":{"label":"click on Buy / Book","points":25,"frequency":"once_per_session","match":[{"element":"buy"},{"element":"book"}]}},"email":{"open":{"label":"email open","points":2,"frequency":{"per_day":3},"match":[{"event":"Email Opened"}]},"click":{"label":"email link click","points":8,"frequency":{"per_day":3},"match":[{"event":"Email Link Clicked"}]},"reply":{"label":"direct reply to an email","points":20,"frequency":{"per_day":1}},"unsubscribe":{"label":"newsletter unsubscribe","points":-30,"frequency":"once_per_visitor","match":[{"event":"Unsubscribed"}]},"spam_report":{"label":"email marked as spam","points":-40,"frequency":"once_per_visitor","match":[{"event":"Email Marked as Spam"}]}},"social":{"follow":{"label":"follows the company page","points":3,"frequency":"once_per_visitor"},"comment":{"label":"comment on a post","points":10,"frequency":{"per_day":2}},"message":{"label":"private message","points":18,"frequency":{"per_day":1}}},"event":{"webinar_register":{"label":"webinar registration","points":12,"frequency":{"per_day":1}},"webinar_attend":{"label":"webinar attendance","points":25,"frequency":{"per_day":1}},"webinar_question":{"label":"question asked during a webinar","points":35,"frequency":{"per_day":1}}},"offline":{"booth_visit":{"label":"visit at a trade-show booth","points":8,"frequency":{"per_day":1}},"qr_scan":{"label":"QR scan / brochure taken","points":15,"frequency":{"per_day":1}},"contact_left":{"label":"leaves contact details","points":20,"frequency":{"per_day":1}},"meeting_request":{"label":"asks for a sales meeting","points":40,"frequency":{"per_day":1}},"call_refused":{"label":"explicitly refuses a sales call","points":-25,"frequency":{"per_day":1}}},"ad":{"hide":{"label":"unsubscribe / hide on an ad","points":-15,"frequency":{"per_day":1}}}}},"cta":{"primary":{"cold":{"text":"Lire le guide : vos droits en cas de licenciement"}},"primary-action":{"warm":{"text":"Réserver un premier appel"},"hot":{"text":"Prendre rendez-vous cette semaine"},"very_hot":{"text":"Être rappelé aujourd’hui","href":"/demo/contact/?rappel=1"}}},"conversions":[{"event":"Book Clicked","default_value_minor":0},{"event":"Contact Submitted","default_value_minor":15000,"currency":"EUR"},{"event":"Client Signed","value_property":"value","currency":"EUR","value_from":"server","inherits":"Contact Submitted","stage":"client"}]}',
  '[]',
  395,
  0
)
ON CONFLICT(id) DO NOTHING;
