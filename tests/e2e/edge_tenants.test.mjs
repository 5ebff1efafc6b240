// Tenants against the running Worker: per-site tokens with roles, share
// links, revocation and expiry, and the audit log — every endpoint family
// tried with every role, on its own site and on another.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, createHmac, randomUUID } from 'node:crypto';
import { createServer } from 'node:http';
import { base, admin, fetch, d1, q, consent, createSite as makeSite, expectError, until } from './lib.mjs';

const ORIGIN = 'https://tenant.example';
const createSite = () => makeSite('t', { origins: [ORIGIN], conversions: [{ event: 'Lead Submitted', default_value_minor: 1000 }] });
const bearer = (t) => ({ authorization: `Bearer ${t}` });
const json = { 'content-type': 'application/json' };

const call = (method, path, token, body) =>
  fetch(`${base}${path}`, {
    method,
    headers: { ...(token ? bearer(token) : {}), ...(body === undefined ? {} : json) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });

async function makeToken(site, by, role, extra = {}) {
  const res = await call('POST', `/v1/sites/${site}/tokens`, by, { role, name: `${role} of ${site}`, ...extra });
  const body = await res.json();
  assert.equal(res.status, 201, JSON.stringify(body));
  return body;
}

const ev = (fields) => ({ messageId: randomUUID(), timestamp: new Date().toISOString(), consent, ...fields });

/** One request per endpoint family, and the status it answers when allowed. */
function families(site) {
  const today = new Date().toISOString().slice(0, 10);
  return {
    config_read: { ok: 200, go: (t) => call('GET', `/v1/sites/${site}`, t) },
    config_write: { ok: 200, go: (t) => call('PATCH', `/v1/sites/${site}`, t, { name: `renamed ${randomUUID().slice(0, 4)}` }) },
    secrets: { ok: 200, go: (t) => call('POST', `/v1/sites/${site}/secrets/rotate`, t, { kind: 'identity' }) },
    tokens_list: { ok: 200, go: (t) => call('GET', `/v1/sites/${site}/tokens`, t) },
    tokens_create: { ok: 201, go: (t) => call('POST', `/v1/sites/${site}/tokens`, t, { role: 'analyst', name: 'made in matrix' }) },
    shares: { ok: 201, go: (t) => call('POST', `/v1/sites/${site}/shares`, t, { name: 'made in matrix' }) },
    audit: { ok: 200, go: (t) => call('GET', `/v1/sites/${site}/audit`, t) },
    install: { ok: 200, go: (t) => call('GET', `/v1/sites/${site}/install`, t) },
    rules_check: { ok: 200, go: (t) => call('POST', `/v1/sites/${site}/rules/check`, t, { text: '{}' }) },
    // A site without webhooks: allowed, then refused for having no URL to test.
    webhook_test: { ok: 400, go: (t) => call('POST', `/v1/sites/${site}/webhooks/test`, t, {}) },
    webhook_deliveries: { ok: 200, go: (t) => call('GET', `/v1/sites/${site}/webhooks/deliveries`, t) },
    spend: {
      ok: 200,
      go: (t) => call('POST', '/v1/spend', t, { site, currency: 'EUR', rows: [{ channel: 'Email', date: today, amount_minor: 100 }] }),
    },
    attribution: { ok: 200, go: (t) => call('GET', `/v1/reports/attribution?site=${site}`, t) },
    kpis: { ok: 200, go: (t) => call('GET', `/v1/reports/kpis?site=${site}`, t) },
    paths: { ok: 200, go: (t) => call('GET', `/v1/reports/paths?site=${site}`, t) },
    series: { ok: 200, go: (t) => call('GET', `/v1/reports/series?site=${site}&period=7d`, t) },
    leads: { ok: 200, go: (t) => call('GET', `/v1/leads?site=${site}`, t) },
    subject_get: { ok: 404, go: (t) => call('GET', `/v1/subjects/nobody-${randomUUID()}?site=${site}`, t) },
    subject_erase: { ok: 404, go: (t) => call('POST', '/v1/subjects/erase', t, { site, id: `nobody-${randomUUID()}` }) },
    ingest: {
      ok: 200,
      go: (t) => call('POST', '/v1/events', t, { site, batch: [ev({ type: 'track', event: 'Call Received', userId: 'crm-1' })] }),
    },
  };
}

const ALLOWED = {
  owner: null, // everything
  analyst: ['attribution', 'kpis', 'paths', 'series', 'leads'],
  privacy: ['subject_get', 'subject_erase'],
  ingest: ['ingest'],
  share: ['attribution', 'kpis', 'paths', 'series'],
};

test('each role reaches exactly its endpoint families on its own site, and none of another site', async () => {
  const [a, b] = [await createSite(), await createSite()];
  const owner = await makeToken(a.id, 'test-admin-token', 'owner');
  assert.match(owner.id, /^mftk_[0-9a-f]{32}$/);
  assert.match(owner.token, /^mft_[0-9a-f]{64}$/);
  assert.equal(owner.role, 'owner');
  assert.equal(owner.expires_at, null);
  assert.ok(Date.parse(owner.created_at) > Date.now() - 60_000);
  // An owner makes the site's other tokens and its share links.
  const creds = { owner: owner.token };
  for (const role of ['analyst', 'privacy', 'ingest']) creds[role] = (await makeToken(a.id, owner.token, role)).token;
  const share = await call('POST', `/v1/sites/${a.id}/shares`, owner.token, { name: 'for the partners' });
  const shareBody = await share.json();
  assert.equal(share.status, 201, JSON.stringify(shareBody));
  assert.match(shareBody.id, /^mfsh_/);
  const m = shareBody.url.match(new RegExp(`^http://[^/]+/dashboard/\\?site=${a.id}#share=(mfs_[0-9a-f]{64})$`));
  assert.ok(m, shareBody.url);
  creds.share = m[1];

  // Only digests are stored.
  const stored = JSON.stringify(d1(`SELECT * FROM site_tokens WHERE site_id = ${q(a.id)}`)) + JSON.stringify(d1(`SELECT * FROM shares`));
  for (const secret of Object.values(creds)) {
    assert.ok(!stored.includes(secret), 'a token secret is stored');
    assert.ok(stored.includes(createHash('sha256').update(secret).digest('hex')), 'its digest is stored');
  }

  const fa = families(a.id);
  const fb = families(b.id);
  for (const [who, token] of Object.entries(creds)) {
    for (const [family, { ok, go }] of Object.entries(fa)) {
      const allowed = ALLOWED[who] === null || ALLOWED[who].includes(family);
      const res = await go(token);
      const text = await res.text();
      assert.equal(res.status, allowed ? ok : 403, `${who} on ${family}: ${res.status} ${text}`);
      if (!allowed) assert.equal(JSON.parse(text).error.code, 'forbidden', `${who} on ${family}`);
    }
    for (const [family, { go }] of Object.entries(fb)) {
      const res = await go(token);
      assert.equal(res.status, 403, `${who} of site A on site B's ${family}: ${res.status} ${await res.text()}`);
    }
    // No site token creates sites: that is the operator's.
    await expectError(await call('POST', '/v1/sites', token, { id: `x-${randomUUID().slice(0, 8)}`, origins: [ORIGIN] }), 403, 'forbidden');
  }
  // The super-admin keeps every right on every site.
  for (const [family, { ok, go }] of Object.entries(fb)) {
    const res = await go('test-admin-token');
    assert.equal(res.status, ok, `admin on ${family}: ${await res.text()}`);
  }
  // Unknown credentials are not credentials.
  await expectError(await call('GET', `/v1/leads?site=${a.id}`, `mft_${'0'.repeat(64)}`), 401, 'invalid_token');
  await expectError(await call('GET', `/v1/leads?site=${a.id}`, `mfs_${'0'.repeat(64)}`), 401, 'invalid_token');
  await expectError(await call('GET', `/v1/leads?site=${a.id}`), 401, 'unauthorized');
  // The ingest token's event is stored for its site.
  assert.ok(d1(`SELECT COUNT(*) AS n FROM events WHERE site_id = ${q(a.id)} AND source = 'server'`)[0].n >= 2);
});

test('a revoked or expired token is refused on its next request; the list shows no secret', async () => {
  const site = await createSite();
  const other = await createSite();
  const owner = await makeToken(site.id, 'test-admin-token', 'owner');
  const analyst = await makeToken(site.id, owner.token, 'analyst');
  const soon = new Date(Date.now() + 2500).toISOString();
  const brief = await makeToken(site.id, owner.token, 'analyst', { expires_at: soon });
  assert.equal(Date.parse(brief.expires_at), Date.parse(soon));

  assert.equal((await call('GET', `/v1/leads?site=${site.id}`, analyst.token)).status, 200);
  assert.equal((await call('GET', `/v1/leads?site=${site.id}`, brief.token)).status, 200);

  // Another site's owner may not revoke it; an unknown id is a 404.
  const otherOwner = await makeToken(other.id, 'test-admin-token', 'owner');
  await expectError(await call('DELETE', `/v1/sites/${site.id}/tokens/${analyst.id}`, otherOwner.token), 403, 'forbidden');
  await expectError(await call('DELETE', `/v1/sites/${other.id}/tokens/${analyst.id}`, otherOwner.token), 404, 'token_not_found');
  const del = await call('DELETE', `/v1/sites/${site.id}/tokens/${analyst.id}`, owner.token);
  assert.equal(del.status, 200, await del.text());
  await expectError(await call('GET', `/v1/leads?site=${site.id}`, analyst.token), 401, 'token_revoked');
  await expectError(await call('DELETE', `/v1/sites/${site.id}/tokens/${analyst.id}`, owner.token), 404, 'token_not_found');

  await until(async () => Date.now() > Date.parse(soon) + 100, 5000);
  await expectError(await call('GET', `/v1/leads?site=${site.id}`, brief.token), 401, 'token_expired');

  const list = await call('GET', `/v1/sites/${site.id}/tokens`, owner.token);
  const { tokens } = await list.json();
  assert.equal(list.status, 200);
  assert.equal(tokens.length, 3);
  const text = JSON.stringify(tokens);
  for (const t of [owner, analyst, brief]) assert.ok(!text.includes(t.token), 'a secret in the list');
  const byId = Object.fromEntries(tokens.map((t) => [t.id, t]));
  assert.ok(byId[analyst.id].revoked_at && byId[analyst.id].last_used_at, JSON.stringify(byId[analyst.id]));
  assert.equal(byId[brief.id].revoked_at, null);
  assert.equal(byId[owner.id].created_by, 'admin');
  assert.equal(byId[analyst.id].created_by, owner.id);
  assert.ok(Object.keys(byId[owner.id]).every((k) => !['token', 'digest'].includes(k)));

  // Bad requests name the field.
  const bad = async (body, field) => {
    const err = await expectError(await call('POST', `/v1/sites/${site.id}/tokens`, owner.token, body), 400, 'invalid_token_request');
    assert.match(err.error.message, new RegExp(`^${field}`));
  };
  await bad({ name: 'x' }, 'role');
  await bad({ role: 'root', name: 'x' }, 'role');
  await bad({ role: 'owner' }, 'name');
  await bad({ role: 'owner', name: 'x', expires_at: '2020-01-01T00:00:00Z' }, 'expires_at');
  await bad({ role: 'owner', name: 'x', expires_at: 'tomorrow' }, 'expires_at');
  await bad({ role: 'owner', name: 'x', scope: 'all' }, 'scope');
});

test('a share link reads aggregates only, until it is revoked', async () => {
  const site = await createSite();
  const res = await call('POST', `/v1/sites/${site.id}/shares`, 'test-admin-token', { expires_at: new Date(Date.now() + 86_400_000).toISOString() });
  const created = await res.json();
  assert.equal(res.status, 201, JSON.stringify(created));
  const secret = new URL(created.url).hash.replace('#share=', '');
  for (const report of ['attribution', 'kpis', 'paths']) {
    assert.equal((await call('GET', `/v1/reports/${report}?site=${site.id}`, secret)).status, 200, report);
  }
  await expectError(await call('GET', `/v1/leads?site=${site.id}`, secret), 403, 'forbidden');
  await expectError(await call('GET', `/v1/subjects/x?site=${site.id}`, secret), 403, 'forbidden');
  await expectError(await call('GET', `/v1/sites/${site.id}`, secret), 403, 'forbidden');
  const list = await (await call('GET', `/v1/sites/${site.id}/shares`, 'test-admin-token')).json();
  assert.deepEqual(list.shares.map((s) => s.id), [created.id]);
  assert.ok(!JSON.stringify(list).includes(secret));
  assert.equal((await call('DELETE', `/v1/sites/${site.id}/shares/${created.id}`, 'test-admin-token')).status, 200);
  await expectError(await call('GET', `/v1/reports/attribution?site=${site.id}`, secret), 401, 'token_revoked');
});

test('the audit log holds every administrative act, with who, when and the request id — and no secret or subject id', async () => {
  const started = new Date(Date.now() - 1000).toISOString();
  const site = await createSite();
  const owner = await makeToken(site.id, 'test-admin-token', 'owner');
  const privacy = await makeToken(site.id, owner.token, 'privacy');
  const analyst = await makeToken(site.id, owner.token, 'analyst');
  assert.equal((await call('DELETE', `/v1/sites/${site.id}/tokens/${analyst.id}`, owner.token)).status, 200);
  assert.equal((await call('PATCH', `/v1/sites/${site.id}`, owner.token, { retention_days: 90, name: 'Audited' })).status, 200);
  assert.equal((await call('POST', `/v1/sites/${site.id}/secrets/rotate`, owner.token, { kind: 'identity' })).status, 200);
  const today = new Date().toISOString().slice(0, 10);
  assert.equal((await call('POST', '/v1/spend', owner.token, { site: site.id, currency: 'EUR', rows: [{ channel: 'Email', date: today, amount_minor: 5 }] })).status, 200);
  const share = await (await call('POST', `/v1/sites/${site.id}/shares`, owner.token, {})).json();
  assert.equal((await call('DELETE', `/v1/sites/${site.id}/shares/${share.id}`, owner.token)).status, 200);
  // A subject, exported then erased by the privacy token.
  const anon = randomUUID();
  const email = `${randomUUID().slice(0, 8)}@audit.example`;
  const batch = [
    ev({ type: 'page', anonymousId: anon, context: { page: { path: '/' } } }),
    ev({ type: 'identify', anonymousId: anon, traits: { email } }),
  ];
  const sent = await fetch(`${base}/v1/batch`, { method: 'POST', headers: { origin: ORIGIN }, body: JSON.stringify({ site: site.id, batch }) });
  assert.equal(sent.status, 200, await sent.text());
  assert.equal((await call('POST', '/v1/subjects/export', privacy.token, { site: site.id, id: anon })).status, 200);
  assert.equal((await call('POST', '/v1/subjects/erase', privacy.token, { site: site.id, id: `email:${email}` })).status, 200);

  const res = await call('GET', `/v1/sites/${site.id}/audit?from=${encodeURIComponent(started)}`, owner.token);
  const { entries } = await res.json();
  assert.equal(res.status, 200);
  const acts = entries.map((e) => e.action).reverse();
  assert.deepEqual(acts, [
    'site.created',
    'token.created',
    'token.created',
    'token.created',
    'token.revoked',
    'config.changed',
    'secret.rotated',
    'spend.uploaded',
    'share.created',
    'share.revoked',
    'subject.exported',
    'subject.erased',
  ]);
  const byAction = (a) => entries.filter((e) => e.action === a);
  assert.deepEqual(byAction('config.changed')[0].detail.fields.sort(), ['name', 'retention_days']);
  assert.equal(byAction('site.created')[0].actor_id, 'admin');
  assert.equal(byAction('token.created').at(-1).actor_id, 'admin');
  assert.equal(byAction('token.created')[0].actor_id, owner.id);
  assert.equal(byAction('token.created')[0].actor_name, owner.name);
  assert.equal(byAction('subject.erased')[0].actor_id, privacy.id);
  for (const e of entries) {
    assert.ok(Date.parse(e.at) >= Date.parse(started), JSON.stringify(e));
    assert.match(e.request_id, /^[0-9a-zA-Z-]{8,64}$/, JSON.stringify(e));
  }
  const text = JSON.stringify(entries);
  for (const secret of [owner.token, privacy.token, analyst.token, anon, email]) assert.ok(!text.includes(secret), 'the log keeps a secret or a subject id');
  const mine = new Set(entries.map((e) => e.request_id));
  assert.equal(mine.size, entries.length, 'each act its own request id');

  // A window before the site existed holds nothing; CSV has a row per act.
  const before = await (await call('GET', `/v1/sites/${site.id}/audit?to=${encodeURIComponent(started)}`, owner.token)).json();
  assert.deepEqual(before.entries, []);
  const csv = await fetch(`${base}/v1/sites/${site.id}/audit`, { headers: { ...bearer(owner.token), accept: 'text/csv' } });
  assert.match(csv.headers.get('content-type'), /^text\/csv/);
  const lines = (await csv.text()).trim().split('\r\n');
  assert.equal(lines[0], 'at,action,actor_id,actor_name,request_id,detail');
  assert.equal(lines.length, entries.length + 1);
  await expectError(await call('GET', `/v1/sites/${site.id}/audit?from=yesterday`, owner.token), 400, 'invalid_query');
  await expectError(await call('GET', `/v1/sites/${site.id}/audit`, privacy.token), 403, 'forbidden');
});

const hmac = (key, text) => createHmac('sha256', key).update(text).digest('hex');

test('rotating the signing secret keeps both valid during the grace period, then only the new one', async () => {
  const site = await createSite();
  const owner = await makeToken(site.id, 'test-admin-token', 'owner');
  const signed = async (key) => {
    const body = JSON.stringify({ site: site.id, batch: [ev({ type: 'track', event: 'Call Received', userId: 'crm-2' })] });
    const t = Math.floor(Date.now() / 1000);
    const res = await fetch(`${base}/v1/events`, { method: 'POST', headers: { 'x-mf-signature': `t=${t},v1=${hmac(key, `${t}.${body}`)}` }, body });
    await res.body?.cancel();
    return res.status;
  };
  const old = site.signing_secret;
  assert.equal(await signed(old), 200);
  await expectError(await call('POST', `/v1/sites/${site.id}/secrets/rotate`, owner.token, { kind: 'signing', grace_seconds: -1 }), 400, 'invalid_rotation');
  await expectError(await call('POST', `/v1/sites/${site.id}/secrets/rotate`, owner.token, { kind: 'server' }), 400, 'invalid_rotation');
  const analyst = await makeToken(site.id, owner.token, 'analyst');
  await expectError(await call('POST', `/v1/sites/${site.id}/secrets/rotate`, analyst.token, { kind: 'signing' }), 403, 'forbidden');
  const rotated = await call('POST', `/v1/sites/${site.id}/secrets/rotate`, owner.token, { kind: 'signing', grace_seconds: 3 });
  const r = await rotated.json();
  assert.equal(rotated.status, 200, JSON.stringify(r));
  assert.match(r.secret, /^mfss_[0-9a-f]{64}$/);
  assert.notEqual(r.secret, old);
  const until = Date.parse(r.previous_valid_until);
  assert.ok(until > Date.now() && until <= Date.now() + 4000, r.previous_valid_until);
  assert.equal(await signed(old), 200, 'the previous secret during the grace period');
  assert.equal(await signed(r.secret), 200);
  assert.equal(await signed(site.webhook_secret), 403, 'the webhook secret never signs events');
  // A second rotation inside the grace would cut off the first one's stragglers.
  await expectError(await call('POST', `/v1/sites/${site.id}/secrets/rotate`, owner.token, { kind: 'signing' }), 409, 'rotation_in_grace');
  await until_(until + 200);
  assert.equal(await signed(old), 403, 'the previous secret after the grace period');
  assert.equal(await signed(r.secret), 200);
  // Default grace: 24 h.
  const again = await (await call('POST', `/v1/sites/${site.id}/secrets/rotate`, owner.token, { kind: 'signing' })).json();
  assert.ok(Math.abs(Date.parse(again.previous_valid_until) - Date.now() - 86_400_000) < 60_000, again.previous_valid_until);
  assert.equal(await signed(r.secret), 200);
  assert.equal(await signed(again.secret), 200);
  // Ending the grace at once (a leaked secret): only the newest works.
  const now = await (await call('POST', `/v1/sites/${site.id}/secrets/rotate`, owner.token, { kind: 'signing', grace_seconds: 0 })).json();
  assert.equal(await signed(again.secret), 403);
  assert.equal(await signed(now.secret), 200);
});

test('what a token makes expires with it and is revoked with it', async () => {
  const site = await createSite();
  const week = new Date(Date.now() + 7 * 86_400_000).toISOString();
  const contractor = await makeToken(site.id, 'test-admin-token', 'owner', { expires_at: week });
  const child = await makeToken(site.id, contractor.token, 'owner');
  assert.equal(Date.parse(child.expires_at), Date.parse(week), 'no longer than its maker');
  const later = new Date(Date.now() + 30 * 86_400_000).toISOString();
  const err = await expectError(await call('POST', `/v1/sites/${site.id}/tokens`, contractor.token, { role: 'owner', name: 'forever', expires_at: later }), 400, 'invalid_token_request');
  assert.match(err.error.message, /^expires_at/);
  const share = await (await call('POST', `/v1/sites/${site.id}/shares`, contractor.token, {})).json();
  const shareSecret = new URL(share.url).hash.replace('#share=', '');
  assert.equal((await call('GET', `/v1/reports/paths?site=${site.id}`, shareSecret)).status, 200);
  assert.equal((await call('DELETE', `/v1/sites/${site.id}/tokens/${contractor.id}`, 'test-admin-token')).status, 200);
  await expectError(await call('GET', `/v1/leads?site=${site.id}`, child.token), 401, 'token_revoked');
  await expectError(await call('GET', `/v1/reports/paths?site=${site.id}`, shareSecret), 401, 'token_revoked');
  // A wrong super-admin token is no credential either.
  await expectError(await call('GET', `/v1/leads?site=${site.id}`, 'not-the-admin-token'), 401, 'invalid_token');
});

async function until_(t) {
  while (Date.now() < t) await new Promise((r) => setTimeout(r, 100));
}

test('rotating the webhook secret signs deliveries with both during the grace period, then with the new one', async () => {
  const received = [];
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      received.push({ headers: req.headers, body });
      res.writeHead(200).end();
    });
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  try {
    const site = await makeSite('t', {
      origins: [ORIGIN],
      webhooks: [`http://127.0.0.1:${server.address().port}/hook`],
      conversions: [{ event: 'Lead Submitted', default_value_minor: 1000 }],
    });
    const convert = async () => {
      const n = received.length;
      const batch = [ev({ type: 'track', event: 'Lead Submitted', anonymousId: randomUUID() })];
      const res = await fetch(`${base}/v1/batch`, { method: 'POST', headers: { origin: ORIGIN }, body: JSON.stringify({ site: site.id, batch }) });
      assert.equal(res.status, 200, await res.text());
      await until(async () => received.length > n, 15_000);
      const last = received.at(-1);
      const m = /^t=(\d+)((?:,v1=[0-9a-f]{64})+)$/.exec(last.headers['x-mf-webhook-signature']);
      assert.ok(m, last.headers['x-mf-webhook-signature']);
      return m[2].split(',v1=').slice(1).map((v1) => [v1, hmac, m[1], last.body]);
    };
    const check = (sigs, keys) => {
      assert.equal(sigs.length, keys.length, 'one signature per valid secret');
      sigs.forEach(([v1, , t, body], i) => assert.equal(v1, hmac(keys[i], `${t}.${body}`)));
    };
    check(await convert(), [site.webhook_secret]);
    const r = await (await call('POST', `/v1/sites/${site.id}/secrets/rotate`, 'test-admin-token', { kind: 'webhook', grace_seconds: 4 })).json();
    assert.match(r.secret, /^mfws_[0-9a-f]{64}$/);
    check(await convert(), [r.secret, site.webhook_secret]);
    await until_(Date.parse(r.previous_valid_until) + 200);
    check(await convert(), [r.secret]);
  } finally {
    server.close();
  }
});
