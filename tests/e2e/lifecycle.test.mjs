// The lead's lifecycle after the web form, against workerd + D1 + Durable
// Objects: a CRM's "Client Signed" days later inherits the path of the form
// that earned it — submitted on another device, joined by identity — and a
// repeated transaction adjusts its value instead of counting twice; money in
// the currency's own digits; the funnel takes a site's own tier names; bad
// definitions are refused with the field named; lifecycle stages (lead by the
// form, qualified by the score, client by the signing) reach the leads, the
// explanation, the export, a stage_changed webhook and the stages report.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { createServer } from 'node:http';
import { base, admin, fetch, d1, q, consent, createSite, signIdentity, expectError, DAY, at, ev, bearer, ok } from './lib.mjs';

const ORIGIN = 'https://cabinet.example';
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

test('stages: the form makes a lead, the score qualifies it, the signing makes a client — in the leads, the explanation, the export, webhooks and the stages report', async () => {
  const received = [];
  const hooks = createServer((req, res) => {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      received.push(JSON.parse(body));
      res.writeHead(200).end();
    });
  });
  await new Promise((r) => hooks.listen(0, '127.0.0.1', r));
  try {
    const staged = [LIFECYCLE[0], { ...LIFECYCLE[1], stage: 'client' }];
    const site = await createSite('stages', { origins: [ORIGIN], conversions: staged, webhooks: [`http://127.0.0.1:${hooks.address().port}/hook`] });
    const client = randomUUID();
    const lead = randomUUID();
    const visitor = randomUUID();
    const signed = { identitySignature: signIdentity(site.identity_secret, 'client-7') };
    // Five days ago: the form (lead), then, two days later, the fees page and a meeting request (15 + 40 ≥ 51: qualified).
    const formAt = at(5 * DAY);
    const qualifiedAt = at(3 * DAY);
    await ok(await browser(site.id, [
      page(client, '/contact', 5 * DAY + 60_000),
      ev({ type: 'track', event: 'Contact Submitted', anonymousId: client, timestamp: formAt }),
      ev({ type: 'identify', anonymousId: client, userId: 'client-7', timestamp: at(5 * DAY - 1000), ...signed }),
      page(client, '/pricing', 3 * DAY + 60_000),
      ev({ type: 'track', event: 'offline.meeting_request', anonymousId: client, timestamp: qualifiedAt }),
    ]));
    await ok(await browser(site.id, [page(lead, '/contact', 2 * DAY + 1000), ev({ type: 'track', event: 'Contact Submitted', anonymousId: lead, timestamp: at(2 * DAY) })]));
    await ok(await browser(site.id, [page(visitor, '/', DAY)]));
    // Yesterday the CRM: signed (client), whatever the score.
    const signedAt = at(DAY);
    await ok(await server(site, [ev({ type: 'track', event: 'Client Signed', userId: 'client-7', timestamp: signedAt, properties: { value: '2500.00' } })]));

    const leads = await ok(await fetch(`${base}/v1/leads?site=${site.id}`, { headers: admin }));
    const stageOf = Object.fromEntries(leads.leads.map((l) => [l.visitor_id, l.stage]));
    assert.deepEqual([stageOf[client], stageOf[lead], stageOf[visitor]], ['client', 'lead', null]);
    assert.deepEqual(leads.stages, ['lead', 'qualified', 'client']);
    const onlyLeads = await ok(await fetch(`${base}/v1/leads?site=${site.id}&stage=lead`, { headers: admin }));
    assert.deepEqual(onlyLeads.leads.map((l) => l.visitor_id), [lead]);
    const badStage = await expectError(await fetch(`${base}/v1/leads?site=${site.id}&stage=customer`, { headers: admin }), 400, 'invalid_query');
    assert.equal(badStage.error.message, 'stage: one of lead, qualified, client');

    // The explanation carries the history, each move with its cause.
    const explained = await ok(await fetch(`${base}/v1/subjects/client-7/score?site=${site.id}`, { headers: admin }));
    const score = explained.scores[0].score;
    assert.equal(score.stage, 'client');
    assert.deepEqual(score.stages.map((c) => [c.from, c.to, c.at, c.by.kind, c.by.event ?? c.by.score]), [
      [null, 'lead', formAt, 'conversion', 'Contact Submitted'],
      ['lead', 'qualified', qualifiedAt, 'score', 55],
      ['qualified', 'client', signedAt, 'conversion', 'Client Signed'],
    ]);
    // The subject's export holds it too.
    const exported = await ok(await fetch(`${base}/v1/subjects/export`, { method: 'POST', headers: { ...admin, 'content-type': 'application/json' }, body: JSON.stringify({ site: site.id, id: 'client-7' }) }));
    const row = exported.tables.visitors.find((v) => v.visitor_id === client);
    assert.equal(row.stage, 'client');
    assert.deepEqual(JSON.parse(row.stages).map((s) => [s.to, new Date(s.at).toISOString()]), [['lead', formAt], ['qualified', qualifiedAt], ['client', signedAt]]);

    // One stage_changed webhook per move, signed like every delivery.
    const deadline = Date.now() + 20_000;
    const moves = () => received.filter((b) => b.type === 'stage_changed');
    while (Date.now() < deadline && moves().length < 4) await new Promise((r) => setTimeout(r, 250));
    assert.deepEqual(moves().map((b) => [b.visitor, b.data.to]).sort(), [[client, 'client'], [client, 'lead'], [client, 'qualified'], [lead, 'lead']].sort());

    // The stages report: entries in the period, who is where now, and how the previous stage's entrants went on.
    const from = encodeURIComponent(at(10 * DAY));
    const rep = await ok(await fetch(`${base}/v1/reports/stages?site=${site.id}&from=${from}`, { headers: admin }));
    const by = Object.fromEntries(rep.stages.map((r) => [r.stage, r]));
    assert.deepEqual([by.lead.entered, by.lead.current, by.lead.from_previous], [2, 1, null]);
    assert.deepEqual(by.qualified.from_previous, { stage: 'lead', visitors: 2, moved: 1, rate: 0.5, median_ms: Date.parse(qualifiedAt) - Date.parse(formAt) });
    assert.deepEqual([by.qualified.entered, by.qualified.current], [1, 0]);
    assert.deepEqual(by.client.from_previous, { stage: 'qualified', visitors: 1, moved: 1, rate: 1, median_ms: Date.parse(signedAt) - Date.parse(qualifiedAt) });
    assert.equal(by.client.label, 'Client');
    // A period after the form: the lead stage had no entrants then.
    const late = await ok(await fetch(`${base}/v1/reports/stages?site=${site.id}&from=${encodeURIComponent(at(DAY + 60_000))}`, { headers: admin }));
    assert.deepEqual(late.stages.map((r) => [r.stage, r.entered]), [['lead', 0], ['qualified', 0], ['client', 1]]);
    const csv = await (await fetch(`${base}/v1/reports/stages?site=${site.id}`, { headers: { ...admin, accept: 'text/csv' } })).text();
    assert.equal(csv.split('\r\n')[0], 'stage,label,entered,current,previous_stage,moved_from_previous,rate,median_ms');
  } finally {
    hooks.close();
  }
});

test('stages that do not fit are refused with the field and the rule named: an unknown stage, rules that drop a named stage, stages out of order', async () => {
  const post = (body) =>
    fetch(`${base}/v1/sites`, { method: 'POST', headers: { ...admin, 'content-type': 'application/json' }, body: JSON.stringify({ id: `bad-${randomUUID().slice(0, 8)}`, origins: [ORIGIN], ...body }) });
  const unknown = await expectError(await post({ conversions: [{ event: 'Client Signed', stage: 'customer' }] }), 400, 'invalid_config');
  assert.equal(unknown.error.message, "conversions[0].stage: stage `customer` is not one of the rules' stages (lead, qualified, client)");
  const rules = { version: 'x-1', decay: { kind: 'none' }, tiers: { low: 0, high: 40 }, actions: { web: { rdv: { points: 45, frequency: 'once_per_visitor' } } } };
  const disorder = await expectError(await post({ rules: { ...rules, stages: [{ id: 'chaud', label: 'Chaud', min_score: 80 }, { id: 'tiede', label: 'Tiède', min_score: 20 }] } }), 400, 'invalid_config');
  assert.match(disorder.error.message, /stages\[1\]\.min_score: stages out of order: 20 is not above the min_score of `chaud` \(80\)/);
  // A site whose signing enters `client`: new rules without that stage are refused, and nothing changes.
  const site = await createSite('life', { origins: [ORIGIN], conversions: [LIFECYCLE[0], { ...LIFECYCLE[1], stage: 'client' }] });
  const patch = await fetch(`${base}/v1/sites/${site.id}`, { method: 'PATCH', headers: { ...admin, 'content-type': 'application/json' }, body: JSON.stringify({ rules }) });
  const dropped = await expectError(patch, 400, 'invalid_config');
  assert.equal(dropped.error.message, "conversions[1].stage: stage `client` is not one of the rules' stages (none)");
  const got = await ok(await fetch(`${base}/v1/sites/${site.id}`, { headers: admin }));
  assert.equal(got.config.conversions[1].stage, 'client');
});
