// Server/offline events (POST /v1/events), identity stitching, scoring in the
// visitor's Durable Object, and instant attribution on conversions — against
// workerd + local D1 + SQLite-backed Durable Objects.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac, randomUUID } from 'node:crypto';
import { base, ADMIN, admin, fetch, d1, q, consent, createSite as makeSite, signIdentity, emailKey, expectError } from './lib.mjs';

const ORIGIN = 'https://firm.example';
const createSite = (extra = {}) =>
  makeSite('s', {
    origins: [ORIGIN],
    conversions: [{ event: 'Lead Submitted', value_property: 'value', currency: 'EUR' }],
    ...extra,
  });

const count = (site) => d1(`SELECT COUNT(*) AS n FROM events WHERE site_id = ${q(site)}`)[0].n;

const at = (minutesAgo) => new Date(Date.now() - minutesAgo * 60_000).toISOString();
const ev = (fields) => ({ messageId: randomUUID(), timestamp: at(0), consent, ...fields });

const browser = (site, batch) =>
  fetch(`${base}/v1/batch`, { method: 'POST', headers: { 'content-type': 'text/plain', origin: ORIGIN }, body: JSON.stringify({ site, batch }) });
const server = (site, batch, headers = {}) =>
  fetch(`${base}/v1/events`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify({ site, batch }) });
const bearer = (key) => ({ authorization: `Bearer ${key}` });


test('server events: Bearer server key accepted; missing → 401, wrong → 403, nothing stored', async () => {
  const site = await createSite();
  const batch = [ev({ type: 'track', event: 'Call Received', userId: 'crm-1', context: { channel: 'Phone' } })];
  await expectError(await server(site.id, batch), 401, 'unauthorized');
  await expectError(await server(site.id, batch, bearer('mfsk_wrong')), 403, 'forbidden');
  await expectError(await server(site.id, batch, { authorization: 'Basic abc' }), 401, 'unauthorized');
  const other = await createSite();
  await expectError(await server(site.id, batch, bearer(other.server_key)), 403, 'forbidden');
  await expectError(await server('nope-site', batch, bearer(site.server_key)), 404, 'unknown_site');
  assert.equal(count(site.id), 0);
  const ok = await server(site.id, batch, bearer(site.server_key));
  const body = await ok.json();
  assert.equal(ok.status, 200, JSON.stringify(body));
  assert.equal(body.accepted, 1);
  const [row] = d1(`SELECT source, channel FROM events WHERE site_id = ${q(site.id)}`);
  assert.equal(row.source, 'server');
  // Replays are duplicates here too.
  const again = await (await server(site.id, batch, bearer(site.server_key))).json();
  assert.equal(again.duplicates, 1);
  assert.equal(count(site.id), 1);
});

test('server events: HMAC-SHA256 signature accepted; a bad or stale one → 403', async () => {
  const site = await createSite();
  const body = JSON.stringify({ site: site.id, batch: [ev({ type: 'track', event: 'Meeting Booked', userId: 'crm-2' })] });
  const sign = (t, b = body, key = site.signing_secret) => `t=${t},v1=${createHmac('sha256', key).update(`${t}.${b}`).digest('hex')}`;
  const post = (sig) => fetch(`${base}/v1/events`, { method: 'POST', headers: { 'x-mf-signature': sig }, body });
  const now = Math.floor(Date.now() / 1000);
  await expectError(await post(sign(now, body, 'mfss_wrong')), 403, 'forbidden');
  await expectError(await post(sign(now - 3600)), 403, 'forbidden');
  await expectError(await post('v1=abc'), 401, 'unauthorized');
  assert.equal(count(site.id), 0);
  const ok = await post(sign(now));
  const r = await ok.json();
  assert.equal(ok.status, 200, JSON.stringify(r));
  assert.equal(r.accepted, 1);
  assert.equal(count(site.id), 1);
});

test('identity stitching: browser visitor + server identify/alias + userId-only offline events share one ledger', async () => {
  const site = await createSite();
  const anon = randomUUID();
  const r1 = await browser(site.id, [ev({ type: 'page', anonymousId: anon, timestamp: at(30), context: { page: { path: '/pricing', url: 'https://firm.example/pricing' } } })]);
  assert.equal(r1.status, 200, await r1.text());
  const identify = ev({ type: 'identify', anonymousId: anon, userId: 'user-42', timestamp: at(20), traits: { email: 'Jane@Example.com', role: 'hr director' } });
  const r2 = await server(site.id, [identify], bearer(site.server_key));
  assert.equal(r2.status, 200, await r2.text());
  const alias = ev({ type: 'alias', userId: 'crm-contact-9', previousId: 'user-42', timestamp: at(15) });
  const r3 = await server(site.id, [alias], bearer(site.server_key));
  assert.equal(r3.status, 200, await r3.text());
  const offline = ev({ type: 'track', event: 'Call Received', userId: 'user-42', timestamp: at(10), context: { channel: 'Phone' } });
  const r4 = await (await server(site.id, [offline], bearer(site.server_key))).json();
  assert.equal(r4.visitors[0].visitor, anon, 'a userId-only event lands on the stitched visitor');
  const ids = d1(`SELECT kind, value, visitor_id FROM identities WHERE site_id = ${q(site.id)} ORDER BY kind, value`);
  assert.ok(ids.every((i) => i.visitor_id === anon), JSON.stringify(ids));
  const kinds = ids.map((i) => i.kind);
  assert.ok(kinds.includes('email_sha256') && kinds.includes('user') && kinds.includes('anonymous'));
  assert.ok(ids.some((i) => i.value === 'crm-contact-9'), 'alias links the new id');
  const [v] = d1(`SELECT events, tier, score_milli FROM visitors WHERE site_id = ${q(site.id)} AND visitor_id = ${q(anon)}`);
  assert.equal(v.events, 4);
  // The subject's score, by any linked id (admin).
  const s = await fetch(`${base}/v1/subjects/crm-contact-9/score?site=${site.id}`, { headers: bearer(ADMIN) });
  const sb = await s.json();
  assert.equal(s.status, 200, JSON.stringify(sb));
  assert.equal(sb.scores[0].visitor, anon);
  assert.ok(sb.scores[0].score.score >= 15);
  assert.ok(Array.isArray(sb.scores[0].score.drivers));
});

test('identity stitching within one batch: a CRM that sends an identify and then events by userId alone sends them to one visitor', async () => {
  const site = await createSite();
  const anon = randomUUID();
  const batch = [
    ev({ type: 'identify', anonymousId: anon, userId: 'client-77', timestamp: at(3) }),
    ev({ type: 'track', event: 'Call Received', userId: 'client-77', timestamp: at(2), context: { channel: 'Phone' } }),
    ev({ type: 'track', event: 'Meeting Booked', userId: 'client-77', timestamp: at(1) }),
  ];
  const res = await (await server(site.id, batch, bearer(site.server_key))).json();
  assert.equal(res.accepted, 3, JSON.stringify(res));
  assert.deepEqual(res.visitors.map((v) => v.visitor), [anon]);
  assert.deepEqual(d1(`SELECT DISTINCT visitor_id FROM events WHERE site_id = ${q(site.id)}`), [{ visitor_id: anon }]);
});

test('a conversion is attributed at once under every heuristic model; credits sum to its value', async () => {
  const site = await createSite();
  const anon = randomUUID();
  const touches = [
    ev({ type: 'page', anonymousId: anon, timestamp: at(300), context: { page: { url: 'https://firm.example/', path: '/' }, campaign: { utm_source: 'google', utm_medium: 'cpc' } } }),
    ev({ type: 'page', anonymousId: anon, timestamp: at(200), context: { page: { url: 'https://firm.example/blog', path: '/blog', referrer: 'https://www.facebook.com/' } } }),
    ev({ type: 'page', anonymousId: anon, timestamp: at(100), context: { page: { url: 'https://firm.example/pricing', path: '/pricing' } } }),
  ];
  assert.equal((await browser(site.id, touches)).status, 200);
  const conv = ev({ type: 'track', event: 'Lead Submitted', anonymousId: anon, timestamp: at(1), properties: { value: 120.5 } });
  const res = await browser(site.id, [conv]);
  const body = await res.json();
  assert.equal(res.status, 200, JSON.stringify(body));
  assert.equal(body.visitors, undefined, 'the public endpoint names no conversion');
  const [c] = d1(`SELECT value_minor, path, tta_ms, source FROM conversions WHERE site_id = ${q(site.id)}`);
  assert.deepEqual({ ...c, tta_ms: undefined }, { value_minor: 12050, path: 'Paid Search > Organic Social > Direct', tta_ms: undefined, source: 'browser' });
  assert.ok(c.tta_ms >= 0);
  const credit = (model) =>
    Object.fromEntries(d1(`SELECT channel, credit_minor FROM credits WHERE site_id = ${q(site.id)} AND model = ${q(model)}`).map((r) => [r.channel, r.credit_minor]));
  for (const model of ['first', 'last', 'last-non-direct', 'linear', 'time-decay', 'position']) {
    assert.equal(Object.values(credit(model)).reduce((a, b) => a + b, 0), 12050, model);
  }
  assert.equal(credit('first')['Paid Search'], 12050);
  assert.equal(credit('last-non-direct')['Organic Social'], 12050);
  const rows = d1(`SELECT model, SUM(credit_minor) AS total FROM credits WHERE site_id = ${q(site.id)} GROUP BY model`);
  assert.equal(rows.length, 6);
  assert.ok(rows.every((r) => r.total === 12050));
  const [p] = d1(`SELECT conversions, value_minor FROM paths WHERE site_id = ${q(site.id)}`);
  assert.deepEqual(p, { conversions: 1, value_minor: 12050 });
  // A retried conversion is not attributed twice.
  const again = await (await browser(site.id, [conv])).json();
  assert.equal(again.duplicates, 1);
  assert.equal(d1(`SELECT COUNT(*) AS n FROM conversions WHERE site_id = ${q(site.id)}`)[0].n, 1);
});

test('cross-device: a second device that identifies as a known user joins that visitor — one ledger, one score, one journey', async () => {
  const site = await createSite();
  const laptop = randomUUID();
  const phone = randomUUID();
  const page = (anon, path, minutes, extra = {}) =>
    ev({ type: 'page', anonymousId: anon, timestamp: at(minutes), context: { page: { path, url: `https://firm.example${path}` }, ...extra } });
  const ok = async (res) => {
    const body = await res.json();
    assert.equal(res.status, 200, JSON.stringify(body));
    return body;
  };
  // The laptop: pricing (15 points), then identified as user-7 (signed by the site's backend).
  const signed = { identitySignature: signIdentity(site.identity_secret, 'user-7') };
  await ok(await browser(site.id, [page(laptop, '/pricing', 60), ev({ type: 'identify', anonymousId: laptop, userId: 'user-7', timestamp: at(59), ...signed })]));
  // The phone, still anonymous, arrives from a newsletter and reads an article (3 points).
  await ok(await browser(site.id, [page(phone, '/blog/licenciement', 30, { campaign: { utm_source: 'newsletter', utm_medium: 'email' } })]));
  const rows = () => d1(`SELECT visitor_id, events, score_milli, drivers FROM visitors WHERE site_id = ${q(site.id)} ORDER BY visitor_id`);
  assert.equal(rows().length, 2);

  // The phone identifies as the same user: its visitor joins the laptop's.
  const identify = ev({ type: 'identify', anonymousId: phone, userId: 'user-7', timestamp: at(20), ...signed });
  const merged = await ok(await browser(site.id, [identify]));
  assert.equal(merged.accepted, 1);
  const [v, ...others] = rows();
  assert.equal(others.length, 0, JSON.stringify(rows()));
  assert.equal(v.visitor_id, laptop);
  assert.equal(v.events, 4);
  const drivers = JSON.parse(v.drivers).map((d) => d.action).sort();
  assert.deepEqual(drivers, ['web.blog_read', 'web.pricing_view'], 'scored over both devices');
  assert.ok(v.score_milli > 15000, String(v.score_milli));
  assert.deepEqual(d1(`SELECT DISTINCT visitor_id FROM events WHERE site_id = ${q(site.id)}`), [{ visitor_id: laptop }]);
  const phoneId = d1(`SELECT visitor_id FROM identities WHERE site_id = ${q(site.id)} AND kind = 'anonymous' AND value = ${q(phone)}`);
  assert.deepEqual(phoneId, [{ visitor_id: laptop }]);
  // The phone's object was emptied: an export by the phone's id finds one visitor, the laptop's.
  const ex = await (await fetch(`${base}/v1/subjects/${phone}?site=${site.id}`, { headers: bearer(ADMIN) })).json();
  assert.deepEqual(ex.visitors, [laptop]);
  assert.equal(ex.visitor_objects[0].state.ledger.length, 4);

  // Replaying the batch is harmless.
  const again = await ok(await browser(site.id, [identify]));
  assert.equal(again.duplicates, 1);
  assert.equal(rows().length, 1);

  // A conversion on the phone is credited along the joined journey: the laptop's
  // direct visit, then the phone's newsletter touch.
  await ok(await browser(site.id, [ev({ type: 'track', event: 'Lead Submitted', anonymousId: phone, userId: 'user-7', timestamp: at(5), properties: { value: 100 } })]));
  const [c] = d1(`SELECT visitor_id, path, value_minor FROM conversions WHERE site_id = ${q(site.id)}`);
  assert.deepEqual(c, { visitor_id: laptop, path: 'Direct > Email', value_minor: 10000 });
});

test('cross-device: an alias between two known visitors joins them too', async () => {
  const site = await createSite();
  const web = randomUUID();
  await browser(site.id, [
    ev({ type: 'page', anonymousId: web, timestamp: at(40), context: { page: { path: '/pricing', url: 'https://firm.example/pricing' } } }),
    ev({ type: 'identify', anonymousId: web, userId: 'web-login-3', timestamp: at(39), identitySignature: signIdentity(site.identity_secret, 'web-login-3') }),
  ]);
  // The CRM knows the same person under its own id, with an offline touch.
  const crm = await server(site.id, [ev({ type: 'track', event: 'Call Received', userId: 'crm-77', timestamp: at(30), context: { channel: 'Phone' } })], bearer(site.server_key));
  assert.equal(crm.status, 200, await crm.text());
  assert.equal(d1(`SELECT COUNT(*) AS n FROM visitors WHERE site_id = ${q(site.id)}`)[0].n, 2);
  const alias = await server(site.id, [ev({ type: 'alias', previousId: 'crm-77', userId: 'web-login-3', timestamp: at(20) })], bearer(site.server_key));
  const body = await alias.json();
  assert.equal(alias.status, 200, JSON.stringify(body));
  const rows = d1(`SELECT visitor_id, events FROM visitors WHERE site_id = ${q(site.id)}`);
  assert.deepEqual(rows, [{ visitor_id: web, events: 4 }]);
  const ids = d1(`SELECT DISTINCT visitor_id FROM identities WHERE site_id = ${q(site.id)}`);
  assert.deepEqual(ids, [{ visitor_id: web }]);
});

test('cross-device: a batch that resolved the old visitor just before the merge is followed to the joined one; erasing the user erases both objects', async () => {
  const site = await createSite();
  const laptop = randomUUID();
  const phone = randomUUID();
  const page = (anon, path, minutes) => ev({ type: 'page', anonymousId: anon, timestamp: at(minutes), context: { page: { path, url: `https://firm.example${path}` } } });
  const signed = { identitySignature: signIdentity(site.identity_secret, 'user-8') };
  assert.equal((await browser(site.id, [page(laptop, '/pricing', 60), ev({ type: 'identify', anonymousId: laptop, userId: 'user-8', timestamp: at(59), ...signed })])).status, 200);
  assert.equal((await browser(site.id, [page(phone, '/blog/divorce', 30)])).status, 200);
  assert.equal((await browser(site.id, [ev({ type: 'identify', anonymousId: phone, userId: 'user-8', timestamp: at(20), ...signed })])).status, 200);

  // A phone batch that looked its visitor up before the merge moved it.
  const late = page(phone, '/contact', 10);
  const res = await fetch(`${base}/__test/stale-batch`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ site: site.id, batch: [late], resolved: { [phone]: phone } }),
  });
  const body = await res.json();
  assert.equal(res.status, 200, JSON.stringify(body));
  assert.equal(body.accepted, 1);
  assert.equal(body.visitors[0].visitor, laptop, JSON.stringify(body));
  assert.deepEqual(d1(`SELECT DISTINCT visitor_id FROM events WHERE site_id = ${q(site.id)}`), [{ visitor_id: laptop }]);
  assert.deepEqual(d1(`SELECT visitor_id, events FROM visitors WHERE site_id = ${q(site.id)}`), [{ visitor_id: laptop, events: 5 }]);
  const ex = await (await fetch(`${base}/v1/subjects/user-8?site=${site.id}`, { headers: bearer(ADMIN) })).json();
  assert.deepEqual(ex.visitors, [laptop]);
  const ids = ex.visitor_objects[0].state.ledger.map((r) => r.message_id);
  assert.ok(ids.includes(late.messageId), 'the late event is in the joined ledger');
  // Replayed, it is a duplicate and still lands nowhere else.
  const again = await (await fetch(`${base}/__test/stale-batch`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ site: site.id, batch: [late], resolved: { [phone]: phone } }),
  })).json();
  assert.equal(again.duplicates, 1);
  assert.equal(d1(`SELECT COUNT(*) AS n FROM visitors WHERE site_id = ${q(site.id)}`)[0].n, 1);

  // Erasing the user erases the joined object and the phone's forward.
  const del = await (await fetch(`${base}/v1/subjects/user-8?site=${site.id}`, { method: 'DELETE', headers: bearer(ADMIN) })).json();
  assert.equal(del.visitor_objects, 2, JSON.stringify(del));
});

test('attribution: a touch from before a closed journey never opens the next one — a late offline event, or another device joined later', async () => {
  const site = await createSite();
  const laptop = randomUUID();
  const phone = randomUUID();
  const ok = async (res) => {
    const body = await res.json();
    assert.equal(res.status, 200, JSON.stringify(body));
    return body;
  };
  const page = (anon, path, minutes, extra = {}) =>
    ev({ type: 'page', anonymousId: anon, timestamp: at(minutes), context: { page: { path, url: `https://firm.example${path}` }, ...extra } });
  // The phone reads the newsletter first, and stays anonymous for now.
  await ok(await browser(site.id, [page(phone, '/blog/heritage', 60, { campaign: { utm_source: 'newsletter', utm_medium: 'email' } })]));
  // The laptop: an ad, identified, converts.
  await ok(await browser(site.id, [
    page(laptop, '/', 50, { campaign: { utm_source: 'google', utm_medium: 'cpc' } }),
    ev({ type: 'identify', anonymousId: laptop, userId: 'user-9', timestamp: at(49), identitySignature: signIdentity(site.identity_secret, 'user-9') }),
    ev({ type: 'track', event: 'Lead Submitted', anonymousId: laptop, userId: 'user-9', timestamp: at(40), properties: { value: 50 } }),
  ]));
  // Back on the laptop later (direct).
  await ok(await browser(site.id, [page(laptop, '/tarifs', 30)]));
  // The CRM reports a call from before the first conversion, late.
  const call = await server(site.id, [ev({ type: 'track', event: 'Call Received', userId: 'user-9', timestamp: at(45), context: { channel: 'Phone' } })], bearer(site.server_key));
  assert.equal(call.status, 200, await call.text());
  // The phone logs in: it joins the laptop's visitor, its newsletter touch with it.
  await ok(await browser(site.id, [ev({ type: 'identify', anonymousId: phone, userId: 'user-9', timestamp: at(20), identitySignature: signIdentity(site.identity_secret, 'user-9') })]));
  // The second conversion is credited to what came after the first one only.
  await ok(await browser(site.id, [ev({ type: 'track', event: 'Lead Submitted', anonymousId: laptop, userId: 'user-9', timestamp: at(5), properties: { value: 80 } })]));
  const paths = d1(`SELECT path, value_minor FROM conversions WHERE site_id = ${q(site.id)} ORDER BY value_minor`);
  assert.deepEqual(paths, [
    { path: 'Paid Search', value_minor: 5000 },
    { path: 'Direct', value_minor: 8000 },
  ]);
});

test('cross-device: an identify whose e-mail is linked to another visitor joins it — a known device merges, a new one goes straight there; a site can turn it off', async () => {
  const run = async (extra) => {
    const site = await createSite(extra);
    const [phone, laptop, tablet] = [randomUUID(), randomUUID(), randomUUID()];
    const page = (anon, path, minutes) => ev({ type: 'page', anonymousId: anon, timestamp: at(minutes), context: { page: { path, url: `https://firm.example${path}` } } });
    // Signed by the site's backend, which knows the address: HMAC of its SHA-256.
    const identify = (anon, email, minutes) =>
      ev({ type: 'identify', anonymousId: anon, timestamp: at(minutes), traits: { email }, identitySignature: signIdentity(site.identity_secret, emailKey(email)) });
    const send = async (batch) => {
      const res = await browser(site.id, batch);
      const body = await res.json();
      assert.equal(res.status, 200, JSON.stringify(body));
      return body;
    };
    await send([page(phone, '/blog/succession', 50), identify(phone, 'Jane.Doe@Example.com', 49)]);
    await send([page(laptop, '/pricing', 40)]);
    // The contact form on the laptop: the same address, written differently.
    await send([identify(laptop, '  jane.doe@example.com ', 30)]);
    // A tablet never seen before, whose first batch carries the same address.
    await send([page(tablet, '/contact', 20), identify(tablet, 'jane.doe@example.com', 19)]);
    return { site, phone, rows: d1(`SELECT visitor_id, events FROM visitors WHERE site_id = ${q(site.id)} ORDER BY visitor_id`) };
  };
  const on = await run({});
  assert.deepEqual(on.rows, [{ visitor_id: on.phone, events: 6 }]);
  assert.deepEqual(d1(`SELECT DISTINCT visitor_id FROM events WHERE site_id = ${q(on.site.id)}`), [{ visitor_id: on.phone }]);
  const [v] = d1(`SELECT drivers FROM visitors WHERE site_id = ${q(on.site.id)}`);
  assert.ok(JSON.parse(v.drivers).some((d) => d.action === 'web.pricing_view'), 'the laptop pricing visit scores for the joined visitor');
  // No address is stored, only its hash (one link for the three devices).
  assert.equal(d1(`SELECT COUNT(*) AS n FROM events WHERE site_id = ${q(on.site.id)} AND payload LIKE '%example.com%'`)[0].n, 0);
  assert.equal(d1(`SELECT COUNT(*) AS n FROM identities WHERE site_id = ${q(on.site.id)} AND kind = 'email_sha256'`)[0].n, 1);

  const off = await run({ attribution: { merge_on_email: false } });
  assert.equal(off.rows.length, 3, JSON.stringify(off.rows));
});

test('a rule change re-scores the visitor at its next event, and back again (the object reuses validated rules only for the same rules)', async () => {
  const site = await createSite();
  const anon = randomUUID();
  const page = (path, minutes) => ev({ type: 'page', anonymousId: anon, timestamp: at(minutes), context: { page: { path, url: `https://firm.example${path}` } } });
  const send = async (batch) => assert.equal((await browser(site.id, batch)).status, 200);
  const row = () => d1(`SELECT rules_version, score_milli FROM visitors WHERE site_id = ${q(site.id)}`)[0];
  const patch = async (body) => {
    const res = await fetch(`${base}/v1/sites/${site.id}`, { method: 'PATCH', headers: { ...admin, 'content-type': 'application/json' }, body: JSON.stringify(body) });
    assert.equal(res.status, 200, await res.text());
  };
  await send([page('/pricing', 40)]);
  const before = row();
  assert.equal(before.score_milli, 15000);

  const { effective_rules: rules } = await (await fetch(`${base}/v1/sites/${site.id}`, { headers: admin })).json();
  rules.version = 'pricing-heavy';
  rules.actions.web.pricing_view.points = 40;
  await patch({ rules });
  await send([page('/blog/garde-alternee', 30)]);
  assert.deepEqual(row(), { rules_version: 'pricing-heavy', score_milli: 43000 });

  await patch({ rules: null });
  await send([page('/blog/pension', 20)]);
  assert.deepEqual(row(), { rules_version: before.rules_version, score_milli: 21000 });
});

test('e-mail stitching: a blank or placeholder address is no key — two visitors who leave one stay two', async () => {
  const site = await createSite();
  for (const email of ['   ', 'n/a', '   ', 'none']) {
    const anon = randomUUID();
    const res = await server(site.id, [
      ev({ type: 'identify', anonymousId: anon, userId: `crm-${anon.slice(0, 6)}`, traits: { email, company: 'Cabinet' } }),
    ], bearer(site.server_key));
    assert.equal(res.status, 200, await res.text());
  }
  assert.equal(d1(`SELECT COUNT(*) AS n FROM visitors WHERE site_id = ${q(site.id)}`)[0].n, 4);
  assert.equal(d1(`SELECT COUNT(*) AS n FROM identities WHERE site_id = ${q(site.id)} AND kind = 'email_sha256'`)[0].n, 0);
  const traits = d1(`SELECT payload FROM events WHERE site_id = ${q(site.id)}`).map((r) => JSON.parse(r.payload).traits);
  assert.ok(traits.every((t) => t.email === undefined && t.email_sha256 === undefined && t.company === 'Cabinet'), JSON.stringify(traits));
});

test('a visitor object keeps at most limits.ledger_events events: the oldest are folded into its score and dropped — the score is the uncapped one, D1 keeps every event', async () => {
  const capped = await createSite({ limits: { ledger_events: 100 } });
  const open = await createSite();
  const names = ['web.pricing_view', 'email.open', 'web.buy_click', 'offline.meeting_request', 'email.unsubscribe'];
  // 130 events over two days, oldest first, in two batches.
  const events = Array.from({ length: 130 }, (_, i) =>
    ev({ type: 'track', event: names[i % names.length], userId: 'flood-1', timestamp: at(2 * 24 * 60 - i * 20) }),
  );
  for (const site of [capped, open]) {
    for (const part of [events.slice(0, 65), events.slice(65)]) {
      const r = await server(site.id, part, bearer(site.server_key));
      assert.equal(r.status, 200, await r.clone().text());
    }
  }
  const row = (site) => d1(`SELECT events, score_milli, tier FROM visitors WHERE site_id = ${q(site)} AND visitor_id = 'flood-1'`)[0];
  const state = async (site) =>
    (await (await fetch(`${base}/v1/subjects/flood-1?site=${site}`, { headers: bearer(ADMIN) })).json()).visitor_objects[0].state;
  const [c, o] = [await state(capped.id), await state(open.id)];
  assert.equal(o.ledger.length, 130);
  assert.equal(c.ledger.length, 80, 'cut to four fifths of the cap once past it');
  assert.ok(c.carried && !o.carried, 'the capped object carries what it dropped');
  // The newest events are the ones kept.
  assert.deepEqual(c.ledger.map((r) => r.message_id), o.ledger.slice(50).map((r) => r.message_id));
  assert.ok(row(open.id).score_milli > 0);
  assert.deepEqual([row(capped.id).score_milli, row(capped.id).tier], [row(open.id).score_milli, row(open.id).tier]);
  const explained = async (site) => (await (await fetch(`${base}/v1/subjects/flood-1/score?site=${site}`, { headers: bearer(ADMIN) })).json()).scores[0].score.score;
  assert.equal(await explained(capped.id), await explained(open.id));
  assert.equal(count(capped.id), 130, 'D1 keeps every event');
  // The cap is a bounded setting.
  await expectError(await fetch(`${base}/v1/sites/${capped.id}`, { method: 'PATCH', headers: bearer(ADMIN), body: JSON.stringify({ limits: { ledger_events: 99 } }) }), 400, 'invalid_config');
});

test('a merge hands a long ledger over in pages: 1,100 events of one device join a known user — every row arrives once, the score is rebuilt once', async () => {
  const site = await createSite();
  const anon = randomUUID();
  const views = Array.from({ length: 1100 }, (_, i) =>
    ev({ type: 'page', anonymousId: anon, timestamp: at(1100 - i), context: { page: { path: i % 7 ? '/blog/a' : '/pricing', url: `${ORIGIN}/x` } } }),
  );
  for (let i = 0; i < views.length; i += 100) {
    const r = await browser(site.id, views.slice(i, i + 100));
    assert.equal(r.status, 200, await r.clone().text());
  }
  const key = bearer(site.server_key);
  assert.equal((await server(site.id, [ev({ type: 'track', event: 'Meeting Booked', userId: 'big-user' })], key)).status, 200);
  // The device identifies as that user: its object hands its rows over.
  const joined = await server(site.id, [ev({ type: 'identify', anonymousId: anon, userId: 'big-user', traits: { role: 'DAF' } })], key);
  assert.equal(joined.status, 200, await joined.clone().text());
  const state = async (id) =>
    (await (await fetch(`${base}/v1/subjects/${id}?site=${site.id}`, { headers: bearer(ADMIN) })).json()).visitor_objects;
  const objects = await state('big-user');
  const holder = objects.find((o) => !o.state.merged_into);
  const ids = holder.state.ledger.map((r) => r.message_id);
  assert.equal(ids.length, 1102, 'the 1,100 views, the track and the identify');
  assert.equal(new Set(ids).size, ids.length);
  for (const v of [views[0], views[499], views[500], views[1099]]) assert.ok(ids.includes(v.messageId), v.messageId);
  const [row] = d1(`SELECT events, score_milli FROM visitors WHERE site_id = ${q(site.id)} AND visitor_id = 'big-user'`);
  assert.equal(row.events, 1102);
  assert.ok(row.score_milli > 0);
  assert.equal(d1(`SELECT COUNT(*) AS n FROM events WHERE site_id = ${q(site.id)} AND visitor_id = ${q(anon)}`)[0].n, 0, 'D1 rows re-keyed');
});
