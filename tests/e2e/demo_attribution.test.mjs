// Browser → edge, end to end: a visitor lands on the demo site from an
// e-mail campaign in real Chromium, consents, books — and the conversion is in
// the attribution report, credited to Email, within one second of the batch
// reaching the collector. The demo site is the seeded `demo` site
// (migrations/seed/demo.sql), whose config makes "Book Clicked" a conversion.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { base, admin, fetch, launchChromium, until } from './lib.mjs';

let browser;
before(async () => {
  browser = await launchChromium();
});
after(() => browser?.close());

/** Email's conversions under the last-touch model in the demo's report. */
async function emailConversions() {
  const res = await fetch(`${base}/v1/reports/attribution?site=demo`, { headers: admin });
  const body = await res.json();
  assert.equal(res.status, 200, JSON.stringify(body));
  const row = (body.models.last ?? []).find((r) => r.channel === 'Email');
  return row?.conversions ?? 0;
}

test('a conversion on the demo site is attributed in the report within one second', async () => {
  const before = await emailConversions();
  const context = await browser.newContext();
  // Automated Chromium is filtered as a bot; this is the documented switch for tests.
  await context.addInitScript(() => (window.mf_allow_bots = true));
  const page = await context.newPage();
  const campaign = `e2e-${randomUUID().slice(0, 8)}`;
  await page.goto(`${base}/demo/tarifs/?utm_source=newsletter&utm_medium=email&utm_campaign=${campaign}`);
  await page.evaluate(() => mf('consent', { analytics: true, personalization: true, marketing: true }));
  // The click counts once the module listens: on a cold Worker (a fresh clone's
  // first run) its wasm can take longer to arrive than the test takes to click.
  await until(async () => (await page.evaluate(() => mf('_state')))?.active === true, 15000);
  await page.evaluate(() =>
    document.getElementById('book-consultation').addEventListener('click', (e) => e.preventDefault()),
  );
  const delivered = page.waitForResponse(
    (r) => new URL(r.url()).pathname === '/v1/batch' && (r.request().postData() ?? '').includes('"Book Clicked"'),
    { timeout: 15000 },
  );
  await page.click('#book-consultation');
  const res = await delivered;
  const arrived = Date.now();
  assert.equal(res.status(), 200, await res.text());
  const sent = JSON.parse(res.request().postData());
  const booked = sent.batch.find((e) => e.event === 'Book Clicked');
  assert.equal(booked.context.campaign.utm_campaign, campaign, 'the landing campaign is kept for the session');
  const answer = await res.json();
  assert.equal(answer.rejected.length, 0, JSON.stringify(answer));

  let now = before;
  let waited = 0;
  while (now <= before && waited < 5000) {
    now = await emailConversions();
    waited = Date.now() - arrived;
  }
  assert.equal(now, before + 1, 'one more conversion credited to Email under last touch');
  console.log(`demo conversion queryable ${waited} ms after its batch was answered`);
  assert.ok(waited < 1000, `attributed after ${waited} ms`);
  await context.close();
});
