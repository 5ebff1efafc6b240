// The Worker is up, its D1 schema is migrated, and the demo is served at `/`.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { root } from './lib.mjs';

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

test('GET /v1/openapi.json: the API as OpenAPI 3.1, the document in the repository', async () => {
  const res = await fetch(`${base}/v1/openapi.json`);
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type') ?? '', /^application\/json/);
  const doc = await res.json();
  assert.equal(doc.openapi, '3.1.0');
  assert.deepEqual(doc, JSON.parse(readFileSync(join(root, 'crates/edge/openapi.json'), 'utf8')));
  for (const path of ['/v1/batch', '/v1/events', '/v1/reports/series', '/v1/sites/{site}/config']) assert.ok(doc.paths[path], path);
});
