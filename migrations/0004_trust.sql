-- microfunnel D1 schema, step 4: what the public browser endpoint may no
-- longer do by itself.

-- The per-site secret a site's own backend signs its users' identities with
-- (`identitySignature` = HMAC-SHA256 of the userId or of the e-mail's
-- SHA-256): only a signed browser identify may join another profile. Existing
-- sites get one now (read it once through
-- `POST /v1/sites/{site}/secrets/rotate {"kind": "identity"}`).
ALTER TABLE sites ADD COLUMN identity_secret TEXT NOT NULL DEFAULT '';
UPDATE sites SET identity_secret = 'mfis_' || lower(hex(randomblob(32))) WHERE identity_secret = '';

-- An identity link an authenticated source made (a server event, a signed
-- identify): only such a device's withdrawal reaches the whole profile.
-- Unverified claims are stored under their own kinds (`user_claim`,
-- `email_claim`), which no lookup for joining ever reads.
ALTER TABLE identities ADD COLUMN verified INTEGER NOT NULL DEFAULT 0;

-- Where a conversion's value came from (`browser` | `server`): a browser's
-- value is clamped to its definition's `max_value`.
ALTER TABLE conversions ADD COLUMN source TEXT;

-- The random id of the attempt that inserted a conversion: the path
-- aggregate is counted only by that attempt, never again by a replay.
ALTER TABLE conversions ADD COLUMN attempt TEXT;
