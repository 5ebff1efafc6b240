// The dashboard (`/dashboard/`) in real Chromium against the running Worker:
// it reads the admin API with the token typed in, shows who earned a fresh
// conversion under every model, the lead and the paths, renders visitor-made
// text as text, and keeps the token in the tab's sessionStorage only.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { base, ADMIN, admin, fetch, consent, createSite, launchChromium, until, d1, q, root } from './lib.mjs';
import AxeBuilder from '@axe-core/playwright';
import { mkdirSync } from 'node:fs';
import { createServer } from 'node:http';
import { join } from 'node:path';

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

  // Served with a strict CSP, never framed, never sniffed.
  for (const path of ['/dashboard/', '/dashboard/dashboard.js']) {
    const r = await fetch(`${base}${path}`);
    await r.body?.cancel();
    assert.match(r.headers.get('content-security-policy') ?? '', /default-src 'none'; script-src 'self';.*frame-ancestors 'none'/, path);
    assert.equal(r.headers.get('x-content-type-options'), 'nosniff', path);
  }
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto(`${base}/dashboard/?site=${site.id}`);
  assert.equal(await page.locator('#status').textContent(), 'Enter the site and your token (owner or analyst; the operator\'s admin token works too).');
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
  assert.deepEqual(rows, [['Email', ...Array(8).fill('1 (€120.00)')]]);
  const overview = await page.locator('#overview div').evaluateAll((ds) => Object.fromEntries(ds.map((d) => [d.firstChild.textContent, d.lastChild.textContent])));
  assert.equal(overview.Conversions, '1');
  assert.equal(overview.Value, '€120.00');

  const lead = await page.locator('#leads tbody tr').first().evaluate((tr) => [...tr.cells].map((c) => c.textContent));
  assert.equal(lead[0], anon);
  assert.equal(lead[1], hostile, 'a visitor-made id is shown as text');
  assert.equal(lead[4], 'lead', 'the booking made the visitor a lead (the default rules\' any-conversion stage)');
  assert.match(lead[5], /web\.pricing_view \+15/);
  assert.equal(await page.locator('#leads img').count(), 0);
  assert.equal(await page.evaluate(() => window.__pwned), undefined);

  assert.deepEqual(await page.locator('#paths tbody tr').first().evaluate((tr) => [...tr.cells].map((c) => c.textContent)), ['Email', '1', '€120.00', '0']);
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
  const site = await createSite('dashjpy', { origins: [ORIGIN], conversions: [{ event: 'Order', value_property: 'value', currency: 'JPY' }] });
  const anon = randomUUID();
  const res = await fetch(`${base}/v1/batch`, {
    method: 'POST',
    headers: { origin: ORIGIN },
    body: JSON.stringify({ site: site.id, batch: [{ type: 'track', event: 'Order', properties: { value: 5000 }, anonymousId: anon, messageId: randomUUID(), timestamp: new Date().toISOString(), consent }] }),
  });
  assert.equal(res.status, 200, await res.text());
  // 5000 yen are 5000 minor units (not ×100): the core reads the currency's digits.
  await until(() => d1(`SELECT value_minor FROM conversions WHERE site_id = ${q(site.id)}`)[0]?.value_minor === 5000);
  const kpis = await (await fetch(`${base}/v1/reports/kpis?site=${site.id}`, { headers: admin })).json();
  assert.deepEqual([kpis.currency, kpis.currency_digits, kpis.value_minor], ['JPY', 0, 5000]);
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto(`${base}/dashboard/?site=${site.id}`);
  await page.fill('input[name=token]', ADMIN);
  await page.click('button[type=submit]');
  await until(async () => (await page.locator('#status').textContent()).startsWith(`Site ${site.id} as of`));
  const overview = await page.locator('#overview div').evaluateAll((ds) => Object.fromEntries(ds.map((d) => [d.firstChild.textContent, d.lastChild.textContent])));
  assert.equal(overview.Value, '¥5,000');
  await context.close();
});

test('dashboard: the installation check shows the tag to copy, waits, then turns green naming the first page view and its consent', async () => {
  const site = await createSite('dashinst', { origins: [ORIGIN] });
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto(`${base}/dashboard/?site=${site.id}`);
  await page.fill('input[name=token]', ADMIN);
  await page.click('button[type=submit]');
  const status = page.locator('#install-status');
  await until(async () => (await status.textContent()).startsWith(`Waiting for the first event from ${ORIGIN}`));
  assert.equal(await status.getAttribute('class'), 'waiting');
  assert.equal(await page.locator('#install-tag').textContent(), `<script async src="${base}/mf.js" data-site="${site.id}" data-respect-dnt></script>`);
  // A server event is not the tag working: still waiting.
  const server = await fetch(`${base}/v1/events`, {
    method: 'POST',
    headers: { authorization: `Bearer ${site.server_key}`, 'content-type': 'application/json' },
    body: JSON.stringify({ site: site.id, batch: [{ type: 'track', event: 'Call Logged', userId: 'crm-7', messageId: randomUUID(), timestamp: new Date().toISOString(), consent }] }),
  });
  assert.equal(server.status, 200, await server.text());
  // The site's first page view, sent by the tag on a real page (served here under the
  // collector's origin, which the test environment lets every site use).
  const pageContext = await browser.newContext();
  await pageContext.addInitScript(() => { window.mf_allow_bots = true; });
  const sitePage = await pageContext.newPage();
  await sitePage.route(`${base}/demo/installed.html`, (route) => route.fulfill({
    contentType: 'text/html; charset=utf-8',
    body: `<!doctype html><html lang="fr"><head><title>Honoraires</title>
      <script>window.mf = window.mf || function () { (mf.q = mf.q || []).push(arguments); };</script>
      <script async src="/mf.js" data-site="${site.id}"></script></head>
      <body><h1>Honoraires</h1><script>mf('consent', { analytics: true });</script></body></html>`,
  }));
  await sitePage.goto(`${base}/demo/installed.html`);
  await until(async () => (await status.getAttribute('class')) === 'ok', 8000);
  const text = await status.textContent();
  assert.match(text, /^Working: page view of \/demo\/installed\.html received /);
  assert.match(text, /consent: analytics granted, personalization refused, marketing refused\. \d+ event\(s\) from the site’s pages in the last 24 hours\.$/);
  await pageContext.close();
  await context.close();
});

test('dashboard: charts over time in the site time zone, every model side by side, funnel, stages and TTA; 10,000 conversions load in under a second; usable at 360 px', async () => {
  const site = await createSite('dashcharts', { origins: [ORIGIN], timezone: 'Europe/Paris', conversions: [{ event: 'Contact Submitted', default_value_minor: 15000, currency: 'EUR' }] });
  const now = Date.now();
  const S = q(site.id);
  // 10,000 conversions over the last 28 days (one every 4 minutes), three paths, and their credits.
  d1(`INSERT INTO conversions (site_id, message_id, visitor_id, name, value_minor, currency, ts, received_at, tta_ms, path)
      WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < 9999)
      SELECT ${S}, printf('00000000-0000-4000-8000-%012d', i), 'v' || (i % 2000), 'Contact Submitted', 15000, 'EUR',
        ${now} - i * 240000, ${now} - i * 240000, 40 + (i % 7) * 150,
        CASE i % 3 WHEN 0 THEN 'Email' WHEN 1 THEN 'Paid Search' ELSE 'Email > Direct' END FROM n`);
  d1(`INSERT INTO credits (site_id, message_id, visitor_id, model, channel, share, credit_minor)
      SELECT c.site_id, c.message_id, c.visitor_id, m.model,
        CASE WHEN c.path = 'Email > Direct' THEN (CASE m.model WHEN 'first' THEN 'Email' ELSE 'Direct' END) ELSE c.path END, 1.0, c.value_minor
      FROM conversions c, (SELECT 'last' AS model UNION ALL SELECT 'first') m WHERE c.site_id = ${S}`);
  d1(`INSERT INTO visitors (site_id, visitor_id, first_seen, last_seen, events, score_milli, tier)
      WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < 1999)
      SELECT ${S}, 'v' || i, ${now} - i * 1200000, ${now}, 3, (i % 90) * 1000,
        CASE WHEN i % 90 >= 76 THEN 'very_hot' WHEN i % 90 >= 51 THEN 'hot' WHEN i % 90 >= 26 THEN 'warm' ELSE 'cold' END FROM n`);

  // The series: 30 local days in Europe/Paris, every conversion counted once.
  const s = await (await fetch(`${base}/v1/reports/series?site=${site.id}&period=30d`, { headers: admin })).json();
  assert.equal(s.timezone, 'Europe/Paris');
  assert.equal(s.bucket, 'day');
  assert.equal(s.labels.length, 30);
  const sum = (xs) => xs.reduce((a, b) => a + b, 0);
  assert.equal(sum(s.channels.map((c) => sum(c.conversions))), 10000);
  assert.deepEqual(s.channels.map((c) => c.channel), ['Direct', 'Email', 'Paid Search']);
  assert.equal(sum(s.channels.map((c) => sum(c.value_minor))), 10000 * 15000);
  assert.equal(sum(s.tta.map((b) => b.conversions)), 10000);
  assert.equal(sum(s.tiers.map((t) => sum(t.visitors))), 2000);
  // The same window's KPI report credits the same conversions per channel.
  const kpis = await (await fetch(`${base}/v1/reports/kpis?site=${site.id}&model=last&from=${encodeURIComponent(s.from)}&to=${encodeURIComponent(s.to)}`, { headers: admin })).json();
  assert.deepEqual(Object.fromEntries(kpis.channels.map((c) => [c.channel, c.conversions])),
    Object.fromEntries(s.channels.map((c) => [c.channel, sum(c.conversions)])));
  // Today by hour: local midnight in Paris is 23:00 or 22:00 UTC.
  const today = await (await fetch(`${base}/v1/reports/series?site=${site.id}&period=today`, { headers: admin })).json();
  assert.equal(today.bucket, 'hour');
  assert.ok([23, 24, 25].includes(today.labels.length), String(today.labels.length));
  assert.match(today.labels[0], /^\d{4}-\d\d-\d\d 00:00$/);
  assert.match(today.from, /T2[23]:00:00\.000Z$/);
  const bad = await fetch(`${base}/v1/reports/series?site=${site.id}&period=fortnight`, { headers: admin });
  assert.equal(bad.status, 400);
  const badZone = await fetch(`${base}/v1/sites/${site.id}`, { method: 'PATCH', headers: { ...admin, 'content-type': 'application/json' }, body: JSON.stringify({ timezone: 'Mars/Olympus_Mons' }) });
  assert.equal(badZone.status, 400);
  assert.match((await badZone.json()).error.message, /^timezone: /);

  const context = await browser.newContext({ viewport: { width: 360, height: 800 } });
  const page = await context.newPage();
  await page.goto(`${base}/dashboard/?site=${site.id}`);
  await page.fill('input[name=token]', ADMIN);
  const t0 = Date.now();
  await page.click('button[type=submit]');
  await page.waitForFunction((id) => document.getElementById('status').textContent.startsWith(`Site ${id} as of`), site.id, { polling: 'raf' });
  const elapsed = Date.now() - t0;
  console.log(`dashboard: 10,000 conversions in the period, loaded and drawn in ${elapsed} ms (budget 1000 ms)`);
  assert.ok(elapsed < 1000, `loaded in ${elapsed} ms`);
  for (const id of ['chart-conversions', 'chart-value', 'chart-tiers']) {
    assert.equal(await page.locator(`#${id} canvas`).count(), 1, id);
  }
  const legend = await page.locator('#chart-conversions .u-legend').textContent();
  for (const ch of ['Direct', 'Email', 'Paid Search']) assert.ok(legend.includes(ch), legend);
  assert.match(await page.locator('#chart-conversions').getAttribute('aria-label'), /^Totals: Direct 3,333, Email 3,334, Paid Search 3,333$/);
  // Every model side by side: one group per channel, a bar per model.
  assert.deepEqual(await page.locator('#models .group').allTextContents(), ['Direct', 'Email', 'Paid Search']);
  assert.equal(await page.locator('#models .bar').count(), 3 * 8);
  assert.equal(await page.locator('#tta .bar').count(), 9);
  assert.ok((await page.locator('#funnel .bar').count()) >= 3);
  assert.ok((await page.locator('#stages .bar').count()) >= 1);
  // 360 px wide: nothing wider than the screen.
  assert.ok((await page.evaluate(() => document.documentElement.scrollWidth)) <= 360);
  // The charts at desktop width, for the README (docs/dashboard.png is a copy).
  await page.setViewportSize({ width: 1200, height: 900 });
  await page.waitForTimeout(300);
  mkdirSync(join(root, 'target', 'screenshots'), { recursive: true });
  await page.locator('section[aria-labelledby=h-time]').screenshot({ path: join(root, 'target', 'screenshots', 'dashboard-charts.png') });
  // A preset, from the keyboard: yesterday, by hour.
  await page.focus('select[name=period]');
  await page.keyboard.press('Home');
  await page.keyboard.press('ArrowDown');
  assert.equal(await page.inputValue('select[name=period]'), 'yesterday');
  await until(async () => (await page.locator('#time-hint').textContent()).startsWith('By hour in Europe/Paris'));
  await context.close();
});

test('dashboard: settings without JSON — time zone, consent, CTA variants with a live preview, conversions — through the API checks, a refusal shown beside its form', async () => {
  const site = await createSite('dashset', { origins: [ORIGIN], conversions: [{ event: 'Contact Submitted', currency: 'EUR' }] });
  const stored = async () => (await (await fetch(`${base}/v1/sites/${site.id}`, { headers: admin })).json()).config;
  // A visitor who read the pricing page under the default rules (15 points).
  const reader = randomUUID();
  const read = await fetch(`${base}/v1/batch`, { method: 'POST', headers: { origin: ORIGIN }, body: JSON.stringify({ site: site.id,
    batch: [{ type: 'page', anonymousId: reader, messageId: randomUUID(), timestamp: new Date(Date.now() - 60_000).toISOString(), consent, context: { page: { path: '/pricing', url: `${ORIGIN}/pricing` } } }] }) });
  assert.equal(read.status, 200, await read.text());
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto(`${base}/dashboard/?site=${site.id}`);
  await page.fill('input[name=token]', ADMIN);
  await page.click('#controls button[type=submit]');
  await until(async () => page.locator('#h-settings').isVisible());
  assert.equal(await page.inputValue('#set-general input[name=timezone]'), 'UTC');

  // A time zone the collector does not know: refused, named, nothing saved.
  await page.fill('#set-general input[name=timezone]', 'Mars/Olympus_Mons');
  await page.click('#set-general button[type=submit]');
  const generalError = page.locator('#set-general .field-error');
  await until(async () => generalError.isVisible());
  assert.match(await generalError.textContent(), /^timezone: /);
  // Beside its input: that input is the invalid one, and has the focus.
  assert.equal(await page.getAttribute('#set-general input[name=timezone]', 'aria-invalid'), 'true');
  assert.equal(await page.evaluate(() => document.activeElement?.name), 'timezone');
  assert.equal((await stored()).timezone, 'UTC');
  await page.fill('#set-general input[name=timezone]', 'Europe/Brussels');
  await page.click('#set-general button[type=submit]');
  await until(async () => (await page.locator('#set-general .saved').textContent()) === 'Saved.');
  assert.equal((await stored()).timezone, 'Europe/Brussels');

  // Consent and minimisation.
  await page.check('#set-consent input[name=hash_user_ids]');
  await page.fill('#set-consent input[name=remove]', 'dossier, ref_client');
  await page.click('#set-consent button[type=submit]');
  await until(async () => (await page.locator('#set-consent .saved').textContent()) === 'Saved.');
  const policy = (await stored()).consent;
  assert.equal(policy.hash_user_ids, true);
  assert.deepEqual(policy.sanitise.remove, ['dossier', 'ref_client']);

  // A CTA: one row per tier of the site's rules, previewed as typed; an unsafe link is refused.
  await page.fill('#set-cta input[name=new_cta]', 'primary');
  await page.click('#cta-add');
  assert.equal(await page.locator('#cta-list .cta-row').count(), 4);
  const hot = page.locator('#cta-list .cta-row[data-tier=hot]');
  await hot.locator('input[name=text]').fill('Prendre rendez-vous');
  assert.equal(await hot.locator('.cta-preview').textContent(), 'Prendre rendez-vous');
  await hot.locator('input[name=href]').fill('javascript:alert(1)');
  await page.click('#set-cta button[type=submit]');
  const ctaError = page.locator('#set-cta .field-error');
  await until(async () => ctaError.isVisible());
  assert.match(await ctaError.textContent(), /^cta\.primary\.hot\.href: /);
  assert.equal(await hot.locator('input[name=href]').getAttribute('aria-invalid'), 'true');
  assert.equal(await hot.locator('input[name=text]').getAttribute('aria-invalid'), null);
  assert.equal((await stored()).cta, null);
  await hot.locator('input[name=href]').fill('/rendez-vous');
  await page.click('#set-cta button[type=submit]');
  await until(async () => (await page.locator('#set-cta .saved').textContent()) === 'Saved.');
  assert.deepEqual((await stored()).cta, { primary: { hot: { text: 'Prendre rendez-vous', href: '/rendez-vous' } } });
  const served = await (await fetch(`${base}/v1/sites/${site.id}/config`)).json();
  assert.deepEqual(served.cta, { primary: { hot: { text: 'Prendre rendez-vous', href: '/rendez-vous' } } }, 'the browser gets it at once');

  // The holdout share, in the same form: saved with the variants, served to the browser apart from them.
  await page.fill('#set-cta input[name=holdout_percent]', '20');
  await page.click('#set-cta button[type=submit]');
  await until(async () => (await stored()).cta?.holdout_percent === 20);
  assert.deepEqual((await stored()).cta, { primary: { hot: { text: 'Prendre rendez-vous', href: '/rendez-vous' } }, holdout_percent: 20 });
  const split = await (await fetch(`${base}/v1/sites/${site.id}/config`)).json();
  assert.equal(split.holdout_percent, 20);
  assert.deepEqual(split.cta, { primary: { hot: { text: 'Prendre rendez-vous', href: '/rendez-vous' } } });
  await until(async () => (await page.inputValue('#set-cta input[name=holdout_percent]')) === '20');
  assert.equal(await page.locator('#cta-list .cta-name').count(), 1, 'the share is not shown as a CTA');
  await page.fill('#set-cta input[name=holdout_percent]', '0');
  await page.click('#set-cta button[type=submit]');
  await until(async () => (await stored()).cta?.holdout_percent === undefined);
  assert.deepEqual((await stored()).cta, { primary: { hot: { text: 'Prendre rendez-vous', href: '/rendez-vous' } } });

  // A conversion that enters the client stage on the path of the contact form.
  await page.click('#conv-add');
  const row = page.locator('#conv-table tbody tr').nth(1);
  await row.locator('input[name=event]').fill('Client Signed');
  await row.locator('input[name=currency]').fill('EUR');
  await row.locator('input[name=value_property]').fill('value');
  await row.locator('select[name=stage]').selectOption('client');
  await row.locator('input[name=inherits]').fill('Contact Submitted');
  await page.click('#set-conversions button[type=submit]');
  await until(async () => (await page.locator('#set-conversions .saved').textContent()) === 'Saved.');
  const conversions = (await stored()).conversions;
  assert.deepEqual(conversions.map((c) => [c.event, c.stage ?? null, c.inherits ?? null]), [['Contact Submitted', null, null], ['Client Signed', 'client', 'Contact Submitted']]);
  // The contact intents the module captures, offered until the site counts them: one click, then Save.
  const suggested = page.locator('#conv-suggest button');
  assert.deepEqual(await suggested.allTextContents(), ['Phone Link Clicked', 'Email Address Clicked', 'Messaging Link Clicked', 'Booking Scheduled']);
  await page.click('#conv-suggest button:text-is("Booking Scheduled")');
  assert.equal(await page.locator('#conv-table tbody tr').count(), 3);
  await page.click('#set-conversions button[type=submit]');
  await until(async () => (await stored()).conversions.length === 3);
  assert.deepEqual((await stored()).conversions[2].event, 'Booking Scheduled');
  await until(async () => (await suggested.count()) === 3);

  // The rule file as TOML: a mistake is shown at its line, a journey is scored, then it is saved.
  const editor = page.locator('#set-rules textarea[name=text]');
  await until(async () => (await editor.inputValue()).includes('version = "default-2"'));
  const toml = await editor.inputValue();
  // The pricing page's points, in its own table of the file.
  const at = toml.indexOf('[actions.web.pricing_view]');
  assert.ok(at >= 0, toml);
  const cut = toml.indexOf('points = 15\n', at);
  const broken = (toml.slice(0, cut) + 'points = "lots"\n' + toml.slice(cut + 'points = 15\n'.length)).replace('version = "default-2"', 'version = "cabinet-2"');
  assert.notEqual(broken, toml);
  await editor.fill(broken);
  await page.click('#set-rules button[type=submit]');
  await until(async () => (await page.locator('#rules-errors li').count()) > 0);
  assert.equal((await (await fetch(`${base}/v1/sites/${site.id}`, { headers: admin })).json()).effective_rules.version, 'default-2', 'a file with an error saves nothing');
  await page.click('#rules-check');
  const errors = page.locator('#rules-errors li');
  await until(async () => (await errors.count()) > 0);
  const line = broken.split('\n').findIndex((l) => l === 'points = "lots"') + 1;
  assert.match(await errors.first().textContent(), new RegExp(`^line ${line}: actions\\.web\\.pricing_view\\.points: `));
  // The pricing page now weighs 30: a visitor who saw it before the edit is re-scored at their next event.
  await editor.fill(broken.replace('points = "lots"', 'points = 30'));
  await page.fill('#set-rules input[name=journey]', 'web.pricing_view, web.pricing_view, web.buy_click');
  await page.click('#rules-check');
  const result = page.locator('#rules-result');
  await until(async () => result.isVisible());
  assert.match(await result.textContent(), /^Valid: rules version cabinet-2, 25 actions, tiers cold, warm, hot, very_hot\. This journey scores 55 \(hot\)\.$/);
  await page.click('#set-rules button[type=submit]');
  await until(async () => (await page.locator('#set-rules .saved').textContent()) === 'Saved.');
  const site2 = await (await fetch(`${base}/v1/sites/${site.id}`, { headers: admin })).json();
  assert.equal(site2.effective_rules.version, 'cabinet-2');
  assert.equal(site2.config.rules.version, 'cabinet-2');
  const scored = () => d1(`SELECT score_milli, rules_version FROM visitors WHERE site_id = ${q(site.id)} AND visitor_id = ${q(reader)}`)[0];
  assert.deepEqual(scored(), { score_milli: 15000, rules_version: 'default-2' }, 'scored under the old rules until it acts');
  const next = await fetch(`${base}/v1/batch`, { method: 'POST', headers: { origin: ORIGIN }, body: JSON.stringify({ site: site.id,
    batch: [{ type: 'page', anonymousId: reader, messageId: randomUUID(), timestamp: new Date().toISOString(), consent, context: { page: { path: '/', url: `${ORIGIN}/` } } }] }) });
  assert.equal(next.status, 200, await next.text());
  await until(async () => scored().rules_version === 'cabinet-2');
  assert.equal(scored().score_milli, 31000, 'the pricing page at 30 points, the home page at 1');
  await context.close();
});

test('dashboard: each role sees what it may read; an owner makes and revokes tokens and share links; a share link shows aggregates only', async () => {
  const site = await createSite('dashrole', { origins: [ORIGIN], conversions: [{ event: 'Consultation Booked', default_value_minor: 9000, currency: 'EUR' }] });
  const anon = randomUUID();
  const sent = await fetch(`${base}/v1/batch`, {
    method: 'POST',
    headers: { origin: ORIGIN },
    body: JSON.stringify({ site: site.id, batch: [{ type: 'track', event: 'Consultation Booked', anonymousId: anon, messageId: randomUUID(), timestamp: new Date().toISOString(), consent }] }),
  });
  assert.equal(sent.status, 200, await sent.text());
  const token = async (role) => {
    const r = await fetch(`${base}/v1/sites/${site.id}/tokens`, {
      method: 'POST',
      headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' },
      body: JSON.stringify({ role, name: `${role} for the dashboard` }),
    });
    assert.equal(r.status, 201);
    return (await r.json()).token;
  };
  // Each login in a fresh tab, as a person would open it.
  let context, page;
  const login = async (t) => {
    await context?.close();
    context = await browser.newContext();
    page = await context.newPage();
    await page.goto(`${base}/dashboard/?site=${site.id}`);
    await page.fill('input[name=token]', t);
    await page.click('button[type=submit]');
    await until(async () => (await page.locator('#status').textContent()).startsWith(`Site ${site.id} as of`) || (await page.locator('#status').getAttribute('class')) === 'error');
  };
  const visible = (sel) => page.locator(sel).isVisible();

  // Analyst: reports and leads; no access management.
  await login(await token('analyst'));
  assert.equal(await page.locator('#role').textContent(), 'Signed in as analyst: reports and leads, read-only.');
  assert.ok(await visible('#leads'));
  assert.ok(await visible('#attribution'));
  assert.equal(await visible('#h-access'), false);
  assert.equal((await page.locator('#leads tbody tr').first().evaluate((tr) => tr.cells[0].textContent)), anon);

  // A privacy token reads no report: refused with a message, nothing shown.
  await login(await token('privacy'));
  assert.equal(await page.locator('#status').getAttribute('class'), 'error');

  // Owner: everything, and the Access section.
  await login(await token('owner'));
  assert.equal(await page.locator('#role').textContent(), 'Signed in as owner: everything on this site.');
  assert.ok(await visible('#h-access'));
  await page.fill('#new-token input[name=name]', 'Agency reader');
  await page.selectOption('#new-token select[name=role]', 'analyst');
  await page.click('#new-token button[type=submit]');
  await until(async () => /^mft_[0-9a-f]{64}$/.test(await page.locator('#secret-value').textContent()));
  const made = await page.locator('#secret-value').textContent();
  await until(async () => (await page.locator('#tokens tbody tr').allTextContents()).some((t) => t.startsWith('Agency reader')));
  const reads = () => fetch(`${base}/v1/leads?site=${site.id}`, { headers: { authorization: `Bearer ${made}` } }).then((r) => r.status);
  assert.equal(await reads(), 200);
  await page.click('button[aria-label="Revoke Agency reader"]');
  await until(async () => (await reads()) === 401);
  await until(async () => (await page.locator('button[aria-label="Revoke Agency reader"]').count()) === 0);

  await page.click('#new-share');
  await until(async () => (await page.locator('#secret-value').textContent()).includes('#share=mfs_'));
  const link = await page.locator('#secret-value').textContent();
  assert.ok(link.startsWith(`${base}/dashboard/?site=${site.id}#share=mfs_`), link);

  // The share link, in a fresh tab: aggregates only, the secret out of the address bar.
  const shared = await (await browser.newContext()).newPage();
  await shared.goto(link);
  await until(async () => (await shared.locator('#status').textContent()).startsWith(`Site ${site.id} as of`));
  assert.equal(await shared.locator('#role').textContent(), 'Shared view: aggregates only.');
  assert.ok(await shared.locator('#attribution').isVisible());
  assert.equal(await shared.locator('#leads').isVisible(), false);
  assert.equal(await shared.locator('#h-access').isVisible(), false);
  assert.equal(new URL(shared.url()).hash, '');
  const rows = await shared.locator('#attribution tbody tr').evaluateAll((trs) => trs.map((tr) => tr.cells[0].textContent));
  assert.deepEqual(rows, ['(unattributed)']);
  await shared.context().close();
  await context.close();
});

test('dashboard views: no serious or critical accessibility violation (axe-core); a screenshot of each under target/', async () => {
  const site = await createSite('dashaxe', { origins: [ORIGIN], timezone: 'Europe/Paris', conversions: [{ event: 'Consultation Booked', default_value_minor: 9000, currency: 'EUR' }] });
  let t = Date.now() - 60_000;
  const anon = randomUUID();
  const ev = (f) => ({ messageId: randomUUID(), timestamp: new Date((t += 1000)).toISOString(), anonymousId: anon, consent, ...f });
  const sent = await fetch(`${base}/v1/batch`, {
    method: 'POST',
    headers: { origin: ORIGIN },
    body: JSON.stringify({ site: site.id, batch: [
      ev({ type: 'page', context: { page: { path: '/honoraires', url: `${ORIGIN}/honoraires?utm_source=newsletter&utm_medium=email` }, campaign: { utm_source: 'newsletter', utm_medium: 'email' } } }),
      ev({ type: 'track', event: 'Consultation Booked', properties: { mf_element: 'book' } }),
    ] }),
  });
  assert.equal(sent.status, 200, await sent.text());
  const make = async (path, body) => (await (await fetch(`${base}/v1/sites/${site.id}/${path}`, {
    method: 'POST', headers: { ...admin, 'content-type': 'application/json' }, body: JSON.stringify(body) })).json());
  // The customer book, so that its panels are checked with content.
  assert.equal((await fetch(`${base}/__test/cron?site=${site.id}`, { method: 'POST' })).status, 200);
  const analyst = (await make('tokens', { role: 'analyst', name: 'axe analyst' })).token;
  const share = (await make('shares', { name: 'axe share' })).url;
  const dir = join(root, 'target', 'screenshots');
  mkdirSync(dir, { recursive: true });
  const views = [
    { name: 'sign-in', token: null, width: 1280 },
    { name: 'owner', token: ADMIN, width: 1280 },
    { name: 'owner-360px', token: ADMIN, width: 360 },
    { name: 'analyst', token: analyst, width: 1280 },
    { name: 'share-link', share, width: 1280 },
  ];
  for (const v of views) {
    const context = await browser.newContext({ viewport: { width: v.width, height: 900 } });
    const page = await context.newPage();
    await page.goto(v.share ? `${base}/dashboard/?site=${site.id}${new URL(v.share).hash}` : `${base}/dashboard/?site=${site.id}`);
    if (v.token) {
      await page.fill('input[name=token]', v.token);
      await page.click('#controls button[type=submit]');
    }
    if (v.token || v.share) {
      await until(async () => (await page.locator('#status').textContent()).startsWith(`Site ${site.id} as of`), 8000);
    }
    await page.screenshot({ path: join(dir, `dashboard-${v.name}.png`), fullPage: true });
    const { violations } = await new AxeBuilder({ page }).analyze();
    const bad = violations.filter((x) => x.impact === 'serious' || x.impact === 'critical');
    assert.deepEqual(bad.map((x) => `${x.id}: ${x.nodes.map((n) => n.target.join(' ')).join(', ')}`), [], `${v.name}: ${bad.map((x) => x.help).join('; ')}`);
    await context.close();
  }
});

test("dashboard: a CTA variant changed in the settings shows on the demo's next page view, in the visitor's tier", async () => {
  const before = (await (await fetch(`${base}/v1/sites/demo`, { headers: admin })).json()).config.cta;
  const context = await browser.newContext();
  const page = await context.newPage();
  try {
    await page.goto(`${base}/dashboard/?site=demo`);
    await page.fill('input[name=token]', ADMIN);
    await page.click('#controls button[type=submit]');
    await until(async () => page.locator('#h-settings').isVisible());
    const cold = page.locator('#cta-list .cta-row[data-cta=primary][data-tier=cold]');
    await until(async () => (await cold.count()) === 1);
    await cold.locator('input[name=text]').fill('Lire notre guide des indemnités');
    await page.click('#set-cta button[type=submit]');
    await until(async () => (await page.locator('#set-cta .saved').textContent()) === 'Saved.');

    // A new visitor of the demo, personalization granted: cold tier, the new text at once.
    const visitor = await browser.newContext();
    await visitor.addInitScript(() => { window.mf_allow_bots = true; });
    const demo = await visitor.newPage();
    await demo.goto(`${base}/demo/`);
    await demo.evaluate(() => mf('consent', { personalization: true }));
    await until(async () => (await demo.evaluate(() => mf('_state')))?.tier === 'cold');
    const cta = demo.locator('main a[data-mf-cta="primary"]');
    await until(async () => (await cta.textContent()) === 'Lire notre guide des indemnités');
    // The warm variant is untouched, on the action CTA the cold tier hides.
    assert.equal(await demo.locator('main a[data-mf-cta="primary-action"]').isVisible(), false);
    await visitor.close();
  } finally {
    await context.close();
    const restored = await fetch(`${base}/v1/sites/demo`, { method: 'PATCH', headers: { ...admin, 'content-type': 'application/json' }, body: JSON.stringify({ cta: before }) });
    assert.equal(restored.status, 200, await restored.text());
  }
});

test('dashboard: channel overrides, webhooks with a test delivery and their last deliveries, ad spend from a CSV file', async () => {
  const got = [];
  const receiver = createServer((req, res) => {
    let body = '';
    req.on('data', (c) => { body += c; });
    req.on('end', () => { got.push({ headers: req.headers, body: JSON.parse(body) }); res.writeHead(204); res.end(); });
  });
  await new Promise((r) => receiver.listen(0, '127.0.0.1', r));
  const hook = `http://127.0.0.1:${receiver.address().port}/hook`;
  const site = await createSite('dashmore', { origins: [ORIGIN], conversions: [{ event: 'Contact Submitted', currency: 'EUR' }] });
  const stored = async () => (await (await fetch(`${base}/v1/sites/${site.id}`, { headers: admin })).json());
  const context = await browser.newContext();
  const page = await context.newPage();
  try {
    await page.goto(`${base}/dashboard/?site=${site.id}`);
    await page.fill('input[name=token]', ADMIN);
    await page.click('#controls button[type=submit]');
    await until(async () => page.locator('#h-settings').isVisible());

    // A newsletter whose links say utm_source=lettre-avocats is Email; the client area is the site itself.
    await page.click('#override-add');
    const o = page.locator('#overrides tbody tr').first();
    await o.locator('input[name=source]').fill('lettre-avocats');
    await o.locator('input[name=channel]').fill('Email');
    await page.fill('#set-channels input[name=internal_hosts]', 'espace-client.example');
    await page.click('#set-channels button[type=submit]');
    await until(async () => (await page.locator('#set-channels .saved').textContent()) === 'Saved.');
    assert.deepEqual((await stored()).config.channels, { overrides: [{ source: 'lettre-avocats', channel: 'Email' }], internal_hosts: ['espace-client.example'] });

    // Webhooks: saved, then a signed test delivery, listed with its status.
    await page.fill('#set-webhooks textarea[name=urls]', hook);
    await page.click('#set-webhooks button[type=submit]');
    await until(async () => (await page.locator('#set-webhooks .saved').textContent()) === 'Saved.');
    assert.deepEqual((await stored()).webhooks, [hook]);
    await page.click('#webhook-test');
    await until(async () => (await page.locator('#set-webhooks .saved').textContent()) === 'Test delivered to 1 of 1 URL(s).');
    assert.equal(got.length, 1);
    assert.equal(got[0].body.type, 'test');
    assert.equal(got[0].body.site, site.id);
    assert.match(got[0].headers['x-mf-webhook-signature'], /^t=\d+,v1=[0-9a-f]{64}$/);
    await until(async () => ((await page.locator('#deliveries tbody tr').first().textContent()) ?? '').includes('204 delivered'));

    // Ad spend from a CSV file, in major units of the site's currency.
    const file = (text) => ({ name: 'spend.csv', mimeType: 'text/csv', buffer: Buffer.from(text) });
    await page.setInputFiles('#set-spend input[name=file]', file('channel,date,amount\nEmail,2026-12-01,120.50\nPaid Search,2026-12-01,80\n'));
    await page.click('#set-spend button[type=submit]');
    await until(async () => (await page.locator('#set-spend .saved').textContent()) === 'Uploaded 2 day(s) of spend, €200.50 in all.');
    assert.deepEqual(d1(`SELECT channel, amount_minor FROM spend WHERE site_id = ${q(site.id)} ORDER BY channel`),
      [{ channel: 'Email', amount_minor: 12050 }, { channel: 'Paid Search', amount_minor: 8000 }]);
    // A value the currency cannot hold is refused, naming its line and column; nothing is written.
    await page.setInputFiles('#set-spend input[name=file]', file('channel,date,amount\nEmail,2026-12-02,10\nDisplay,2026-12-02,9.999\n'));
    await page.click('#set-spend button[type=submit]');
    const spendError = page.locator('#set-spend .field-error');
    await until(async () => spendError.isVisible());
    assert.match(await spendError.textContent(), /^line 3: amount: /);
    assert.equal(d1(`SELECT COUNT(*) AS n FROM spend WHERE site_id = ${q(site.id)}`)[0].n, 2);
  } finally {
    await context.close();
    receiver.close();
  }
});
