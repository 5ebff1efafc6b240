// Customers against workerd + D1 + Durable Objects: a site's valued
// conversions, sent by its server over four weeks, become its book after the
// daily refit (the cron's own code, run by the test route) — one row per
// customer with the first channel, value to date in the site's currency,
// purchase days, the models' predictions and a segment that follows the
// site's thresholds (recomputed here from the documented rules, not by the
// core); cohorts by first channel and first month add up to what was sent;
// a share link reads the cohorts but not the people; erasure and bad input.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { base, ADMIN, admin, fetch, d1, q, createSite, expectError, launchChromium, until, DAY, at, ev, bearer, ok } from './lib.mjs';

const ORIGIN = 'https://comptable.example';
const server = (site, batch) =>
  fetch(`${base}/v1/events`, { method: 'POST', headers: { 'content-type': 'application/json', ...bearer(site.server_key) }, body: JSON.stringify({ site: site.id, batch }) });
const get = (path, auth = admin) => fetch(`${base}${path}`, { headers: auth });

const RULES = { new_days: 7, at_risk_days: 12, lapsed_days: 22, at_risk_p_alive: 0.5, lapsed_p_alive: 0.15 };
const CONVERSIONS = [
  { event: 'Invoice Paid', value_property: 'value', currency: 'EUR', value_from: 'server' },
  { event: 'Course Paid', value_property: 'value', currency: 'USD', value_from: 'server' },
];
const EMAIL = { campaign: { utm_source: 'newsletter', utm_medium: 'email', utm_campaign: 'bilan' } };

/** The segment by the documented rules, first match wins. */
function segmentOf(c, now, threshold) {
  const days = (iso) => Math.floor(now / DAY) - Math.floor(Date.parse(iso) / DAY);
  const sinceLast = days(c.last_purchase);
  const sinceFirst = days(c.first_purchase);
  const worth = c.value_minor + (c.predicted_minor ?? 0);
  if ((c.p_alive !== null && c.p_alive < RULES.lapsed_p_alive) || sinceLast >= RULES.lapsed_days) return 'lapsed';
  if (sinceFirst < RULES.new_days) return 'new';
  if ((c.p_alive !== null && c.p_alive < RULES.at_risk_p_alive) || sinceLast >= RULES.at_risk_days) return 'at_risk';
  if (threshold !== null && worth >= threshold) return 'high_value';
  return 'occasional';
}

test('the daily refit books each customer with value, predictions and the segment the site\'s thresholds give; cohorts add up; share links see no person', async () => {
  const site = await createSite('cust', { origins: [ORIGIN], conversions: CONVERSIONS, customers: RULES });
  // 40 clients: purchase days spread over 28 days (some buy once, some come
  // back monthly, weekly, or stopped), half of them first brought by e-mail.
  const sent = new Map();
  for (let i = 0; i < 40; i++) {
    const anon = randomUUID();
    const count = 1 + (i % 5);
    const firstAgo = 1 + ((i * 7) % 28);
    const gap = Math.max(1, Math.floor(firstAgo / count));
    const days = [...new Set(Array.from({ length: count }, (_, k) => Math.max(0, firstAgo - k * gap)))];
    const context = i % 2 === 0 ? EMAIL : {};
    const batch = [ev({ type: 'page', anonymousId: anon, timestamp: at(firstAgo * DAY + 60_000), context: { page: { path: '/tarifs', url: `${ORIGIN}/tarifs` }, ...context } })];
    let value = 0;
    for (const d of days) {
      const minor = 12000 + ((i * 3301 + d * 977) % 90000);
      value += minor;
      batch.push(ev({ type: 'track', event: 'Invoice Paid', anonymousId: anon, timestamp: at(d * DAY), properties: { value: (minor / 100).toFixed(2) } }));
    }
    await ok(await server(site, batch));
    sent.set(anon, { value, channel: i % 2 === 0 ? 'Email' : 'Direct', days: new Set(batch.slice(1).map((e) => Math.floor(Date.parse(e.timestamp) / DAY))) });
  }
  // One conversion in another currency: a purchase the book cannot sum with euros.
  const stranger = randomUUID();
  await ok(await server(site, [ev({ type: 'track', event: 'Course Paid', anonymousId: stranger, properties: { value: '99.00' } })]));

  // Before the refit the report says there is no book yet.
  const empty = await ok(await get(`/v1/reports/customers?site=${site.id}`));
  assert.equal(empty.fitted_at, null);
  assert.deepEqual(empty.customers, []);

  const cron = await ok(await fetch(`${base}/__test/cron?site=${site.id}`, { method: 'POST' }));
  assert.equal(cron.customers.refitted, 1, JSON.stringify(cron.customers));
  assert.deepEqual(cron.customers.failed, []);
  assert.equal(cron.customers.customers, 40);
  console.log(`# customers refit: 40 customers, ${[...sent.values()].reduce((n, s) => n + s.days.size, 0)} purchase days, slowest site ${cron.customers.slowest_ms} ms`);

  const now = Date.now();
  const book = await ok(await get(`/v1/reports/customers?site=${site.id}&limit=1000`));
  assert.ok(book.fitted_at);
  assert.equal(book.currency, 'EUR');
  assert.equal(book.summary.other_currency_conversions, 1);
  assert.equal(book.summary.customers, 40);
  assert.equal(book.customers.length, 40);
  const fit = book.summary.fit.bg_nbd;
  assert.ok(fit.params || typeof fit.error === 'string', JSON.stringify(fit));
  const threshold = book.summary.high_value_threshold_minor;
  for (const c of book.customers) {
    const s = sent.get(c.visitor_id);
    assert.ok(s, `${c.visitor_id} was not sent`);
    assert.equal(c.value_minor, s.value, 'value to date is the sum sent, in cents');
    assert.equal(c.purchase_days, s.days.size);
    assert.equal(c.first_channel, s.channel);
    assert.equal(Math.floor(Date.parse(c.first_purchase) / DAY), Math.min(...s.days));
    assert.equal(Math.floor(Date.parse(c.last_purchase) / DAY), Math.max(...s.days));
    if (fit.params) {
      assert.ok(c.p_alive > 0 && c.p_alive <= 1, `p_alive ${c.p_alive}`);
    } else {
      assert.equal(c.p_alive, null, 'no model, no P(alive)');
    }
    assert.equal(c.segment, segmentOf(c, now, threshold), JSON.stringify(c));
  }
  // Highest value first; the segment totals add up to the rows.
  const worth = book.customers.map((c) => c.value_minor + (c.predicted_minor ?? 0));
  assert.deepEqual(worth, [...worth].sort((a, b) => b - a));
  for (const seg of book.segments) {
    const rows = book.customers.filter((c) => c.segment === seg.segment);
    assert.equal(seg.customers, rows.length, seg.segment);
    assert.equal(seg.value_minor, rows.reduce((n, c) => n + c.value_minor, 0), seg.segment);
  }
  assert.ok(new Set(book.customers.map((c) => c.segment)).size >= 3, 'the spread of histories lands in several segments');
  const news = await ok(await get(`/v1/reports/customers?site=${site.id}&segment=new`));
  assert.deepEqual(news.customers.map((c) => c.visitor_id).sort(), book.customers.filter((c) => c.segment === 'new').map((c) => c.visitor_id).sort());
  const csv = await (await fetch(`${base}/v1/reports/customers?site=${site.id}&limit=1000`, { headers: { ...admin, accept: 'text/csv' } })).text();
  assert.equal(csv.trim().split('\n').length, 41);

  // Cohorts: by first channel and by first month, the same euros in total.
  const total = [...sent.values()].reduce((n, s) => n + s.value, 0);
  const byChannel = await ok(await get(`/v1/reports/cohorts?site=${site.id}&by=first_channel`));
  assert.deepEqual(byChannel.cohorts.map((c) => [c.cohort, c.customers]), [['Direct', 20], ['Email', 20]]);
  for (const c of byChannel.cohorts) {
    const expected = [...sent.values()].filter((s) => s.channel === c.cohort).reduce((n, s) => n + s.value, 0);
    assert.equal(c.value_minor, expected, c.cohort);
    assert.equal(c.months.reduce((n, m) => n + m.value_minor, 0), expected);
    assert.equal(c.months[0].customers, c.customers);
  }
  const byMonth = await ok(await get(`/v1/reports/cohorts?site=${site.id}&by=first_month`));
  assert.equal(byMonth.cohorts.reduce((n, c) => n + c.value_minor, 0), total);
  assert.equal(byMonth.cohorts.reduce((n, c) => n + c.customers, 0), 40);
  for (const c of byMonth.cohorts) assert.match(c.cohort, /^\d{4}-\d{2}$/);
  await expectError(await get(`/v1/reports/cohorts?site=${site.id}&by=first_touch`), 400, 'invalid_query');
  await expectError(await get(`/v1/reports/customers?site=${site.id}&segment=vip`), 400, 'invalid_query');

  // A share link: aggregates (cohorts) yes, people (customers) no.
  const share = await (await fetch(`${base}/v1/sites/${site.id}/shares`, { method: 'POST', headers: { ...admin, 'content-type': 'application/json' }, body: JSON.stringify({ name: 'partners' }) })).json();
  const secret = { authorization: `Bearer ${new URL(share.url).hash.replace('#share=', '')}` };
  assert.equal((await get(`/v1/reports/cohorts?site=${site.id}`, secret)).status, 200);
  await expectError(await get(`/v1/reports/customers?site=${site.id}`, secret), 403, 'forbidden');

  // The dashboard: the segments as bars and the most valuable customers for
  // the owner; the cohort curves and table for everyone; no person on a share link.
  const browser = await launchChromium();
  try {
    let context = await browser.newContext();
    let page = await context.newPage();
    await page.goto(`${base}/dashboard/?site=${site.id}`);
    await page.fill('input[name=token]', ADMIN);
    await page.click('#controls button[type=submit]');
    await until(async () => (await page.locator('#customers tbody tr').count()) === 20, 8000);
    assert.equal(await page.locator('#segments .bar').count(), 5);
    const newBar = await page.locator('#segments .bar', { hasText: 'New' }).locator('.n').textContent();
    assert.match(newBar, new RegExp(`^${book.segments.find((g) => g.segment === 'new').customers} · `));
    const top = await page.locator('#customers tbody tr').first().evaluate((tr) => [...tr.cells].map((c) => c.textContent));
    assert.equal(top[0], book.customers[0].visitor_id);
    assert.match(await page.locator('#customers-hint').textContent(), new RegExp(`from ${book.summary.conversions} valued conversions of 40 customers`));
    assert.equal(await page.locator('#cohorts tbody tr').count(), 2);
    assert.equal(await page.locator('#chart-cohorts canvas').count(), 1, 'the cohort curves are drawn');
    await context.close();
    context = await browser.newContext();
    page = await context.newPage();
    await page.goto(`${base}/dashboard/?site=${site.id}${new URL(share.url).hash}`);
    await until(async () => (await page.locator('#cohorts tbody tr').count()) === 2, 8000);
    assert.equal(await page.locator('#h-customers').isVisible(), false, 'a share link shows no customer');
    assert.equal(await page.locator('#customers tbody tr').count(), 0);
    await context.close();
  } finally {
    await browser.close();
  }

  // Erasure reaches the book at once, not at the next refit.
  const gone = book.customers[0].visitor_id;
  await ok(await fetch(`${base}/v1/subjects/${gone}?site=${site.id}`, { method: 'DELETE', headers: admin }));
  assert.equal(d1(`SELECT COUNT(*) AS n FROM customers WHERE site_id = ${q(site.id)} AND visitor_id = ${q(gone)}`)[0].n, 0);
  const after = await ok(await get(`/v1/reports/customers?site=${site.id}&limit=1000`));
  assert.equal(after.customers.length, 39);
  assert.ok(!JSON.stringify(after).includes(gone));
  // The next refit, from the conversions that remain, agrees.
  await ok(await fetch(`${base}/__test/cron?site=${site.id}`, { method: 'POST' }));
  assert.equal((await ok(await get(`/v1/reports/customers?site=${site.id}&limit=1000`))).customers.length, 39);
});

test('a refit on demand applies changed thresholds at once, at most once a minute, for the site\'s config holders only', async () => {
  const site = await createSite('cust', { origins: [ORIGIN], conversions: CONVERSIONS, customers: { new_days: 7, at_risk_days: 60, lapsed_days: 200 } });
  // Three clients: one paid 20 days ago only, two this week.
  for (const [i, ago] of [[0, 20], [1, 3], [2, 2]]) {
    const anon = randomUUID();
    await ok(await server(site, [ev({ type: 'track', event: 'Invoice Paid', anonymousId: anon, timestamp: at(ago * DAY), properties: { value: `${100 + i}.00` } })]));
  }
  const refit = (auth = admin) => fetch(`${base}/v1/reports/customers/refit?site=${site.id}`, { method: 'POST', headers: auth });
  const done = await ok(await refit());
  assert.equal(done.customers, 3);
  assert.equal(typeof done.refit_ms, 'number');
  const segments = async () => Object.fromEntries((await ok(await get(`/v1/reports/customers?site=${site.id}`))).segments.map((s) => [s.segment, s.customers]));
  // New for 7 days: the client of 20 days ago is not new.
  assert.equal((await segments()).new, 2);
  // Once a minute at most: the answer says when to come back.
  const soon = await refit();
  const body = await expectError(soon, 429, 'refit_too_soon');
  assert.match(body.error.message, /once a minute/);
  assert.ok(Number(soon.headers.get('retry-after')) >= 1);
  // Only who may change the site's settings: an analyst reads, cannot refit.
  const tok = await fetch(`${base}/v1/sites/${site.id}/tokens`, { method: 'POST', headers: { ...admin, 'content-type': 'application/json' }, body: JSON.stringify({ role: 'analyst', name: 'reader' }) });
  const analyst = await tok.json();
  assert.equal(tok.status, 201, JSON.stringify(analyst));
  await expectError(await refit(bearer(analyst.token)), 403);
  // New thresholds: a client first seen within 30 days is new — after a refit.
  await ok(await fetch(`${base}/v1/sites/${site.id}`, { method: 'PATCH', headers: { ...admin, 'content-type': 'application/json' }, body: JSON.stringify({ customers: { new_days: 30, at_risk_days: 60, lapsed_days: 200 } }) }));
  d1(`UPDATE customer_fits SET fitted_at = fitted_at - 61000 WHERE site_id = ${q(site.id)}`);
  assert.equal((await segments()).new, 2, 'the stored book until refitted');
  await ok(await refit());
  assert.equal((await segments()).new, 3);
});

test('segment thresholds are validated with the field named; the stored ones read back', async () => {
  const site = await createSite('cust', { origins: [ORIGIN] });
  const patch = (customers) =>
    fetch(`${base}/v1/sites/${site.id}`, { method: 'PATCH', headers: { ...admin, 'content-type': 'application/json' }, body: JSON.stringify({ customers }) });
  let body = await expectError(await patch({ at_risk_days: 30, lapsed_days: 20 }), 400);
  assert.match(body.error.message, /customers\.at_risk_days/);
  body = await expectError(await patch({ vip_minor: 100000 }), 400);
  assert.match(body.error.message, /customers\.vip_minor/);
  body = await expectError(await patch({ lapsed_p_alive: 1.5 }), 400);
  assert.match(body.error.message, /customers\.lapsed_p_alive/);
  await ok(await patch({ high_value_minor: 250000, horizon_days: 730 }));
  const stored = await ok(await get(`/v1/sites/${site.id}`));
  assert.equal(stored.config.customers.high_value_minor, 250000);
  assert.equal(stored.config.customers.horizon_days, 730);
  assert.equal(stored.config.customers.new_days, 30, 'the rest keep their defaults');
  // A site without a book yet: an empty report, not an error.
  const empty = await ok(await get(`/v1/reports/customers?site=${site.id}`));
  assert.equal(empty.summary, null);
  assert.deepEqual(empty.segments.map((s) => s.customers), [0, 0, 0, 0, 0]);
});
