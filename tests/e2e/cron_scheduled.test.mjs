// The daily purge through the platform's own scheduled entry point
// (`/cdn-cgi/handler/scheduled`), not around it. Under `wrangler dev` that
// entry point cannot reach a Worker that serves static assets (miniflare's
// asset proxy forwards the ScheduledController over RPC and fails with a
// DataCloneError before any Worker code runs: cloudflare/workers-sdk#9882,
// fixed only in releases that need Node.js 22). The deployed Worker is not
// affected. So this suite runs the same test build of the Worker without
// the assets binding — its own `wrangler dev`, its own fresh D1 and objects —
// and fires its `scheduled` export exactly as the cron trigger does.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { ADMIN, admin, root, consent, fetch, until, q } from './lib.mjs';

const ORIGIN = 'https://clinic.example';
const DAY = 86_400_000;
const dir = join(process.env.MF_STATE_DIR, '..', 'cron-scheduled');
const config = join(dir, 'wrangler.toml');
let dev;
let base;

// The test environment of wrangler.toml, minus its assets and build step
// (the build the main suite started is reused as it is).
const CONFIG = `name = "microfunnel-cron-test"
main = "${join(root, 'crates/edge/build-test/index.js')}"
compatibility_date = "2026-04-20"
[[d1_databases]]
binding = "DB"
database_name = "microfunnel-cron-test"
database_id = "00000000-0000-0000-0000-000000000002"
migrations_dir = "${join(root, 'migrations')}"
[vars]
ADMIN_TOKEN = "${ADMIN}"
IP_HASH_KEY = "test-ip-hash-key"
SECRETS_KEY = "test-secrets-key"
[[durable_objects.bindings]]
name = "VISITOR"
class_name = "Visitor"
[[durable_objects.bindings]]
name = "LIMITER"
class_name = "Limiter"
[[migrations]]
tag = "v1"
new_sqlite_classes = ["Visitor"]
[[migrations]]
tag = "v2"
new_sqlite_classes = ["Limiter"]
[triggers]
crons = ["17 3 * * *"]
`;

const wrangler = (args) =>
  execFileSync(process.env.MF_WRANGLER, [...args, '-c', config, '--persist-to', join(dir, 'state')], {
    cwd: dir,
    encoding: 'utf8',
    env: { ...process.env, WRANGLER_SEND_METRICS: 'false' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
const d1 = (sql) => JSON.parse(wrangler(['d1', 'execute', 'DB', '--local', '--json', '--command', sql]))[0].results;

function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
    s.on('error', reject);
  });
}

before(async () => {
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  writeFileSync(config, CONFIG);
  wrangler(['d1', 'migrations', 'apply', 'DB', '--local']);
  const port = await freePort();
  base = `http://127.0.0.1:${port}`;
  dev = spawn(
    process.env.MF_WRANGLER,
    ['dev', '-c', config, '--ip', '127.0.0.1', '--port', String(port), '--persist-to', join(dir, 'state'),
      '--show-interactive-dev-session=false', '--log-level', 'warn'],
    { cwd: dir, env: { ...process.env, WRANGLER_SEND_METRICS: 'false' }, stdio: 'ignore', detached: true },
  );
  await until(async () => {
    try {
      return (await globalThis.fetch(`${base}/health`)).status === 200;
    } catch {
      return false;
    }
  }, 60_000);
});

after(() => {
  if (dev?.pid) {
    try {
      process.kill(-dev.pid, 'SIGTERM');
    } catch {}
  }
});

test('the scheduled entry point runs the retention purge: old rows and a quiet visitor go, recent ones stay', async () => {
  const id = `cron-${randomUUID().slice(0, 8)}`;
  const made = await fetch(`${base}/v1/sites`, {
    method: 'POST',
    headers: { ...admin, 'content-type': 'application/json' },
    body: JSON.stringify({ id, origins: [ORIGIN], retention_days: 1 }),
  });
  assert.equal(made.status, 201, await made.text());
  const gone = randomUUID();
  const kept = randomUUID();
  const ev = (anon, path, at) => ({ type: 'page', anonymousId: anon, messageId: randomUUID(), timestamp: new Date(at).toISOString(),
    context: { page: { path } }, consent });
  const sent = await fetch(`${base}/v1/batch`, {
    method: 'POST',
    headers: { origin: ORIGIN },
    body: JSON.stringify({ site: id, batch: [ev(gone, '/tarifs', Date.now() - 2 * DAY), ev(kept, '/contact', Date.now())] }),
  });
  assert.equal(sent.status, 200, await sent.text());
  // What D1 would hold had the first arrived two days ago.
  d1(`UPDATE events SET received_at = received_at - 2 * ${DAY} WHERE site_id = ${q(id)} AND anonymous_id = ${q(gone)}`);
  d1(`UPDATE visitors SET last_seen = last_seen - 2 * ${DAY} WHERE site_id = ${q(id)} AND visitor_id = ${q(gone)}`);
  const count = (table, anon) => d1(`SELECT COUNT(*) AS n FROM ${table} WHERE site_id = ${q(id)} AND visitor_id = ${q(anon)}`)[0].n;
  assert.equal(count('events', gone), 1);

  // Exactly what the cron trigger calls: the Worker's `scheduled` export.
  const fired = await globalThis.fetch(`${base}/cdn-cgi/handler/scheduled?cron=${encodeURIComponent('17 3 * * *')}`);
  assert.equal(fired.status, 200);
  assert.equal(await fired.text(), 'ok', 'the scheduled handler ran to its end');

  assert.equal(count('events', gone), 0, 'an event past the retention is deleted');
  assert.equal(count('visitors', gone), 0, 'a visitor quiet for longer than the retention is deleted');
  assert.equal(count('events', kept), 1, 'a recent event stays');
  assert.equal(count('visitors', kept), 1);
  // Its object was swept too: nothing is held about that visitor any more.
  const ex = await fetch(`${base}/v1/subjects/${gone}?site=${id}`, { headers: admin });
  assert.equal(ex.status, 404, await ex.text());
});
