// Segment's HTTP Tracking API, spoken to by the real libraries, unmodified:
// @segment/analytics-node (npm) and segment-analytics-python (target/venv,
// made by bootstrap), pointed at the collector with a site's server key as
// their write key — and the single-call endpoints, curl-style.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { gzipSync } from 'node:zlib';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { randomUUID } from 'node:crypto';
import { Analytics } from '@segment/analytics-node';
import { base, admin, fetch, d1, q, consent, createSite as makeSite, expectError } from './lib.mjs';

const createSite = (extra = {}) =>
  makeSite('seg', {
    origins: ['https://firm.example'],
    conversions: [{ event: 'Client Signed', value_property: 'revenue', currency: 'EUR' }],
    ...extra,
  });

const rows = (site) =>
  d1(`SELECT message_id, type, name, visitor_id, user_id, source, payload FROM events WHERE site_id = ${q(site)} ORDER BY ts, message_id`);
const basic = (key) => ({ authorization: `Basic ${Buffer.from(`${key}:`).toString('base64')}` });

// A proxy in front of the Worker that forwards every request but answers
// the first `fail` of them with a 503 (as if the answer were lost), so the
// library retries what the Worker has already stored.
async function flakyProxy(fail) {
  const seen = [];
  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', async () => {
      const headers = { ...req.headers };
      delete headers.host;
      delete headers['content-length'];
      const upstream = await globalThis.fetch(`${base}${req.url}`, { method: req.method, headers, body: Buffer.concat(chunks) });
      const text = await upstream.text();
      seen.push({ url: req.url, status: upstream.status, encoding: req.headers['content-encoding'] ?? null, body: text });
      if (seen.length <= fail) {
        res.writeHead(503, { 'content-type': 'application/json' }).end('{"error":{"code":"lost"}}');
      } else {
        res.writeHead(upstream.status, { 'content-type': 'application/json' }).end(text);
      }
    });
  });
  await new Promise((ok) => server.listen(0, '127.0.0.1', ok));
  return { url: `http://127.0.0.1:${server.address().port}`, seen, close: () => new Promise((ok) => server.close(ok)) };
}

test('analytics-node: track, identify, page, screen, group and alias land once under the site and visitor, through a retry', async () => {
  const site = await createSite();
  const proxy = await flakyProxy(1);
  try {
    const analytics = new Analytics({ writeKey: site.server_key, host: proxy.url, flushAt: 20, flushInterval: 60_000, maxRetries: 3 });
    const errors = [];
    analytics.on('error', (e) => errors.push(e));
    analytics.identify({ userId: 'crm-101', traits: { email: 'Jeanne@Cabinet.example', role: 'DRH' } });
    analytics.group({ userId: 'crm-101', groupId: 'acme-sarl', traits: { industry: 'legal', company_size: 40 } });
    analytics.page({ userId: 'crm-101', name: 'Honoraires', category: 'Docs', properties: { url: 'https://firm.example/honoraires' } });
    analytics.screen({ userId: 'crm-101', name: 'Dossier' });
    analytics.track({ userId: 'crm-101', event: 'Client Signed', properties: { revenue: 1800, currency: 'EUR' } });
    analytics.alias({ userId: 'crm-101', previousId: 'legacy-7' });
    await analytics.closeAndFlush({ timeout: 20_000 });
    assert.deepEqual(errors, []);
    // One batch, answered 503 once, sent again: the Worker saw it twice.
    assert.equal(proxy.seen.length, 2, JSON.stringify(proxy.seen));
    assert.deepEqual(proxy.seen.map((s) => s.url), ['/v1/batch', '/v1/batch']);
    const [first, second] = proxy.seen.map((s) => JSON.parse(s.body));
    assert.equal(first.success, true);
    assert.equal(first.accepted, 6, JSON.stringify(first));
    assert.deepEqual([second.success, second.accepted, second.duplicates], [true, 0, 6]);
  } finally {
    await proxy.close();
  }
  const stored = rows(site.id);
  assert.deepEqual(stored.map((r) => r.type).sort(), ['alias', 'group', 'identify', 'page', 'screen', 'track']);
  for (const r of stored) {
    assert.match(r.message_id, /^node-next-\d+-[0-9a-f-]{36}$/, 'analytics-node ids kept as sent');
    assert.equal(r.source, 'server');
    const p = JSON.parse(r.payload);
    assert.equal(p.context?.library, undefined, 'unknown context keys dropped');
    assert.equal(p._metadata, undefined);
    assert.deepEqual(p.consent, { analytics: true, personalization: false, marketing: false, policy: 1, basis: 'site' });
  }
  // One visitor: the userId's.
  assert.deepEqual([...new Set(stored.map((r) => r.visitor_id))], ['crm-101']);
  const group = JSON.parse(stored.find((r) => r.type === 'group').payload);
  assert.equal(group.groupId, 'acme-sarl');
  assert.deepEqual(group.traits, { industry: 'legal', company_size: 40 });
  // A server's page call names its page in Segment's page properties: it becomes the page context.
  const pageView = JSON.parse(stored.find((r) => r.type === 'page').payload);
  assert.equal(pageView.context.page.url, 'https://firm.example/honoraires');
  assert.equal(pageView.properties.url, undefined);
  const identify = JSON.parse(stored.find((r) => r.type === 'identify').payload);
  assert.equal(identify.traits.email, undefined, 'the address is kept only as its hash');
  assert.match(identify.traits.email_sha256, /^[0-9a-f]{64}$/);
  // The signed client is a conversion, valued in its currency.
  const [conv] = d1(`SELECT name, value_minor, currency FROM conversions WHERE site_id = ${q(site.id)}`);
  assert.deepEqual([conv.name, conv.value_minor, conv.currency], ['Client Signed', 180000, 'EUR']);
  // The group's traits are the visitor's: exported with the subject.
  const exported = await (await fetch(`${base}/v1/subjects/crm-101?site=${site.id}`, { headers: admin })).json();
  assert.ok(JSON.stringify(exported).includes('acme-sarl'), JSON.stringify(exported).slice(0, 400));
});

test('analytics-node: a wrong write key is a 401, sent once (not retried), and stores nothing', async () => {
  const site = await createSite();
  const proxy = await flakyProxy(0);
  try {
    const analytics = new Analytics({ writeKey: 'mfsk_not-a-key', host: proxy.url, flushAt: 1, maxRetries: 3 });
    const errors = [];
    analytics.on('error', (e) => errors.push(e));
    analytics.track({ userId: 'crm-1', event: 'Client Signed', properties: { revenue: 10 } });
    await analytics.closeAndFlush({ timeout: 10_000 });
    assert.equal(proxy.seen.length, 1, JSON.stringify(proxy.seen));
    assert.equal(proxy.seen[0].status, 401);
    assert.equal(JSON.parse(proxy.seen[0].body).error.code, 'invalid_write_key');
    assert.equal(errors.length, 1);
  } finally {
    await proxy.close();
  }
  assert.equal(rows(site.id).length, 0);
});

const PY = `
import json, sys
import segment.analytics as analytics
cfg = json.loads(sys.argv[1])
errors = []
analytics.write_key = cfg['key']
analytics.host = cfg['host']
analytics.gzip = True
analytics.max_retries = 3
analytics.on_error = lambda e, batch: errors.append(str(e))
if cfg['calls']:
    analytics.identify('py-7', {'email': 'paul@example.org', 'industry': 'health'})
    analytics.group('py-7', 'clinique-du-parc', {'company_size': 12})
    analytics.page('py-7', 'Docs', 'Tarifs', {'url': 'https://firm.example/tarifs'})
    analytics.screen('py-7', 'App', 'Agenda')
    analytics.track('py-7', 'Client Signed', {'revenue': 950.5, 'currency': 'EUR'})
    analytics.alias('py-legacy', 'py-7')
else:
    analytics.track('py-7', 'Client Signed', {'revenue': 1})
analytics.flush()
analytics.shutdown()
print(json.dumps({'errors': errors}))
`;

// Run asynchronously: the proxy it sends through lives in this process.
async function python(cfg) {
  const py = process.env.MF_PYTHON;
  assert.ok(py, 'MF_PYTHON: the venv made by cargo xtask bootstrap');
  const { stdout } = await promisify(execFile)(py, ['-c', PY, JSON.stringify(cfg)], { encoding: 'utf8', timeout: 60_000 });
  return JSON.parse(stdout.trim().split('\n').pop());
}

test('segment-analytics-python: gzip batches of every call land once, through a retry', async () => {
  const site = await createSite();
  const proxy = await flakyProxy(1);
  let out;
  try {
    out = await python({ key: site.server_key, host: proxy.url, calls: true });
  } finally {
    await proxy.close();
  }
  assert.deepEqual(out.errors, []);
  assert.equal(proxy.seen.length, 2, JSON.stringify(proxy.seen));
  assert.deepEqual(proxy.seen.map((s) => s.encoding), ['gzip', 'gzip']);
  const [first, second] = proxy.seen.map((s) => JSON.parse(s.body));
  assert.deepEqual([first.success, first.accepted], [true, 6], JSON.stringify(first));
  assert.deepEqual([second.accepted, second.duplicates], [0, 6]);
  const stored = rows(site.id);
  assert.deepEqual(stored.map((r) => r.type).sort(), ['alias', 'group', 'identify', 'page', 'screen', 'track']);
  assert.deepEqual([...new Set(stored.map((r) => r.visitor_id))], ['py-7']);
  for (const r of stored) assert.match(r.message_id, /^[0-9a-f-]{36}$/);
  const [conv] = d1(`SELECT value_minor FROM conversions WHERE site_id = ${q(site.id)}`);
  assert.equal(conv.value_minor, 95050);
});

test('segment-analytics-python: a wrong write key is a 401, sent once, and stores nothing', async () => {
  const site = await createSite();
  const proxy = await flakyProxy(0);
  let out;
  try {
    out = await python({ key: 'mfsk_wrong', host: proxy.url, calls: false });
  } finally {
    await proxy.close();
  }
  assert.equal(proxy.seen.length, 1, JSON.stringify(proxy.seen));
  assert.equal(proxy.seen[0].status, 401);
  assert.equal(out.errors.length, 1);
  assert.equal(rows(site.id).length, 0);
});

const post = (path, body, headers = {}) =>
  fetch(`${base}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: typeof body === 'string' || Buffer.isBuffer(body) ? body : JSON.stringify(body) });

test('single calls: /v1/track, /v1/identify, /v1/page, /v1/screen, /v1/group, /v1/alias by Basic auth, writeKey or an ingest token; gzip bodies', async () => {
  const site = await createSite();
  const now = new Date().toISOString();
  const calls = [
    ['/v1/identify', { userId: 'u-9', traits: { role: 'DAF' } }, basic(site.server_key)],
    ['/v1/track', { userId: 'u-9', event: 'Client Signed', properties: { revenue: 40 }, timestamp: now }, basic(site.server_key)],
    ['/v1/page', { userId: 'u-9', name: 'Contact', writeKey: site.server_key }, {}],
    ['/v1/screen', { anonymousId: 'app-3', name: 'Home', messageId: 'ios-1' }, basic(site.server_key)],
    ['/v1/group', { userId: 'u-9', groupId: 'g-1', traits: { industry: 'accounting' } }, basic(site.server_key)],
    ['/v1/alias', { userId: 'u-9', previousId: 'app-3' }, basic(site.server_key)],
  ];
  for (const [path, body, headers] of calls) {
    const res = await post(path, body, headers);
    const answer = await res.json();
    assert.equal(res.status, 200, `${path}: ${JSON.stringify(answer)}`);
    assert.deepEqual([answer.success, answer.accepted], [true, 1], path);
  }
  // The same message again (the messageId is the key): a duplicate.
  const again = await (await post('/v1/screen', { anonymousId: 'app-3', name: 'Home', messageId: 'ios-1' }, basic(site.server_key))).json();
  assert.deepEqual([again.accepted, again.duplicates], [0, 1]);
  // gzip, with the key as an ingest token.
  const token = await (await post(`/v1/sites/${site.id}/tokens`, { role: 'ingest', name: 'crm' }, admin)).json();
  const zipped = gzipSync(JSON.stringify({ userId: 'u-9', event: 'Meeting Booked', messageId: 'crm-mtg-1' }));
  const z = await post('/v1/track', zipped, { ...basic(token.token), 'content-encoding': 'gzip' });
  assert.equal(z.status, 200, await z.clone().text());
  const stored = rows(site.id);
  assert.equal(stored.length, 7);
  assert.ok(stored.find((r) => r.message_id === 'crm-mtg-1' && r.name === 'Meeting Booked'));
  assert.ok(stored.every((r) => r.source === 'server'));
});

test('single calls: what is refused, with our error body, and nothing stored', async () => {
  const site = await createSite();
  const other = await createSite();
  const track = { userId: 'u', event: 'X' };
  await expectError(await post('/v1/track', track), 401, 'unauthorized');
  await expectError(await post('/v1/track', track, basic('mfsk_nope')), 401, 'invalid_write_key');
  await expectError(await post('/v1/track', { ...track, writeKey: other.server_key }, basic(site.server_key)), 401, 'unauthorized');
  await expectError(await post('/v1/track', { ...track, type: 'page' }, basic(site.server_key)), 400, 'invalid_event');
  const bad = await expectError(await post('/v1/track', { userId: 'u' }, basic(site.server_key)), 400, 'invalid_events');
  assert.equal(bad.rejected[0].error.field, 'event');
  const long = await expectError(await post('/v1/track', { ...track, messageId: 'm'.repeat(101) }, basic(site.server_key)), 400, 'invalid_events');
  assert.equal(long.rejected[0].error.message, 'messageId: must be at most 100 characters');
  await expectError(await post('/v1/track', 'not gzip', { ...basic(site.server_key), 'content-encoding': 'gzip' }), 400, 'invalid_body');
  await expectError(await post('/v1/track', JSON.stringify(track), { ...basic(site.server_key), 'content-encoding': 'br' }), 415, 'unsupported_encoding');
  // A small body that inflates past the limit (33 KB for one message).
  const bomb = gzipSync(JSON.stringify({ ...track, properties: { pad: ' '.repeat(40_000) } }));
  assert.ok(bomb.length < 1000);
  await expectError(await post('/v1/track', bomb, { ...basic(site.server_key), 'content-encoding': 'gzip' }), 413, 'payload_too_large');
  // A browser may not claim the site's basis for itself.
  const browser = await fetch(`${base}/v1/batch`, {
    method: 'POST',
    headers: { 'content-type': 'text/plain', origin: 'https://firm.example' },
    body: JSON.stringify({ site: site.id, batch: [{ type: 'track', event: 'X', anonymousId: 'a', messageId: randomUUID(), timestamp: new Date().toISOString(), consent: { ...consent, basis: 'site' } }] }),
  });
  const refused = await expectError(browser, 400, 'invalid_events');
  assert.equal(refused.rejected[0].error.field, 'consent.basis');
  assert.equal(rows(site.id).length, 0);
});

test("lawful basis: an unstamped server event is stored and attributed, scored only when the site declares personalization; a stamp is the visitor's own", async () => {
  const plain = await createSite();
  const declared = await createSite({ consent: { server_purposes: ['personalization'] } });
  const view = (user) => ({ userId: user, event: 'web.pricing_view', properties: {} });
  for (const site of [plain, declared]) {
    const r = await post('/v1/track', view('lb-1'), basic(site.server_key));
    assert.equal(r.status, 200, await r.clone().text());
  }
  const stamped = { ...view('lb-2'), consent };
  assert.equal((await post('/v1/track', stamped, basic(plain.server_key))).status, 200);
  const score = (site, v) => d1(`SELECT score_milli FROM visitors WHERE site_id = ${q(site)} AND visitor_id = ${q(v)}`)[0]?.score_milli;
  const stampOf = (site, v) => JSON.parse(d1(`SELECT payload FROM events WHERE site_id = ${q(site)} AND visitor_id = ${q(v)}`)[0].payload).consent;
  assert.equal(score(plain.id, 'lb-1'), 0, 'not scored without a declared basis');
  assert.ok(score(declared.id, 'lb-1') > 0, 'scored under the declared basis');
  assert.deepEqual(stampOf(declared.id, 'lb-1'), { analytics: true, personalization: true, marketing: false, policy: 1, basis: 'site' });
  assert.ok(score(plain.id, 'lb-2') > 0, 'a visitor-given stamp is honoured as sent');
  assert.deepEqual(stampOf(plain.id, 'lb-2'), consent);
});

test('over the server budget: 429 with Retry-After (what the libraries wait on), and the refused message is not stored', async () => {
  const site = await createSite({ limits: { server_per_minute: 2 } });
  const send = (n) => post('/v1/track', { userId: 'rl-1', event: 'Meeting Booked', messageId: `rl-${n}` }, basic(site.server_key));
  for (const n of [1, 2]) assert.equal((await send(n)).status, 200);
  const over = await send(3);
  const body = await expectError(over, 429, 'rate_limited');
  assert.ok(Number(over.headers.get('retry-after')) > 0, JSON.stringify(body));
  assert.deepEqual(rows(site.id).map((r) => r.message_id).sort(), ['rl-1', 'rl-2']);
});
