// The dashboard (`/dashboard/`) in real Chromium against the running Worker:
// it reads the admin API with the token typed in, shows who earned a fresh
// conversion under every model, the lead and the paths, renders visitor-made
// text as text, and keeps the token in the tab's sessionStorage only.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { base, ADMIN, fetch, consent, createSite, launchChromium, until } from './lib.mjs';

const ORIGIN = 'https://law.example';
let browser;
before(async () => {
  browser = await launchChromium();
});
after(() => browser?.close());

test('dashboard: a fresh conversion attributed under every model, the lead, the paths; hostile text stays text', async () => {
  const site = await createSite('dash', {
    origins: [ORIGIN],
    conversions: [{ event: 'Consultation Booked', default_value_minor: 12000, currency: 'EUR' }],
  });
  const anon = randomUUID();
  const hostile = '<img src=x onerror="window.__pwned=1">';
  // One second apart: the visitor's object orders a ledger by (timestamp, messageId).
  let t = Date.now() - 10_000;
  const ev = (f) => ({ messageId: randomUUID(), timestamp: new Date((t += 1000)).toISOString(), anonymousId: anon, consent, ...f });
  const res = await fetch(`${base}/v1/batch`, {
    method: 'POST',
    headers: { origin: ORIGIN },
    body: JSON.stringify({
      site: site.id,
      batch: [
        ev({ type: 'page', context: { page: { path: '/pricing', url: `${ORIGIN}/pricing?utm_source=newsletter&utm_medium=email` }, campaign: { utm_source: 'newsletter', utm_medium: 'email' } } }),
        ev({ type: 'identify', userId: hostile }),
        ev({ type: 'track', event: 'Consultation Booked', properties: { mf_element: 'book' } }),
      ],
    }),
  });
  assert.equal(res.status, 200, await res.text());

  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto(`${base}/dashboard/?site=${site.id}`);
  assert.equal(await page.locator('#status').textContent(), 'Enter the site and the admin token.');
  assert.equal(await page.inputValue('input[name=site]'), site.id);

  // A wrong token: the API's own error is shown, nothing rendered.
  await page.fill('input[name=token]', 'wrong');
  await page.click('button[type=submit]');
  await until(async () => (await page.locator('#status').getAttribute('class')) === 'error');
  assert.equal(await page.locator('#attribution tr').count(), 0);

  await page.fill('input[name=token]', ADMIN);
  await page.click('button[type=submit]');
  await until(async () => (await page.locator('#status').textContent()).startsWith(`Site ${site.id} as of`));

  const head = await page.locator('#attribution thead th').allTextContents();
  assert.deepEqual(head, ['Channel', 'first', 'last', 'last-non-direct', 'linear', 'time-decay', 'position', 'markov', 'shapley']);
  const rows = await page.locator('#attribution tbody tr').evaluateAll((trs) => trs.map((tr) => [...tr.cells].map((c) => c.textContent)));
  assert.deepEqual(rows, [['Email', ...Array(8).fill('1 (EUR 120.00)')]]);
  const overview = await page.locator('#overview div').evaluateAll((ds) => Object.fromEntries(ds.map((d) => [d.firstChild.textContent, d.lastChild.textContent])));
  assert.equal(overview.Conversions, '1');
  assert.equal(overview.Value, 'EUR 120.00');

  const lead = await page.locator('#leads tbody tr').first().evaluate((tr) => [...tr.cells].map((c) => c.textContent));
  assert.equal(lead[0], anon);
  assert.equal(lead[1], hostile, 'a visitor-made id is shown as text');
  assert.match(lead[4], /web\.pricing_view \+15/);
  assert.equal(await page.locator('#leads img').count(), 0);
  assert.equal(await page.evaluate(() => window.__pwned), undefined);

  assert.deepEqual(await page.locator('#paths tbody tr').first().evaluate((tr) => [...tr.cells].map((c) => c.textContent)), ['Email', '1', 'EUR 120.00', '0']);
  assert.equal(await page.locator('#fastest tbody tr td').first().textContent(), 'Email');

  // Tier filter: the tiers come from the site's rules; "hot" holds nobody yet.
  await until(async () => (await page.locator('select[name=tier] option').count()) === 5);
  await page.selectOption('select[name=tier]', 'hot');
  await page.click('button[type=submit]');
  await until(async () => (await page.locator('#leads tbody td').first().textContent()) === 'No visitor scored yet.');

  // The token stays in this tab's sessionStorage only.
  const stored = await page.evaluate(() => ({ local: Object.keys(localStorage), session: Object.keys(sessionStorage) }));
  assert.deepEqual(stored, { local: [], session: ['mf_dashboard_token'] });
  assert.deepEqual(await context.cookies(), []);
  await context.close();
});

test('dashboard: money in the minor unit of the site currency (JPY has none)', async () => {
  const site = await createSite('dashjpy', { origins: [ORIGIN], conversions: [{ event: 'Order', default_value_minor: 4500, currency: 'JPY' }] });
  const anon = randomUUID();
  const res = await fetch(`${base}/v1/batch`, {
    method: 'POST',
    headers: { origin: ORIGIN },
    body: JSON.stringify({ site: site.id, batch: [{ type: 'track', event: 'Order', anonymousId: anon, messageId: randomUUID(), timestamp: new Date().toISOString(), consent }] }),
  });
  assert.equal(res.status, 200, await res.text());
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto(`${base}/dashboard/?site=${site.id}`);
  await page.fill('input[name=token]', ADMIN);
  await page.click('button[type=submit]');
  await until(async () => (await page.locator('#status').textContent()).startsWith(`Site ${site.id} as of`));
  const overview = await page.locator('#overview div').evaluateAll((ds) => Object.fromEntries(ds.map((d) => [d.firstChild.textContent, d.lastChild.textContent])));
  assert.equal(overview.Value, 'JPY 4,500');
  await context.close();
});
