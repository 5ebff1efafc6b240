// The Worker is up, its D1 schema is migrated, and the demo is served at `/`.
import { test } from 'node:test';
import assert from 'node:assert/strict';

const base = process.env.MF_BASE_URL;

test('GET /health reports ok with the D1 migrations applied', async () => {
  const res = await fetch(`${base}/health`);
  assert.equal(res.status, 200);
  const body = await res.json();
  assert.equal(body.status, 'ok');
  assert.equal(body.database.ok, true);
  assert.ok(body.database.migrations >= 1);
  assert.equal(typeof body.consent_policy, 'number');
});

test('GET / serves the demo home page with the script tag', async () => {
  const res = await fetch(`${base}/`);
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type') ?? '', /text\/html/);
  const html = await res.text();
  assert.match(html, /<script[^>]+src="\/mf\.js"[^>]+data-site=/);
});

test('an unknown route is a JSON 404', async () => {
  const res = await fetch(`${base}/v1/nope`);
  assert.equal(res.status, 404);
  const body = await res.json();
  assert.equal(body.error.code, 'not_found');
  assert.equal(typeof body.error.message, 'string');
});
