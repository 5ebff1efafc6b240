// The tenants migration (0005) on a database made by the previous schema and
// holding data: applied with wrangler to a local D1 of its own, it keeps every
// row, gives existing sites their plain-text secret as version 0 (so their
// integrations keep working until rotated), and adds empty token, share and
// audit tables.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { root } from './lib.mjs';

const persist = mkdtempSync(join(tmpdir(), 'mf-migrate-'));
function d1(args) {
  const out = execFileSync(process.env.MF_WRANGLER, ['d1', 'execute', 'DB', '--local', '--env', 'test', '--persist-to', persist, '--json', ...args], {
    cwd: root,
    encoding: 'utf8',
    env: { ...process.env, WRANGLER_SEND_METRICS: 'false' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  return JSON.parse(out).map((r) => r.results);
}
const file = (path) => d1(['--file', path]);
const sql = (command) => d1(['--command', command]);

test('0005 applies cleanly on a database of the previous schema, with its data', () => {
  try {
    const migrations = readdirSync(join(root, 'migrations')).filter((f) => f.endsWith('.sql')).sort();
    const before = migrations.filter((f) => f < '0005');
    assert.deepEqual(before, ['0001_init.sql', '0002_collector.sql', '0003_spend_and_speed.sql', '0004_trust.sql']);
    for (const f of before) file(join(root, 'migrations', f));
    file(join(root, 'migrations/seed/demo.sql'));
    const data = join(persist, 'data.sql');
    writeFileSync(
      data,
      [
        `INSERT INTO visitors (site_id, visitor_id, score_milli, tier, first_seen, last_seen) VALUES ('demo', 'v-1', 42000, 'warm', 1, 2);`,
        `INSERT INTO identities (site_id, kind, value, visitor_id, created_at) VALUES ('demo', 'anonymous', 'a-1', 'v-1', 1);`,
        `INSERT INTO spend (site_id, channel, day_ms, amount_minor, currency, updated_at) VALUES ('demo', 'Email', 0, 500, 'EUR', 1);`,
      ].join('\n'),
    );
    file(data);
    const count = () =>
      sql("SELECT (SELECT COUNT(*) FROM sites) AS sites, (SELECT COUNT(*) FROM visitors) AS visitors, (SELECT COUNT(*) FROM identities) AS identities, (SELECT COUNT(*) FROM spend) AS spend")[0][0];
    const held = count();
    assert.deepEqual(held, { sites: 1, visitors: 1, identities: 1, spend: 1 });

    file(join(root, 'migrations/0005_tenants.sql'));
    assert.deepEqual(count(), held, 'every row kept');
    const [site] = sql('SELECT signing_secret, signing_version, signing_previous_until, webhook_version, webhook_previous_until FROM sites')[0];
    assert.deepEqual(site, { signing_secret: 'mfss_demo_local_only', signing_version: 0, signing_previous_until: 0, webhook_version: 0, webhook_previous_until: 0 });
    const empty = sql('SELECT (SELECT COUNT(*) FROM site_tokens) AS t, (SELECT COUNT(*) FROM shares) AS s, (SELECT COUNT(*) FROM audit_log) AS a')[0][0];
    assert.deepEqual(empty, { t: 0, s: 0, a: 0 });
    // The role check holds in the table itself.
    assert.throws(() =>
      sql("INSERT INTO site_tokens (id, site_id, role, name, digest, created_at, created_by) VALUES ('mftk_x', 'demo', 'root', 'x', 'd', 1, 'admin')"),
    );
  } finally {
    rmSync(persist, { recursive: true, force: true });
  }
});
