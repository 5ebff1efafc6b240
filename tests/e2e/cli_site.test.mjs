// `microfunnel site create` against the running collector: the site it
// creates exists with its origins, rules and conversions, its server key
// works on POST /v1/events, and a refused creation exits non-zero with the
// collector's error.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { writeFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { base, ADMIN, admin, fetch, root } from './lib.mjs';

function cli(args, env = {}) {
  return spawnSync('cargo', ['run', '-q', '-p', 'microfunnel-cli', '--', ...args], {
    cwd: root,
    encoding: 'utf8',
    env: { ...process.env, ...env },
    timeout: 600_000,
  });
}

test('microfunnel site create makes a working site; a refused one exits non-zero', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'mf-cli-'));
  const rules = join(dir, 'rules.toml');
  writeFileSync(
    rules,
    [
      'version = "cabinet-2"',
      '[decay]',
      'kind = "linear"',
      'points = 2',
      'period_days = 7',
      '[tiers]',
      'cold = 0',
      'hot = 20',
      '[actions.web.pricing_view]',
      'points = 20',
      'frequency = "once_per_session"',
      'match = [{ page = "/honoraires" }]',
      '',
    ].join('\n'),
  );
  const id = `cli-${randomUUID().slice(0, 8)}`;
  const out = cli(
    ['site', 'create', '--url', base, '--id', id, '--origin', 'https://cabinet.example', '--rules', rules,
      '--conversion', 'Consultation Booked=fee', '--retention-days', '90'],
    { MICROFUNNEL_ADMIN_TOKEN: ADMIN },
  );
  assert.equal(out.status, 0, out.stderr);
  const created = JSON.parse(out.stdout);
  assert.equal(created.id, id);
  assert.match(created.server_key, /^mfsk_/);

  const site = await (await fetch(`${base}/v1/sites/${id}`, { headers: admin })).json();
  assert.deepEqual(site.origins, ['https://cabinet.example']);
  const config = await (await fetch(`${base}/v1/sites/${id}/config`)).json();
  assert.equal(config.rules_version, 'cabinet-2', JSON.stringify(config));

  const res = await fetch(`${base}/v1/events`, {
    method: 'POST',
    headers: { authorization: `Bearer ${created.server_key}`, 'content-type': 'application/json' },
    body: JSON.stringify({
      site: id,
      batch: [{ type: 'track', event: 'Consultation Booked', userId: 'crm-1', messageId: randomUUID(),
        timestamp: new Date().toISOString(), properties: { fee: 180 },
        consent: { analytics: true, personalization: true, marketing: true, policy: 1 } }],
    }),
  });
  const body = await res.json();
  assert.equal(res.status, 200, JSON.stringify(body));
  assert.equal(body.accepted, 1);

  const again = cli(['site', 'create', '--url', base, '--token', ADMIN, '--id', id, '--origin', 'https://cabinet.example']);
  assert.notEqual(again.status, 0);
  assert.match(again.stderr, /409/);
  assert.match(again.stderr, /site_exists/);
  const badRules = join(dir, 'bad.toml');
  writeFileSync(badRules, 'version = "x"\n[actions.web.pricing_view]\npoints = "many"\n');
  const refused = cli(['site', 'create', '--url', base, '--token', ADMIN, '--id', `${id}-b`, '--origin', 'https://x.example', '--rules', badRules]);
  assert.notEqual(refused.status, 0);
  assert.match(refused.stderr, /bad\.toml/);
  assert.equal((await fetch(`${base}/v1/sites/${id}-b`, { headers: admin })).status, 404, 'nothing was created');
});
