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
  const clean = { ...process.env };
  delete clean.MICROFUNNEL_TOKEN;
  delete clean.MICROFUNNEL_ADMIN_TOKEN;
  return spawnSync('cargo', ['run', '-q', '-p', 'microfunnel-cli', '--', ...args], {
    cwd: root,
    encoding: 'utf8',
    env: { ...clean, ...env },
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

  const again = cli(['site', 'create', '--url', base, '--id', id, '--origin', 'https://cabinet.example'], { MICROFUNNEL_ADMIN_TOKEN: ADMIN });
  assert.notEqual(again.status, 0);
  assert.match(again.stderr, /409/);
  assert.match(again.stderr, /site_exists/);
  const badRules = join(dir, 'bad.toml');
  writeFileSync(badRules, 'version = "x"\n[actions.web.pricing_view]\npoints = "many"\n');
  const refused = cli(['site', 'create', '--url', base, '--id', `${id}-b`, '--origin', 'https://x.example', '--rules', badRules], { MICROFUNNEL_ADMIN_TOKEN: ADMIN });
  assert.notEqual(refused.status, 0);
  assert.match(refused.stderr, /bad\.toml/);
  assert.equal((await fetch(`${base}/v1/sites/${id}-b`, { headers: admin })).status, 404, 'nothing was created');
});

test('microfunnel token and share: create, list and revoke a site\'s credentials; the token never on the command line', async () => {
  const id = `cli-${randomUUID().slice(0, 8)}`;
  const made = cli(['site', 'create', '--url', base, '--id', id, '--origin', 'https://cabinet.example'], { MICROFUNNEL_ADMIN_TOKEN: ADMIN });
  assert.equal(made.status, 0, made.stderr);
  const missing = cli(['token', 'list', '--url', base, '--site', id]);
  assert.notEqual(missing.status, 0);
  assert.match(missing.stderr, /MICROFUNNEL_TOKEN/);
  assert.notEqual(cli(['token', 'list', '--url', base, '--site', id, '--token', ADMIN]).status, 0, 'no --token flag');
  const clear = cli(['token', 'list', '--url', 'http://collector.example.com', '--site', id], { MICROFUNNEL_TOKEN: ADMIN });
  assert.notEqual(clear.status, 0);
  assert.match(clear.stderr, /plain http:\/\/ only to a loopback host/);

  const owner = cli(['token', 'create', '--url', base, '--site', id, '--role', 'owner', '--name', 'Partner'], { MICROFUNNEL_ADMIN_TOKEN: ADMIN });
  assert.equal(owner.status, 0, owner.stderr);
  const ownerToken = JSON.parse(owner.stdout);
  assert.match(ownerToken.token, /^mft_/);
  assert.match(owner.stderr, /not shown again/);
  assert.notEqual(cli(['token', 'create', '--url', base, '--site', id, '--role', 'root', '--name', 'x'], { MICROFUNNEL_ADMIN_TOKEN: ADMIN }).status, 0);

  // The owner's token, from a file: makes an analyst token, lists, revokes.
  const dir = mkdtempSync(join(tmpdir(), 'mf-cli-'));
  const file = join(dir, 'token');
  writeFileSync(file, `${ownerToken.token}\n`);
  const analyst = cli(['token', 'create', '--url', base, '--token-file', file, '--site', id, '--role', 'analyst', '--name', 'Agency', '--expires', new Date(Date.now() + 86_400_000).toISOString()]);
  assert.equal(analyst.status, 0, analyst.stderr);
  const a = JSON.parse(analyst.stdout);
  assert.equal(a.role, 'analyst');
  const list = cli(['token', 'list', '--url', base, '--site', id], { MICROFUNNEL_TOKEN: ownerToken.token });
  assert.equal(list.status, 0, list.stderr);
  assert.deepEqual(JSON.parse(list.stdout).tokens.map((t) => t.name).sort(), ['Agency', 'Partner']);
  assert.ok(!list.stdout.includes(a.token));
  const revoke = cli(['token', 'revoke', '--url', base, '--site', id, a.id], { MICROFUNNEL_TOKEN: ownerToken.token });
  assert.equal(revoke.status, 0, revoke.stderr);
  const res = await fetch(`${base}/v1/leads?site=${id}`, { headers: { authorization: `Bearer ${a.token}` } });
  assert.equal(res.status, 401);
  await res.body?.cancel();
  const again = cli(['token', 'revoke', '--url', base, '--site', id, a.id], { MICROFUNNEL_TOKEN: ownerToken.token });
  assert.notEqual(again.status, 0);
  assert.match(again.stderr, /404/);

  const share = cli(['share', 'create', '--url', base, '--site', id, '--name', 'Board'], { MICROFUNNEL_TOKEN: ownerToken.token });
  assert.equal(share.status, 0, share.stderr);
  const url = JSON.parse(share.stdout).url;
  const secret = new URL(url).hash.replace('#share=', '');
  const agg = await fetch(`${base}/v1/reports/paths?site=${id}`, { headers: { authorization: `Bearer ${secret}` } });
  assert.equal(agg.status, 200);
  await agg.body?.cancel();
});
