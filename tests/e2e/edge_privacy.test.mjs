// Privacy rights against the real runtime: export, score and erasure of a
// subject (admin token), proven by scanning every D1 table afterwards, and
// the retention purge.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomUUID } from 'node:crypto';
import { base, admin, fetch, d1All, d1, q, consent, createSite as makeSite } from './lib.mjs';

const ORIGIN = 'https://clinic.example';
const createSite = () =>
  makeSite('p', { origins: [ORIGIN], conversions: [{ event: 'Appointment Booked', default_value_minor: 5000 }] });

/** Every row of every table, as text. */
function dumpAll() {
  const tables = d1("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name NOT LIKE '_cf_%'");
  assert.ok(tables.length >= 8, JSON.stringify(tables));
  const rows = d1All(tables.map(({ name }) => `SELECT * FROM "${name}"`).join('; '));
  assert.equal(rows.length, tables.length);
  return tables.map(({ name }, i) => `${name}: ${JSON.stringify(rows[i])}`).join('\n');
}

const ev = (fields) => ({ messageId: randomUUID(), timestamp: new Date().toISOString(), consent, ...fields });
const browser = (site, batch) =>
  fetch(`${base}/v1/batch`, { method: 'POST', headers: { origin: ORIGIN }, body: JSON.stringify({ site, batch }) });

async function populate(site, anon, user, email) {
  const batch = [
    ev({ type: 'page', anonymousId: anon, context: { page: { path: '/pricing', url: 'https://clinic.example/pricing?utm_source=newsletter&utm_medium=email' } } }),
    ev({ type: 'identify', anonymousId: anon, userId: user, traits: { email } }),
    ev({ type: 'track', event: 'Appointment Booked', anonymousId: anon, userId: user }),
  ];
  const res = await browser(site, batch);
  const body = await res.json();
  assert.equal(res.status, 200, JSON.stringify(body));
  assert.equal(body.accepted, 3);
}

test('privacy endpoints need the admin token and a site', async () => {
  await fetch(`${base}/v1/subjects/x?site=demo`).then(async (r) => {
    assert.equal(r.status, 401);
    assert.equal((await r.json()).error.code, 'unauthorized');
  });
  const r = await fetch(`${base}/v1/subjects/x`, { headers: admin });
  assert.equal(r.status, 400);
  assert.equal((await r.json()).error.code, 'missing_site');
  const site = await createSite();
  const n = await fetch(`${base}/v1/subjects/${randomUUID()}?site=${site.id}`, { headers: admin });
  assert.equal(n.status, 404);
  assert.equal((await n.json()).error.code, 'subject_not_found');
});

test('export returns every row and the visitor object; erasure leaves no trace in any table or object', async () => {
  const site = await createSite();
  const anon = randomUUID();
  const user = `user-${randomUUID().slice(0, 8)}`;
  const email = `${randomUUID().slice(0, 8)}@example.org`;
  const emailHash = createHash('sha256').update(email.toLowerCase()).digest('hex');
  await populate(site.id, anon, user, email);
  // A bystander on the same site must survive the erasure.
  const other = randomUUID();
  await populate(site.id, other, `user-${randomUUID().slice(0, 8)}`, `${randomUUID().slice(0, 8)}@example.org`);

  const ex = await fetch(`${base}/v1/subjects/${user}?site=${site.id}`, { headers: admin });
  const data = await ex.json();
  assert.equal(ex.status, 200, JSON.stringify(data));
  assert.deepEqual(data.visitors, [anon]);
  assert.equal(data.tables.events.length, 3);
  assert.equal(data.tables.conversions.length, 1);
  assert.ok(data.tables.credits.length >= 6);
  assert.ok(data.tables.identities.some((i) => i.value === emailHash));
  assert.equal(data.visitor_objects[0].state.ledger.length, 3);
  const byEmail = await fetch(`${base}/v1/subjects/email:${email.toUpperCase()}?site=${site.id}`, { headers: admin });
  assert.equal(byEmail.status, 200);
  assert.deepEqual((await byEmail.json()).visitors, [anon]);

  let dump = dumpAll();
  for (const needle of [anon, user, emailHash]) assert.ok(dump.includes(needle), `seeded ${needle}`);
  assert.ok(!dump.toLowerCase().includes(email.toLowerCase()), 'the e-mail address itself is never stored, only its hash');
  assert.ok(!JSON.stringify(data).includes(email), 'nor exported');

  const del = await fetch(`${base}/v1/subjects/${anon}?site=${site.id}`, { method: 'DELETE', headers: admin });
  const d = await del.json();
  assert.equal(del.status, 200, JSON.stringify(d));
  assert.equal(d.deleted.events, 3);
  assert.equal(d.visitor_objects, 1);
  // The erasure was recorded before it began, and its record, once done, names nobody.
  const [record] = d1(`SELECT visitors, ids, completed_at, last_error FROM erasures WHERE id = ${q(d.erasure)}`);
  assert.deepEqual([record.visitors, record.ids, record.last_error], ['[]', '[]', null]);
  assert.ok(record.completed_at > 0);

  dump = dumpAll();
  for (const needle of [anon, user, emailHash, email]) assert.ok(!dump.includes(needle), `${needle} survived erasure:\n${dump}`);
  assert.ok(dump.includes(other), 'the other visitor is untouched');
  const gone = await fetch(`${base}/v1/subjects/${user}?site=${site.id}`, { headers: admin });
  assert.equal(gone.status, 404);
  // The Durable Object was emptied: the same visitor id starts from nothing.
  const again = await browser(site.id, [ev({ type: 'page', anonymousId: anon, context: { page: { path: '/' } } })]);
  const a = await again.json();
  assert.equal(a.accepted, 1);
  const [v] = d1(`SELECT events FROM visitors WHERE site_id = ${q(site.id)} AND visitor_id = ${q(anon)}`);
  assert.equal(v.events, 1, 'the object ledger was erased');
});

/**
 * The daily purge, called directly: the platform's own scheduled entry point
 * cannot reach this (assets-serving) `wrangler dev`, so `cron_scheduled`
 * fires it on the same Worker without assets; here the test route runs the
 * same `cron::purge` the `scheduled` handler runs, and answers its report.
 */
async function cron() {
  const res = await fetch(`${base}/__test/cron`, { method: 'POST' });
  const body = await res.json();
  assert.equal(res.status, 200, JSON.stringify(body));
  return body;
}

test('a site that hashes userIds stores none as sent; stitching, export and erasure by the id still work', async () => {
  const site = await makeSite('p', { origins: [ORIGIN], consent: { hash_user_ids: true } });
  const anon = randomUUID();
  const user = `crm-${randomUUID().slice(0, 8)}`;
  const server = await fetch(`${base}/v1/events`, {
    method: 'POST',
    headers: { authorization: `Bearer ${site.server_key}`, 'content-type': 'application/json' },
    body: JSON.stringify({ site: site.id, batch: [ev({ type: 'identify', anonymousId: anon, userId: user }), ev({ type: 'track', event: 'Call Logged', userId: user })] }),
  });
  assert.equal(server.status, 200, await server.text());
  const res = await browser(site.id, [ev({ type: 'page', anonymousId: anon, userId: user, context: { page: { path: '/honoraires' } } })]);
  assert.equal(res.status, 200, await res.text());
  const rows = d1(`SELECT DISTINCT user_id, visitor_id FROM events WHERE site_id = ${q(site.id)}`);
  assert.equal(rows.length, 1, JSON.stringify(rows));
  assert.match(rows[0].user_id, /^uh_[0-9a-f]{64}$/);
  assert.equal(rows[0].visitor_id, anon, 'the three events, by either id, are one visitor');
  assert.ok(!dumpAll().includes(user), 'the userId as sent is stored nowhere');
  // The owner still asks by the id they know.
  const ex = await fetch(`${base}/v1/subjects/export`, { method: 'POST', headers: { ...admin, 'content-type': 'application/json' }, body: JSON.stringify({ site: site.id, id: user }) });
  const data = await ex.json();
  assert.equal(ex.status, 200, JSON.stringify(data));
  assert.deepEqual(data.visitors, [anon]);
  const del = await fetch(`${base}/v1/subjects/erase`, { method: 'POST', headers: { ...admin, 'content-type': 'application/json' }, body: JSON.stringify({ site: site.id, id: user }) });
  assert.equal(del.status, 200, await del.text());
  const dump = dumpAll();
  for (const needle of [anon, rows[0].user_id]) assert.ok(!dump.includes(needle), `${needle} survived erasure`);
});

test('an erasure a failed request left pending is completed by the daily cron, objects and D1 alike', async () => {
  const site = await createSite();
  const anon = randomUUID();
  const user = `user-${randomUUID().slice(0, 8)}`;
  await populate(site.id, anon, user, `${randomUUID().slice(0, 8)}@example.org`);
  // What a request that died after writing its record (and before its last batch) leaves.
  const id = `er_test_${randomUUID().slice(0, 8)}`;
  d1(`INSERT INTO erasures (id, site_id, visitors, ids, requested_at, last_error) VALUES (${q(id)}, ${q(site.id)},
      ${q(JSON.stringify([anon]))}, ${q(JSON.stringify([anon, user]))}, ${Date.now() - 120_000}, 'the visitor object did not answer')`);
  const report = await cron();
  assert.ok(report.erasures.completed >= 1, JSON.stringify(report));
  const [record] = d1(`SELECT visitors, ids, completed_at, attempts, last_error FROM erasures WHERE id = ${q(id)}`);
  assert.deepEqual([record.visitors, record.ids, record.attempts, record.last_error], ['[]', '[]', 2, null]);
  const dump = dumpAll();
  for (const needle of [anon, user]) assert.ok(!dump.includes(needle), `${needle} survived the completed erasure`);
  const gone = await fetch(`${base}/v1/subjects/${user}?site=${site.id}`, { headers: admin });
  assert.equal(gone.status, 404);
});

test('the retention purge deletes raw events older than the site retention', async () => {
  const site = await createSite();
  const anon = randomUUID();
  await browser(site.id, [ev({ type: 'page', anonymousId: anon, context: { page: { path: '/' } } })]);
  // Age the row beyond the default retention (395 days).
  d1(`UPDATE events SET received_at = received_at - 400 * 86400000 WHERE site_id = ${q(site.id)}`);
  const report = await cron();
  assert.ok(report.events >= 1, JSON.stringify(report));
  assert.equal(d1(`SELECT COUNT(*) AS n FROM events WHERE site_id = ${q(site.id)}`)[0].n, 0);
});

test('retention reaches every place: visitor objects, sessions, conversions, credits, visitors and identity links', async () => {
  const site = await makeSite('p', { origins: [ORIGIN], retention_days: 1, conversions: [{ event: 'Appointment Booked', default_value_minor: 5000 }] });
  const DAY = 86_400_000;
  const ago = (days) => new Date(Date.now() - days * DAY).toISOString();
  const gone = randomUUID();
  const kept = randomUUID();
  const old = (anon, extra) => ev({ anonymousId: anon, timestamp: ago(2), ...extra });
  const oldPage = old(kept, { type: 'page', context: { page: { path: '/tarifs' } } });
  const res = await browser(site.id, [
    old(gone, { type: 'page', context: { page: { path: '/tarifs' } } }),
    old(gone, { type: 'identify', userId: `u-${gone.slice(0, 6)}` }),
    old(gone, { type: 'track', event: 'Appointment Booked' }),
    oldPage,
    ev({ type: 'page', anonymousId: kept, context: { page: { path: '/contact' } } }),
  ]);
  assert.equal(res.status, 200, await res.text());
  // What D1 would hold had these arrived two days ago.
  d1(`UPDATE events SET received_at = received_at - 2 * ${DAY} WHERE site_id = ${q(site.id)} AND (anonymous_id = ${q(gone)} OR message_id = ${q(oldPage.messageId)})`);
  d1(`UPDATE visitors SET last_seen = last_seen - 2 * ${DAY} WHERE site_id = ${q(site.id)} AND visitor_id = ${q(gone)}`);
  const byGone = `site_id = ${q(site.id)} AND visitor_id = ${q(gone)}`;
  assert.equal(d1(`SELECT COUNT(*) AS n FROM credits WHERE ${byGone}`)[0].n > 0, true);
  const report = await cron();
  assert.ok(report.visitor_objects.dropped >= 1 && report.visitor_objects.swept >= 2, JSON.stringify(report));
  for (const table of ['events', 'sessions', 'conversions', 'credits', 'visitors', 'identities']) {
    assert.equal(d1(`SELECT COUNT(*) AS n FROM ${table} WHERE ${byGone}`)[0].n, 0, table);
  }
  // Its object deleted itself: nothing is held about it any more.
  const ex = await fetch(`${base}/v1/subjects/${gone}?site=${site.id}`, { headers: admin });
  assert.equal(ex.status, 404, await ex.text());
  // The other visitor keeps only what is within the retention, in D1 and in its object.
  const keptEx = await (await fetch(`${base}/v1/subjects/${kept}?site=${site.id}`, { headers: admin })).json();
  assert.deepEqual(keptEx.visitor_objects[0].state.ledger.map((r) => r.payload.context.page.path), ['/contact']);
  assert.equal(keptEx.tables.events.length, 1);
  assert.equal(d1(`SELECT COUNT(*) AS n FROM visitors WHERE site_id = ${q(site.id)} AND visitor_id = ${q(kept)}`)[0].n, 1);
});

const withdraw = (body, headers = { origin: ORIGIN }) =>
  fetch(`${base}/v1/consent`, { method: 'POST', headers, body: typeof body === 'string' ? body : JSON.stringify(body) });
const visitorRow = (site, anon) =>
  d1(`SELECT events, score_milli, tier, drivers FROM visitors WHERE site_id = ${q(site)} AND visitor_id = ${q(anon)}`)[0];

test('a withdrawal (POST /v1/consent) cuts the visitor profile down by the core, also for events that arrive after it', async () => {
  const site = await createSite();
  const anon = randomUUID();
  const t0 = Date.now();
  const at = (ms) => new Date(t0 + ms).toISOString();
  const pricing = (ms, stamp = consent) =>
    ev({ type: 'page', anonymousId: anon, timestamp: at(ms), consent: stamp, context: { page: { path: '/pricing', url: 'https://clinic.example/pricing?gclid=abc' }, click_ids: { gclid: 'abc' } } });
  assert.equal((await browser(site.id, [pricing(-60_000)])).status, 200);
  const scored = visitorRow(site.id, anon);
  assert.ok(scored.score_milli > 0, JSON.stringify(scored));
  assert.notEqual(scored.drivers, '[]');

  // Personalization withdrawn: the profile goes, the analytics record stays.
  const noPersonal = { analytics: true, personalization: false, marketing: true, policy: 1 };
  const res = await withdraw({ site: site.id, anonymousId: anon, consent: noPersonal, timestamp: at(-30_000) });
  const body = await res.json();
  assert.equal(res.status, 200, JSON.stringify(body));
  assert.equal(res.headers.get('access-control-allow-origin'), ORIGIN);
  assert.deepEqual(body, { withdrawn: true, kept: 1, removed: 0 }, 'counts of the device\'s own events only');
  assert.deepEqual(visitorRow(site.id, anon), { events: 1, score_milli: 0, tier: 'cold', drivers: '[]' });

  // An in-flight event captured before the withdrawal (stamped with
  // personalization) arrives after it: cut down the same way, no score.
  assert.equal((await browser(site.id, [pricing(-45_000)])).status, 200);
  assert.deepEqual(visitorRow(site.id, anon), { events: 2, score_milli: 0, tier: 'cold', drivers: '[]' });
  // A later event stamped with personalization, but no new choice on
  // record: held to the withdrawal (the stamp is only what the page wrote).
  assert.equal((await browser(site.id, [pricing(-20_000)])).status, 200);
  assert.deepEqual(visitorRow(site.id, anon), { events: 3, score_milli: 0, tier: 'cold', drivers: '[]' });
  // Granted again (the module reports the grant): new events score again.
  const grant = await withdraw({ site: site.id, anonymousId: anon, consent, timestamp: at(-10_000) });
  assert.deepEqual(await grant.json(), { withdrawn: true, kept: 3, removed: 0 });
  await browser(site.id, [pricing(-1_000)]);
  assert.ok(visitorRow(site.id, anon).score_milli > 0);

  const ex = await (await fetch(`${base}/v1/subjects/${anon}?site=${site.id}`, { headers: admin })).json();
  const ledger = ex.visitor_objects[0].state.ledger;
  assert.deepEqual(ledger.map((r) => r.payload.consent.personalization), [false, false, false, true]);
  // The folded withdrawal and both receipts, the visitor's choices on record.
  assert.deepEqual(ex.visitor_objects[0].state.withdrawals.map((w) => [w.kind, JSON.parse(w.consent).personalization]).sort(), [
    ['receipt', false],
    ['receipt', true],
    ['withdrawal', false],
  ]);
  // The raw events keep the consent they were captured under.
  assert.equal(ex.tables.events.length, 4);

  // Analytics withdrawn: nothing of the ledger or the journey stays in the object.
  const none = { analytics: false, personalization: false, marketing: false, policy: 1 };
  const all = await (await withdraw({ site: site.id, anonymousId: anon, consent: none, timestamp: at(0) })).json();
  assert.deepEqual(all, { withdrawn: true, kept: 0, removed: 4 });
  assert.deepEqual(visitorRow(site.id, anon), { events: 0, score_milli: 0, tier: 'cold', drivers: '[]' });
  const after = await (await fetch(`${base}/v1/subjects/${anon}?site=${site.id}`, { headers: admin })).json();
  assert.deepEqual(after.visitor_objects[0].state.ledger, []);
  assert.deepEqual(after.visitor_objects[0].state.journey, []);
});

test('POST /v1/consent rejects bad input with a JSON error naming the problem', async () => {
  const site = await createSite();
  const good = { site: site.id, anonymousId: randomUUID(), consent: { ...consent, personalization: false }, timestamp: new Date().toISOString() };
  // Nothing held for that id: nothing to do, and nothing stored.
  const unknown = await withdraw(good);
  assert.equal(unknown.status, 200);
  assert.deepEqual(await unknown.json(), { withdrawn: false, kept: 0, removed: 0 });
  for (const [body, status, code, mentions] of [
    [{ ...good, anonymousId: 'me' }, 400, 'invalid_withdrawal', 'anonymousId'],
    [{ ...good, consent: { analytics: 'no' } }, 400, 'invalid_withdrawal', 'consent'],
    [{ ...good, timestamp: 'yesterday' }, 400, 'invalid_withdrawal', 'timestamp'],
    [{ ...good, timestamp: new Date(Date.now() + 3600_000).toISOString() }, 400, 'invalid_withdrawal', 'timestamp'],
    [{ ...good, userId: 'u1' }, 400, 'invalid_withdrawal', 'userId'],
    [{ ...good, site: undefined }, 400, 'invalid_withdrawal', 'site'],
    [{ ...good, site: 'no-such-site' }, 404, 'unknown_site', 'no-such-site'],
  ]) {
    const r = await withdraw(body);
    const b = await r.json();
    assert.equal(r.status, status, JSON.stringify(b));
    assert.equal(b.error.code, code);
    assert.ok(b.error.message.includes(mentions), b.error.message);
  }
  const foreign = await withdraw(good, { origin: 'https://evil.example' });
  assert.equal(foreign.status, 403);
  assert.equal((await foreign.json()).error.code, 'origin_not_allowed');
  const notJson = await withdraw('{', {});
  assert.equal(notJson.status, 400);
  assert.equal((await notJson.json()).error.code, 'invalid_json');
});
