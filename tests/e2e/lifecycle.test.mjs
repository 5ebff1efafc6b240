// The lead's lifecycle after the web form, against workerd + D1 + Durable
// Objects: a CRM's "Client Signed" days later inherits the path of the form
// that earned it — submitted on another device, joined by identity — and a
// repeated transaction adjusts its value instead of counting twice; money in
// the currency's own digits; the funnel takes a site's own tier names; bad
// definitions are refused with the field named.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { base, admin, fetch, d1, q, consent, createSite, signIdentity, expectError } from './lib.mjs';

const ORIGIN = 'https://cabinet.example';
const DAY = 86_400_000;
const at = (msAgo) => new Date(Date.now() - msAgo).toISOString();
const ev = (fields) => ({ messageId: randomUUID(), timestamp: at(0), consent, ...fields });
const bearer = (key) => ({ authorization: `Bearer ${key}` });
async function ok(res) {
  const body = await res.json();
  assert.equal(res.status, 200, JSON.stringify(body));
  return body;
}
const browser = (site, batch) =>
  fetch(`${base}/v1/batch`, { method: 'POST', headers: { 'content-type': 'text/plain', origin: ORIGIN }, body: JSON.stringify({ site, batch }) });
const server = (site, batch) =>
  fetch(`${base}/v1/events`, { method: 'POST', headers: { 'content-type': 'application/json', ...bearer(site.server_key) }, body: JSON.stringify({ site: site.id, batch }) });
const page = (anon, path, msAgo, context = {}) =>
  ev({ type: 'page', anonymousId: anon, timestamp: at(msAgo), context: { page: { path, url: `${ORIGIN}${path}` }, ...context } });
const report = async (site, query = '') => ok(await fetch(`${base}/v1/reports/attribution?site=${site.id}${query}`, { headers: admin }));

const LIFECYCLE = [
  { event: 'Contact Submitted', default_value_minor: 15000, currency: 'EUR' },
  { event: 'Client Signed', value_property: 'value', currency: 'EUR', value_from: 'server', inherits: 'Contact Submitted' },
];

test('a signed client from the CRM, days after the form, is credited to the campaign that brought the form — across devices; the same transaction again adjusts it', async () => {
  const site = await createSite('life', { origins: [ORIGIN], conversions: LIFECYCLE });
  const laptop = randomUUID();
  const phone = randomUUID();
  const signed = { identitySignature: signIdentity(site.identity_secret, 'client-42') };
  // Four days ago the laptop looked at the fees page and logged in.
  await ok(await browser(site.id, [page(laptop, '/honoraires', 4 * DAY), ev({ type: 'identify', anonymousId: laptop, userId: 'client-42', timestamp: at(4 * DAY - 60_000), ...signed })]));
  // Three days ago, on the phone, the e-mail campaign brought the contact form.
  const email = { campaign: { utm_source: 'newsletter', utm_medium: 'email', utm_campaign: 'rentree' } };
  const form = ev({ type: 'track', event: 'Contact Submitted', anonymousId: phone, timestamp: at(3 * DAY - 120_000), context: email });
  await ok(await browser(site.id, [page(phone, '/contact', 3 * DAY, email), form]));
  // Then the phone logged in too: its profile joins the laptop's.
  await ok(await browser(site.id, [ev({ type: 'identify', anonymousId: phone, userId: 'client-42', timestamp: at(3 * DAY - 60_000), ...signed })]));
  // Yesterday the laptop came back directly: that open journey earned nothing yet.
  await ok(await browser(site.id, [page(laptop, '/rendez-vous', DAY)]));

  // This morning the CRM says the client signed, for 4,800.00 EUR.
  const signing = ev({ type: 'track', event: 'Client Signed', userId: 'client-42', properties: { value: '4800.00', transaction_id: 'M-2026-017' } });
  const answer = await ok(await server(site, [signing]));
  assert.equal(answer.accepted, 1);

  const rows = () => d1(`SELECT name, visitor_id, path, value_minor, inherited_from, transaction_id FROM conversions WHERE site_id = ${q(site.id)} ORDER BY ts`);
  assert.deepEqual(rows(), [
    { name: 'Contact Submitted', visitor_id: laptop, path: 'Email', value_minor: 15000, inherited_from: null, transaction_id: null },
    { name: 'Client Signed', visitor_id: laptop, path: 'Email', value_minor: 480000, inherited_from: form.messageId, transaction_id: 'M-2026-017' },
  ]);
  const signedOnly = await report(site, '&conversion=Client%20Signed');
  assert.equal(signedOnly.conversion, 'Client Signed');
  for (const model of ['first', 'last', 'last-non-direct', 'linear', 'time-decay', 'position']) {
    assert.deepEqual(signedOnly.models[model], [{ channel: 'Email', conversions: 1, value_minor: 480000 }], model);
  }
  const all = await report(site);
  assert.deepEqual(all.models.last, [{ channel: 'Email', conversions: 2, value_minor: 495000 }]);
  // The laptop's direct visit of yesterday is still an open journey, credited with nothing.
  const exported = await ok(await fetch(`${base}/v1/subjects/${laptop}?site=${site.id}`, { headers: admin }));
  const state = exported.visitor_objects[0].state;
  assert.deepEqual(state.journey.map((t) => t.channel), ['Direct']);
  assert.deepEqual(state.converted.map((c) => [c.name, c.touches.map((t) => t.channel)]).sort(), [['Client Signed', ['Email']], ['Contact Submitted', ['Email']]]);

  // A partial refund comes through as the same transaction at 3,000.00: the
  // value is replaced, not counted twice — conversion, credits and path.
  await ok(await server(site, [ev({ type: 'track', event: 'Client Signed', userId: 'client-42', properties: { value: '3000.00', transaction_id: 'M-2026-017' } })]));
  assert.deepEqual(rows().map((r) => [r.name, r.value_minor]), [['Contact Submitted', 15000], ['Client Signed', 300000]]);
  const adjusted = await report(site, '&conversion=Client%20Signed');
  assert.deepEqual(adjusted.models.last, [{ channel: 'Email', conversions: 1, value_minor: 300000 }]);
  assert.deepEqual(d1(`SELECT conversions, value_minor FROM paths WHERE site_id = ${q(site.id)} AND path = 'Email'`)[0], { conversions: 2, value_minor: 315000 });
  // Another transaction is another conversion, on the same inherited path.
  await ok(await server(site, [ev({ type: 'track', event: 'Client Signed', userId: 'client-42', properties: { value: '1200', transaction_id: 'M-2026-018' } })]));
  assert.deepEqual((await report(site, '&conversion=Client%20Signed')).models.last, [{ channel: 'Email', conversions: 2, value_minor: 420000 }]);
});

test('with no upstream conversion in its window, an inheriting conversion is credited on its own journey', async () => {
  const site = await createSite('life', { origins: [ORIGIN], conversions: LIFECYCLE });
  const anon = randomUUID();
  await ok(await browser(site.id, [page(anon, '/', 2 * DAY, { campaign: { utm_source: 'google', utm_medium: 'cpc' } })]));
  await ok(await server(site, [ev({ type: 'track', event: 'Client Signed', anonymousId: anon, properties: { value: 900 } })]));
  const [c] = d1(`SELECT path, value_minor, inherited_from FROM conversions WHERE site_id = ${q(site.id)}`);
  assert.deepEqual(c, { path: 'Paid Search', value_minor: 90000, inherited_from: null });
  await expectError(await fetch(`${base}/v1/reports/attribution?site=${site.id}&conversion=Nope`, { headers: admin }), 400, 'invalid_query');
});

test('money: a JPY conversion is stored in yen, a KWD one in fils; a browser cannot state a server-only value', async () => {
  const site = await createSite('money', {
    origins: [ORIGIN],
    conversions: [
      { event: 'Order', value_property: 'value', currency: 'JPY' },
      { event: 'Deposit', value_property: 'value', currency: 'KWD', value_from: 'server' },
    ],
  });
  const anon = randomUUID();
  await ok(await browser(site.id, [ev({ type: 'track', event: 'Order', anonymousId: anon, properties: { value: 5000 } })]));
  await ok(await browser(site.id, [ev({ type: 'track', event: 'Deposit', anonymousId: anon, properties: { value: '12.345' } })]));
  await ok(await server(site, [ev({ type: 'track', event: 'Deposit', anonymousId: anon, properties: { value: '12.345' } })]));
  // A value its currency cannot hold is refused, naming the property — never counted at another value.
  const refused = await expectError(await server(site, [ev({ type: 'track', event: 'Order', anonymousId: anon, properties: { value: '12.5' } })]), 400);
  assert.deepEqual(refused.rejected.map((r) => [r.error.field, r.error.message]), [['properties.value', 'properties.value: a whole number: this currency has no minor unit']]);
  const rows = d1(`SELECT name, value_minor, currency, source FROM conversions WHERE site_id = ${q(site.id)} ORDER BY ts, source`);
  assert.deepEqual(rows.map((r) => [r.name, r.value_minor, r.currency, r.source]), [
    ['Order', 5000, 'JPY', 'browser'],
    ['Deposit', 0, 'KWD', 'browser'],
    ['Deposit', 12345, 'KWD', 'server'],
  ]);
});

test('the funnel takes the site’s own tiers in their order: froid / tiède / chaud', async () => {
  const rules = {
    version: 'fr-1',
    decay: { kind: 'none' },
    tiers: { froid: 0, tiede: 20, chaud: 60 },
    actions: { web: { tarifs: { label: 'page des tarifs', points: 25, frequency: 'once_per_session', match: [{ page: '/tarifs' }] } } },
  };
  const site = await createSite('funnel', { origins: [ORIGIN], rules, conversions: [{ event: 'Contact Submitted' }] });
  const warm = randomUUID();
  const cold = randomUUID();
  await ok(await browser(site.id, [page(warm, '/tarifs', 60_000), page(warm, '/contact', 30_000)]));
  await ok(await browser(site.id, [page(cold, '/', 60_000), page(cold, '/blog', 30_000)]));
  const k = await ok(await fetch(`${base}/v1/reports/kpis?site=${site.id}`, { headers: admin }));
  const stage = Object.fromEntries(k.funnel.map((s) => [s.stage, s.visitors]));
  assert.deepEqual(stage, { visited: 2, engaged: 2, qualified: 1, converted: 0 });
  assert.deepEqual(k.tiers.map((t) => [t.tier, t.n]).sort(), [['froid', 1], ['tiede', 1]]);
});

test('bad conversion definitions are refused with the field and the rule named, on create and on update', async () => {
  const post = (conversions) =>
    fetch(`${base}/v1/sites`, { method: 'POST', headers: { ...admin, 'content-type': 'application/json' }, body: JSON.stringify({ id: `bad-${randomUUID().slice(0, 8)}`, origins: [ORIGIN], conversions }) });
  const cases = [
    [[{ event: 'Client Signed', inherits: 'Contact Submited' }], 'conversions[0].inherits: names no conversion definition'],
    [[{ event: 'A', inherits: 'B' }, { event: 'B', inherits: 'A' }], 'conversions[0].inherits: a cycle of inheritance'],
    [[{ event: 'A', currency: 'EUX' }], 'conversions[0].currency: an ISO 4217 code like EUR'],
    [[{ event: 'A', currency: 'JPY', max_value: '99.5' }], 'conversions[0].max_value: a whole number: this currency has no minor unit'],
    [[{ event: 'A', max_value: 'beaucoup' }], 'conversions[0].max_value: a decimal number of major units like 49.90 (no sign, exponent or separator)'],
    [[{ event: 'A' }, { event: 'A' }], 'conversions[1].event: defined twice'],
  ];
  for (const [conversions, message] of cases) {
    const body = await expectError(await post(conversions), 400);
    assert.equal(body.error.message, message, JSON.stringify(conversions));
  }
  const site = await createSite('life', { origins: [ORIGIN], conversions: LIFECYCLE });
  const patch = await fetch(`${base}/v1/sites/${site.id}`, {
    method: 'PATCH',
    headers: { ...admin, 'content-type': 'application/json' },
    body: JSON.stringify({ conversions: [{ event: 'Client Signed', inherits: 'Contact Submitted' }] }),
  });
  const refused = await expectError(patch, 400);
  assert.equal(refused.error.message, 'conversions[0].inherits: names no conversion definition');
  // What is stored reads back in its normalised form.
  const got = await ok(await fetch(`${base}/v1/sites/${site.id}`, { headers: admin }));
  assert.deepEqual(got.config.conversions[1], {
    event: 'Client Signed', value_property: 'value', default_value_minor: 0, currency: 'EUR', max_value: '100000.00',
    value_from: 'server', inherits: 'Contact Submitted', inherit_window_days: 90,
  });
});
