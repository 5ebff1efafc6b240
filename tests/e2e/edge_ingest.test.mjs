// The collector's ingest path against the real runtime (workerd + local D1
// via `wrangler dev --env test`): POST /v1/batch, CORS, the admin site API,
// the site config endpoint. Every bad input gets the right 4xx, an error body,
// and nothing stored — checked by reading D1 itself.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { base, ADMIN, admin, fetch, d1, q, createSite as makeSite, expectError, freshWindow } from './lib.mjs';

const ORIGIN = 'https://shop.example';
const createSite = (extra = {}) => makeSite('t', { origins: [ORIGIN], ...extra });

const count = (site) => d1(`SELECT COUNT(*) AS n FROM events WHERE site_id = ${q(site)}`)[0].n;

const consent = (over = {}) => ({ analytics: true, personalization: true, marketing: true, policy: 1, ...over });
const page = (anon, over = {}) => ({
  type: 'page',
  messageId: randomUUID(),
  anonymousId: anon,
  timestamp: new Date().toISOString(),
  context: { page: { url: 'https://shop.example/pricing', path: '/pricing' } },
  consent: consent(),
  ...over,
});

function send(site, batch, { origin = ORIGIN, type = 'text/plain', ua, raw } = {}) {
  const headers = { 'content-type': type };
  if (origin) headers.origin = origin;
  if (ua) headers['user-agent'] = ua;
  return fetch(`${base}/v1/batch`, { method: 'POST', headers, body: raw ?? JSON.stringify({ site, batch }) });
}


test('a valid batch is stored once, with CORS for the site origin and no IP', async () => {
  const site = await createSite();
  const anon = randomUUID();
  const batch = [page(anon), page(anon, { context: { page: { url: 'https://shop.example/', path: '/' } } })];
  const res = await send(site.id, batch);
  const body = await res.json();
  assert.equal(res.status, 200, JSON.stringify(body));
  assert.equal(body.accepted, 2);
  assert.equal(body.duplicates, 0);
  assert.deepEqual(body.rejected, []);
  assert.equal(res.headers.get('access-control-allow-origin'), ORIGIN);
  assert.deepEqual(Object.keys(body).sort(), ['accepted', 'bots', 'consent', 'duplicates', 'rejected'], 'counts only: the public endpoint names no visitor');
  const [v] = d1(`SELECT visitor_id, score_milli FROM visitors WHERE site_id = ${q(site.id)}`);
  assert.equal(v.visitor_id, anon);
  assert.ok(v.score_milli >= 15000, 'the /pricing view scores under the default rules');
  const rows = d1(`SELECT * FROM events WHERE site_id = ${q(site.id)} ORDER BY ts`);
  assert.equal(rows.length, 2);
  assert.equal(rows[0].visitor_id, anon);
  assert.equal(rows[0].source, 'browser');
  assert.ok(!JSON.stringify(rows).includes('127.0.0.1'), 'no raw IP in events');
  assert.deepEqual(d1('SELECT * FROM rate_limits'), [], 'rate limits are counted in memory, never in D1');
});

test('application/json is accepted too, and the site may come from ?site=', async () => {
  const site = await createSite();
  const res = await fetch(`${base}/v1/batch?site=${site.id}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json; charset=utf-8', origin: ORIGIN },
    body: JSON.stringify({ batch: [page(randomUUID())] }),
  });
  assert.equal(res.status, 200, await res.text());
  assert.equal(count(site.id), 1);
});

test('replayed messageIds are duplicates: exactly-once under retries, concurrent ones included', async () => {
  const site = await createSite();
  const anon = randomUUID();
  const batch = Array.from({ length: 10 }, () => page(anon));
  const first = await (await send(site.id, batch)).json();
  assert.equal(first.accepted, 10);
  const again = await (await send(site.id, batch)).json();
  assert.equal(again.accepted, 0);
  assert.equal(again.duplicates, 10);
  // Five clients retrying the same new batch at once.
  const batch2 = Array.from({ length: 10 }, () => page(anon));
  const results = await Promise.all(Array.from({ length: 5 }, () => send(site.id, batch2).then((r) => r.json())));
  assert.equal(results.reduce((n, r) => n + r.accepted, 0), 10, JSON.stringify(results));
  assert.equal(results.reduce((n, r) => n + r.duplicates, 0), 40);
  // A duplicate inside one batch counts once too.
  const twin = page(anon);
  const dup = await (await send(site.id, [twin, twin])).json();
  assert.equal(dup.accepted, 1);
  assert.equal(dup.duplicates, 1);
  assert.equal(count(site.id), 21);
  const ledger = d1(`SELECT events FROM visitors WHERE site_id = ${q(site.id)}`);
  assert.equal(ledger[0].events, 21, 'the visitor object ledger holds each event once');
});

test('malformed JSON → 400 invalid_json, nothing stored', async () => {
  const site = await createSite();
  await expectError(await send(site.id, null, { raw: '{"site": "x", "batch": [' }), 400, 'invalid_json');
  await expectError(await send(site.id, null, { raw: '[1,2]' }), 400, 'invalid_batch');
  await expectError(await send(site.id, null, { raw: JSON.stringify({ site: site.id }) }), 400, 'invalid_batch');
  await expectError(await send(site.id, null, { raw: JSON.stringify({ site: site.id, batch: {} }) }), 400, 'invalid_batch');
  await expectError(await send(site.id, null, { raw: JSON.stringify({ site: site.id, batch: [] }) }), 400, 'invalid_batch');
  await expectError(await send(site.id, null, { raw: JSON.stringify({ site: 5, batch: [page('a')] }) }), 400, 'invalid_batch');
  assert.equal(count(site.id), 0);
});

test('wrong types are rejected per event with index, field and rule; nothing of them stored', async () => {
  const site = await createSite();
  const res = await send(site.id, [{ ...page('a'), type: 5 }, { ...page('b'), messageId: 'nope' }, { ...page('c'), timestamp: 'yesterday' }]);
  const body = await expectError(res, 400, 'invalid_events');
  assert.deepEqual(body.rejected.map((r) => [r.index, r.error.field]), [[0, 'type'], [1, 'messageId'], [2, 'timestamp']]);
  assert.equal(count(site.id), 0);
  // A mixed batch stores the good event and reports the bad one.
  const mixed = await send(site.id, [page('d'), { ...page('e'), properties: 'x' }]);
  const m = await mixed.json();
  assert.equal(mixed.status, 200);
  assert.equal(m.accepted, 1);
  assert.equal(m.rejected.length, 1);
  assert.equal(m.rejected[0].index, 1);
  assert.equal(m.rejected[0].error.field, 'properties');
  assert.equal(count(site.id), 1);
});

test('oversize bodies → 413; more than 100 events → 413; nothing stored', async () => {
  const site = await createSite();
  const big = JSON.stringify({ site: site.id, batch: [page('a', { properties: { pad: 'x'.repeat(70 * 1024) } })] });
  await expectError(await send(site.id, null, { raw: big }), 413, 'payload_too_large');
  const many = Array.from({ length: 101 }, () => page('a'));
  await expectError(await send(site.id, many), 413, 'too_many_events');
  assert.equal(count(site.id), 0);
});

test('unknown site → 404; a wrong origin → 403 without CORS; wrong media type → 415', async () => {
  await expectError(await send('no-such-site', [page('a')]), 404, 'unknown_site');
  await expectError(await send('Bad Site!', [page('a')]), 404, 'unknown_site');
  const site = await createSite();
  const res = await send(site.id, [page('a')], { origin: 'https://evil.example' });
  assert.equal(res.headers.get('access-control-allow-origin'), null);
  await expectError(res, 403, 'origin_not_allowed');
  await expectError(await send(site.id, [page('a')], { type: 'application/x-www-form-urlencoded' }), 415, 'unsupported_media_type');
  assert.equal(count(site.id), 0);
});

test('consent: an event beyond its stamp is dropped (400 when nothing is left) or stripped, and counted', async () => {
  const site = await createSite();
  const noAnalytics = page('a', { consent: consent({ analytics: false }) });
  const noStamp = page('b');
  delete noStamp.consent;
  const denied = await expectError(await send(site.id, [noAnalytics, noStamp]), 400, 'consent_denied');
  assert.deepEqual(denied.rejected.map((r) => r.error.code), ['consent_denied', 'consent_denied']);
  assert.equal(count(site.id), 0);
  // Click ids without marketing consent: stored without them.
  const clicked = page('c', {
    consent: consent({ marketing: false }),
    context: { page: { url: 'https://shop.example/?gclid=abc123&x=1', path: '/' }, click_ids: { gclid: 'abc123' } },
  });
  const res = await send(site.id, [clicked]);
  const body = await res.json();
  assert.equal(res.status, 200, JSON.stringify(body));
  assert.equal(body.accepted, 1);
  assert.deepEqual(body.consent, { stripped: 1, dropped: 0 });
  const [row] = d1(`SELECT payload FROM events WHERE site_id = ${q(site.id)}`);
  assert.ok(!row.payload.includes('abc123'), row.payload);
});

test('a site that opted into cookieless counting keeps id-less page views without analytics consent', async () => {
  const site = await createSite({ consent: { cookieless_pageviews: true } });
  const anon = randomUUID();
  const view = page(anon, { consent: consent({ analytics: false, personalization: false, marketing: false }), context: { page: { path: '/', url: 'https://shop.example/' }, userAgent: 'Mozilla/5.0', locale: 'fr-FR' } });
  const res = await send(site.id, [view]);
  const body = await res.json();
  assert.equal(res.status, 200, JSON.stringify(body));
  assert.equal(body.accepted, 1);
  assert.equal(body.consent.stripped, 1);
  assert.equal(body.visitors, undefined);
  assert.deepEqual(d1(`SELECT visitor_id FROM visitors WHERE site_id = ${q(site.id)}`), [], 'no visitor for a count');
  const [row] = d1(`SELECT visitor_id, anonymous_id, payload FROM events WHERE site_id = ${q(site.id)}`);
  assert.equal(row.visitor_id, null);
  assert.equal(row.anonymous_id, null);
  assert.ok(!row.payload.includes(anon) && !row.payload.includes('fr-FR'), row.payload);
  // Without the site's opt-in the same view is dropped.
  const strict = await createSite();
  await expectError(await send(strict.id, [{ ...view, messageId: randomUUID() }]), 400, 'consent_denied');
});

test('the browser may not declare a channel; bots are filtered and nothing is stored', async () => {
  const site = await createSite();
  const declared = page('a', { context: { page: { path: '/' }, channel: 'Organic Search' } });
  const body = await expectError(await send(site.id, [declared]), 400, 'invalid_events');
  assert.equal(body.rejected[0].error.field, 'context.channel');
  const bot = await send(site.id, [page('b')], { ua: 'Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)' });
  const b = await bot.json();
  assert.equal(bot.status, 200);
  assert.equal(b.bots, 1);
  assert.equal(b.accepted, 0);
  assert.equal(count(site.id), 0);
});

test('the test environment allows loopback origins on any port (LOOPBACK_ORIGINS), nothing else', async () => {
  const site = await createSite();
  const ok = await send(site.id, [page('a')], { origin: 'http://127.0.0.1:45678' });
  assert.equal(ok.status, 200, await ok.text());
  assert.equal(ok.headers.get('access-control-allow-origin'), 'http://127.0.0.1:45678');
  for (const origin of ['http://127.0.0.1.evil.example:80', 'https://127.0.0.1:443', 'http://localhost:80x']) {
    await expectError(await send(site.id, [page('b')], { origin }), 403, 'origin_not_allowed');
  }
  assert.equal(count(site.id), 1);
});

test('CORS preflight: 204 for a site origin, 403 for another', async () => {
  const site = await createSite();
  const ok = await fetch(`${base}/v1/batch?site=${site.id}`, { method: 'OPTIONS', headers: { origin: ORIGIN, 'access-control-request-method': 'POST' } });
  assert.equal(ok.status, 204);
  assert.equal(ok.headers.get('access-control-allow-origin'), ORIGIN);
  assert.match(ok.headers.get('access-control-allow-methods'), /POST/);
  const anySite = await fetch(`${base}/v1/batch`, { method: 'OPTIONS', headers: { origin: ORIGIN } });
  assert.equal(anySite.status, 204);
  const bad = await fetch(`${base}/v1/batch?site=${site.id}`, { method: 'OPTIONS', headers: { origin: 'https://evil.example' } });
  await expectError(bad, 403, 'origin_not_allowed');
});

test('rate limits: 429 with Retry-After per address; nothing of the IP is stored', async () => {
  const site = await createSite({ limits: { ip_per_minute: 2, site_per_minute: 1000 } });
  await freshWindow();
  const statuses = [];
  let limited;
  for (let i = 0; i < 6; i++) {
    const res = await send(site.id, [page('a')]);
    statuses.push(res.status);
    if (res.status === 429) limited = res;
    else await res.body?.cancel();
  }
  assert.ok(limited, `expected a 429 in ${statuses}`);
  assert.ok(Number(limited.headers.get('retry-after')) >= 1);
  const limitedBody = await expectError(limited, 429, 'rate_limited');
  assert.match(limitedBody.error.message, /address/);
  assert.equal(limited.headers.get('access-control-allow-origin'), ORIGIN, 'a 429 carries CORS too');
  assert.deepEqual(d1('SELECT * FROM rate_limits'), []);
  const site2 = await createSite({ limits: { ip_per_minute: 1000, site_per_minute: 3 } });
  const many = await send(site2.id, Array.from({ length: 4 }, () => page('b')));
  await expectError(many, 429, 'rate_limited');
});

test('sites: admin token required; validated; ids unique', async () => {
  const post = (body, token = ADMIN) =>
    fetch(`${base}/v1/sites`, {
      method: 'POST',
      headers: token ? { authorization: `Bearer ${token}` } : {},
      body: typeof body === 'string' ? body : JSON.stringify(body),
    });
  const id = `t-${randomUUID().slice(0, 8)}`;
  await expectError(await post({ id, origins: [ORIGIN] }, null), 401, 'unauthorized');
  await expectError(await post({ id, origins: [ORIGIN] }, 'wrong'), 401, 'invalid_token');
  await expectError(await post('{'), 400, 'invalid_json');
  await expectError(await post({ id, origins: ['not a url'] }), 400, 'invalid_site');
  await expectError(await post({ id, origins: [ORIGIN], colour: 'red' }), 400, 'invalid_site');
  await expectError(await post({ id, origins: [ORIGIN], rules: { version: 5 } }), 400, 'invalid_config');
  for (const currency of ['eur', 'EURO', '€', '']) {
    const r = await post({ id, origins: [ORIGIN], conversions: [{ event: 'Order Completed', currency }] });
    assert.equal(r.status, 400);
    assert.match((await r.json()).error.message, /conversions\[0\]\.currency: an ISO 4217 code/);
  }
  assert.equal(d1(`SELECT COUNT(*) AS n FROM sites WHERE id = ${q(id)}`)[0].n, 0);
  const created = await post({ id, name: 'Shop', origins: [ORIGIN], conversions: [{ event: 'Order Completed', value_property: 'revenue' }] });
  const c = await created.json();
  assert.equal(created.status, 201, JSON.stringify(c));
  assert.match(c.server_key, /^mfsk_[0-9a-f]{64}$/);
  assert.match(c.signing_secret, /^mfss_[0-9a-f]{64}$/);
  assert.match(c.webhook_secret, /^mfws_[0-9a-f]{64}$/);
  const [row] = d1(`SELECT * FROM sites WHERE id = ${q(id)}`);
  assert.notEqual(row.secret_hash, c.server_key, 'the server key is stored hashed');
  // The signing and webhook secrets are derived, not stored.
  for (const secret of [c.signing_secret, c.webhook_secret]) {
    assert.ok(!JSON.stringify(row).includes(secret.slice(5)), 'a secret is stored');
  }
  await expectError(await post({ id, origins: [ORIGIN] }), 409, 'site_exists');
  const got = await fetch(`${base}/v1/sites/${id}`, { headers: { authorization: `Bearer ${ADMIN}` } });
  const g = await got.json();
  assert.equal(got.status, 200);
  assert.deepEqual(g.origins, [ORIGIN]);
  assert.equal(JSON.stringify(g).includes(c.signing_secret), false);
});

test('GET /v1/sites/{site}/config: rules, CTAs and consent policy with ETag, 304 and cache headers', async () => {
  const site = await createSite({
    cta: { primary: { hot: { text: 'Call us now', href: '/call' } } },
    consent: { cookieless_pageviews: true, sanitise: { remove: ['dossier'] } },
    channels: { internal_hosts: ['intranet.secret-host.example'] },
  });
  const res = await fetch(`${base}/v1/sites/${site.id}/config`, { headers: { origin: ORIGIN } });
  const body = await res.json();
  assert.ok(!JSON.stringify(body).includes('secret-host'), 'internal host names are not public');
  assert.equal(res.status, 200);
  assert.equal(body.site, site.id);
  assert.equal(typeof body.rules_version, 'string');
  assert.equal(typeof body.rules_compact, 'object');
  // Only what the module needs: no rule labels, channel overrides or conversion definitions.
  assert.deepEqual(Object.keys(body).sort(), ['consent', 'cta', 'holdout_percent', 'rules_compact', 'rules_version', 'site']);
  assert.equal(body.holdout_percent, 0, 'no CTA holdout unless the site asks for one');
  assert.deepEqual(body.cta, { primary: { hot: { text: 'Call us now', href: '/call' } } });
  // The module applies the site's URL removals itself; DNT is the script tag's (`script_tag`, below).
  assert.deepEqual(body.consent, { policy_version: 1, sanitise: { remove: ['dossier'], keep: [] } });
  const admin_view = await (await fetch(`${base}/v1/sites/${site.id}`, { headers: admin })).json();
  assert.equal(admin_view.config.consent.cookieless_pageviews, true);
  assert.equal(admin_view.script_tag, `<script async src="${base}/mf.js" data-site="${site.id}" data-respect-dnt></script>`);
  const etag = res.headers.get('etag');
  assert.match(etag, /^"[0-9a-f]{32}"$/);
  // Kept by the Worker: the next ask reads no D1, and answers the same.
  assert.equal(res.headers.get('x-mf-cache'), 'miss');
  const cachedRes = await fetch(`${base}/v1/sites/${site.id}/config`, { headers: { origin: ORIGIN } });
  assert.equal(cachedRes.headers.get('x-mf-cache'), 'hit');
  assert.equal(cachedRes.headers.get('etag'), etag);
  assert.equal(cachedRes.headers.get('access-control-allow-origin'), ORIGIN, 'CORS from the cached origins');
  assert.deepEqual(await cachedRes.json(), body);
  const foreign = await fetch(`${base}/v1/sites/${site.id}/config`, { headers: { origin: 'https://evil.example' } });
  assert.equal(foreign.headers.get('access-control-allow-origin'), null);
  await foreign.body?.cancel();
  const pre = await fetch(`${base}/v1/sites/${site.id}/config`, { method: 'OPTIONS', headers: { origin: ORIGIN, 'access-control-request-headers': 'if-none-match' } });
  assert.equal(pre.status, 204);
  assert.equal(pre.headers.get('access-control-allow-origin'), ORIGIN);
  const preForeign = await fetch(`${base}/v1/sites/${site.id}/config`, { method: 'OPTIONS', headers: { origin: 'https://evil.example' } });
  assert.equal(preForeign.status, 403);
  await preForeign.body?.cancel();
  assert.match(res.headers.get('cache-control'), /max-age=\d+/);
  assert.equal(res.headers.get('access-control-allow-origin'), ORIGIN);
  const again = await fetch(`${base}/v1/sites/${site.id}/config`, { headers: { 'if-none-match': etag } });
  assert.equal(again.status, 304);
  assert.equal(again.headers.get('etag'), etag);
  const other = await fetch(`${base}/v1/sites/${site.id}/config`, { headers: { 'if-none-match': '"other"' } });
  assert.equal(other.status, 200);
  await other.body?.cancel();
  await expectError(await fetch(`${base}/v1/sites/nope-${randomUUID().slice(0, 4)}/config`), 404, 'unknown_site');
});

test('PATCH /v1/sites/{site}: origins, rules and CTAs change, validated as at creation; a bad update changes nothing', async () => {
  const site = await createSite({ cta: { primary: { cold: { text: 'Read our guides' } } } });
  const config = async () => {
    const res = await fetch(`${base}/v1/sites/${site.id}/config`);
    return { etag: res.headers.get('etag'), body: await res.json() };
  };
  const before = await config();
  const patch = (body, headers = admin) =>
    fetch(`${base}/v1/sites/${site.id}`, { method: 'PATCH', headers: { ...headers, 'content-type': 'application/json' }, body: JSON.stringify(body) });

  await expectError(await patch({ origins: ['https://new.example'] }, {}), 401, 'unauthorized');
  await expectError(
    await fetch(`${base}/v1/sites/nope-${randomUUID().slice(0, 6)}`, { method: 'PATCH', headers: admin, body: '{}' }),
    404,
    'unknown_site',
  );
  await expectError(await patch({ id: 'other' }), 400, 'invalid_site');
  await expectError(await patch({ origins: ['not an origin'] }), 400, 'invalid_site');
  const badRules = await patch({ rules: { version: 'broken' }, origins: ['https://new.example'] });
  assert.equal(badRules.status, 400);
  assert.equal((await badRules.json()).error.code, 'invalid_config');
  // CTA variants keyed by tier alone (no CTA name) are refused, naming the field.
  const flat = await expectError(await patch({ cta: { cold: { text: 'Lire nos guides' } } }), 400, 'invalid_config');
  assert.match(flat.error.message, /^cta\.cold\.text: unknown tier/);
  assert.deepEqual(await config(), before, 'a refused update changes nothing');

  const { effective_rules } = await (await fetch(`${base}/v1/sites/${site.id}`, { headers: admin })).json();
  const rules = { ...effective_rules, version: 'cabinet-v2' };
  const ok = await patch({ origins: ['https://new.example'], rules, cta: { primary: { cold: { text: 'Lire nos guides' } } }, consent: { respect_dnt: false } });
  const updated = await ok.json();
  assert.equal(ok.status, 200, JSON.stringify(updated));
  assert.deepEqual(updated.origins, ['https://new.example']);
  assert.equal(updated.server_key, undefined, 'keys are never answered again');
  const after = await config();
  assert.equal(after.body.rules_version, 'cabinet-v2');
  assert.deepEqual(after.body.cta, { primary: { cold: { text: 'Lire nos guides' } } });
  assert.equal(updated.script_tag.includes('data-respect-dnt'), false, 'the script tag follows the site setting');
  assert.notEqual(after.etag, before.etag, 'the browser revalidates to the new config');

  const batch = [page(randomUUID())];
  await expectError(await send(site.id, batch), 403, 'origin_not_allowed');
  const res = await send(site.id, batch, { origin: 'https://new.example' });
  assert.equal(res.status, 200, await res.text());

  const reset = await patch({ rules: null });
  assert.equal(reset.status, 200);
  assert.equal((await config()).body.rules_version, before.body.rules_version, 'rules: null restores the default rules');
  // The server key still works after updates.
  const server = await fetch(`${base}/v1/events`, {
    method: 'POST',
    headers: { authorization: `Bearer ${site.server_key}` },
    body: JSON.stringify({ site: site.id, batch: [{ ...page(randomUUID()), type: 'track', event: 'Call Logged' }] }),
  });
  assert.equal(server.status, 200, await server.text());
});

test('a wrong method is a JSON 405', async () => {
  await expectError(await fetch(`${base}/v1/batch`), 405, 'method_not_allowed');
});

test('garbage on every endpoint is a 4xx with an error body, never a 5xx', async () => {
  const site = await createSite();
  const garbage = ['', 'null', '0', '"x"', '[]', '{}', '{"site":null}', `{"site":"${site.id}","batch":[null,1,"x",[],{}]}`,
    `{"site":"${site.id}","batch":[{"type":"track","messageId":"00000000-0000-4000-8000-000000000000","timestamp":"2026-01-01T00:00:00Z","event":{"a":1}}]}`,
    '\u0000\u0001', '{"a":' + '['.repeat(5000) + ']'.repeat(5000) + '}'];
  const targets = [
    ['POST', '/v1/batch', { origin: ORIGIN }],
    ['POST', '/v1/events', { authorization: `Bearer ${site.server_key}` }],
    ['POST', '/v1/sites', { authorization: `Bearer ${ADMIN}` }],
    ['POST', '/v1/spend', { authorization: `Bearer ${ADMIN}` }],
  ];
  for (const [method, path, headers] of targets) {
    for (const body of garbage) {
      const res = await fetch(`${base}${path}`, { method, headers, body });
      const text = await res.text();
      assert.ok(res.status >= 400 && res.status < 500, `${method} ${path} ${JSON.stringify(body.slice(0, 60))} → ${res.status} ${text.slice(0, 200)}`);
      const parsed = JSON.parse(text);
      assert.equal(typeof parsed.error.code, 'string');
    }
  }
  for (const path of [`/v1/subjects/%00?site=${site.id}`, `/v1/leads?site=${site.id}&limit=-1`, '/v1/reports/kpis?site=%20', `/v1/sites/${'x'.repeat(300)}/config`]) {
    const res = await fetch(`${base}${path}`, { headers: { authorization: `Bearer ${ADMIN}` } });
    const text = await res.text();
    assert.ok(res.status >= 400 && res.status < 500, `${path} → ${res.status} ${text.slice(0, 200)}`);
    assert.equal(typeof JSON.parse(text).error.code, 'string');
  }
  assert.equal(count(site.id), 0);
});
