// CTA holdout tests in real Chromium against `wrangler dev`: with the demo
// site's `cta.holdout_percent` at 50, visitors (analytics and
// personalization granted) are split by a hash of their id — recomputed
// here with Node's crypto, independently of the core — the held-out ones
// never see a warm variant however warm their score, every event drafted
// after the site's config carries their arm, the collector stores its own
// arm whatever the browser claims, and the lift report's counts are
// exactly the visitors and conversions sent.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomUUID } from 'node:crypto';
import { ADMIN, admin, d1, q, launchChromium, until, goto, fetch, expectError, consent } from './lib.mjs';

const base = process.env.MF_BASE_URL;
let browser;
let before_cta;
const started = new Date(Date.now() - 1000).toISOString();

/** The arm by the documented scheme: SHA-256("microfunnel/holdout/v1\0" site "\0" id), 8 bytes big-endian mod 10 000. */
function armOf(site, id, percent) {
  const digest = createHash('sha256').update(Buffer.concat([Buffer.from('microfunnel/holdout/v1\0'), Buffer.from(site), Buffer.from([0]), Buffer.from(id)])).digest();
  return Number(digest.readBigUInt64BE(0) % 10000n) < percent * 100 ? 'holdout' : 'treated';
}

const patchDemo = (body) =>
  fetch(`${base}/v1/sites/demo`, { method: 'PATCH', headers: { ...admin, 'content-type': 'application/json' }, body: JSON.stringify(body) });

before(async () => {
  browser = await launchChromium();
  const site = await (await fetch(`${base}/v1/sites/demo`, { headers: admin })).json();
  before_cta = site.config.cta;
  const res = await patchDemo({ cta: { ...before_cta, holdout_percent: 50 } });
  assert.equal(res.status, 200, await res.text());
});
after(async () => {
  await browser?.close();
  const res = await patchDemo({ cta: before_cta });
  assert.equal(res.status, 200, await res.text());
});

test('the holdout share is validated: over 50 % is refused, naming the field', async () => {
  const body = await expectError(await patchDemo({ cta: { ...before_cta, holdout_percent: 51 } }), 400);
  assert.match(body.error.message, /cta\.holdout_percent/);
  const config = await (await fetch(`${base}/v1/sites/demo/config`)).json();
  assert.equal(config.holdout_percent, 50);
  assert.equal(config.cta.holdout_percent, undefined, 'the share is not a CTA name to the browser');
});

test('a 50 % holdout: held-out visitors never see a warm variant, every event carries the arm, and the lift report counts what was sent', async () => {
  const visitors = [];
  // Until both arms have at least three visitors (each arm is a coin flip per visitor).
  for (let i = 0; i < 40 && !(['holdout', 'treated'].every((a) => visitors.filter((v) => v.arm === a).length >= 3)); i++) {
    const context = await browser.newContext();
    await context.addInitScript(() => { window.mf_allow_bots = true; });
    const page = await context.newPage();
    const batches = [];
    page.on('request', (r) => {
      if (new URL(r.url()).pathname === '/v1/batch') batches.push(JSON.parse(r.postData() ?? 'null'));
    });
    await goto(page, base + '/demo/tarifs/');
    // The share arrives with the site's config (fetched once personalization
    // is granted): events drafted before it cannot know their arm, and the
    // collector stamps those itself (checked in D1 below).
    await page.evaluate(() => mf('consent', { analytics: true, personalization: true }));
    // Applied, then cached on the device (personalization is granted).
    await until(() => page.evaluate(() => localStorage.getItem('mf_demo_cfg') !== null));
    const converts = i % 2 === 0;
    if (converts) {
      await page.evaluate(() => document.getElementById('book-consultation').addEventListener('click', (e) => e.preventDefault()));
      await page.click('#book-consultation'); // web.buy_click: warm by the demo's rules, and the `Book Clicked` conversion
      await until(async () => (await page.evaluate(() => mf('score')))?.tier === 'warm');
    }
    const sent = () => batches.flatMap((b) => b.batch);
    await until(() => sent().some((e) => e.type === 'page') && (!converts || sent().some((e) => e.event === 'Book Clicked')), 8000);
    const anon = sent()[0].anonymousId;
    const arm = armOf('demo', anon, 50);
    // What the visitor is shown: the holdout the cold tier's, whatever its score.
    const warmShown = await page.locator('main > p.ctas a[data-mf-tier~="warm"]').isVisible();
    const coldShown = await page.locator('main > p.ctas a[data-mf-tier="cold"]').isVisible();
    if (arm === 'holdout') {
      assert.equal(warmShown, false, `held-out visitor ${anon} was shown a warm variant`);
      assert.equal(coldShown, true);
    } else {
      assert.equal(warmShown, converts, `treated visitor ${anon} sees the variant of its tier`);
    }
    // Whatever carries an arm carries the right one; what is drafted after
    // the config (the click) always carries it.
    for (const e of sent()) {
      if (e.event === 'Book Clicked' || e.context?.cta_arm !== undefined) assert.equal(e.context?.cta_arm, arm, `${e.type} ${e.event ?? ''} carries the arm`);
    }
    visitors.push({ anon, arm, converts });
    await context.close();
  }
  const holdout = visitors.filter((v) => v.arm === 'holdout');
  const treated = visitors.filter((v) => v.arm === 'treated');
  assert.ok(holdout.length >= 3 && treated.length >= 3, `arms: ${holdout.length} held out, ${treated.length} treated`);

  // The collector stored its own arm on every event of these visitors.
  const ids = visitors.map((v) => q(v.anon)).join(',');
  await until(() => d1(`SELECT COUNT(DISTINCT anonymous_id) AS n FROM events WHERE site_id = 'demo' AND anonymous_id IN (${ids})`)[0].n === visitors.length, 8000);
  const rows = d1(`SELECT anonymous_id, cta_arm, COUNT(*) AS n FROM events WHERE site_id = 'demo' AND anonymous_id IN (${ids}) GROUP BY anonymous_id, cta_arm`);
  for (const v of visitors) {
    const mine = rows.filter((r) => r.anonymous_id === v.anon);
    assert.deepEqual(mine.map((r) => r.cta_arm), [v.arm], `stored arms of ${v.anon}`);
  }
  await until(() => d1(`SELECT COUNT(*) AS n FROM conversions c JOIN identities i ON i.site_id = c.site_id AND i.visitor_id = c.visitor_id AND i.kind = 'anonymous' WHERE c.site_id = 'demo' AND c.name = 'Book Clicked' AND i.value IN (${ids})`)[0].n === visitors.filter((v) => v.converts).length, 8000);

  // The visitors' tiers reach D1 with their events; read until the warm ones are all there.
  let report;
  await until(async () => {
    const res = await fetch(`${base}/v1/reports/lift?site=demo&conversion=${encodeURIComponent('Book Clicked')}&from=${encodeURIComponent(started)}`, { headers: admin });
    report = await res.json();
    assert.equal(res.status, 200, JSON.stringify(report));
    const warm = report.tiers.find((t) => t.tier === 'warm');
    return warm && warm.lift.treated.visitors + warm.lift.holdout.visitors === visitors.filter((v) => v.converts).length;
  }, 10000);
  assert.equal(report.holdout_percent, 50);
  const o = report.overall;
  assert.equal(o.treated.visitors, treated.length);
  assert.equal(o.holdout.visitors, holdout.length);
  assert.equal(o.treated.conversions, treated.filter((v) => v.converts).length);
  assert.equal(o.holdout.conversions, holdout.filter((v) => v.converts).length);
  assert.ok(o.absolute.lower <= o.absolute.estimate && o.absolute.estimate <= o.absolute.upper, JSON.stringify(o.absolute));
  assert.ok(report.p_value > 0 && report.p_value <= 1);
  assert.ok(report.looks >= 1);
  // Per tier: the converters are warm (checked above), the others cold.
  const cold = report.tiers.find((t) => t.tier === 'cold');
  assert.equal(cold.lift.treated.visitors + cold.lift.holdout.visitors, visitors.filter((v) => !v.converts).length);
  assert.ok(report.calibration.tiers.some((t) => t.tier === 'warm'));
  console.log(`# lift: ${treated.length} treated, ${holdout.length} held out; p = ${report.p_value}`);

  // The dashboard's lift panel shows the report it was sent: the counts in
  // the table, one interval per row with an estimate in the plot.
  const context = await browser.newContext();
  const page = await context.newPage();
  const shown = page.waitForResponse((r) => new URL(r.url()).pathname === '/v1/reports/lift');
  await page.goto(`${base}/dashboard/?site=demo`);
  await page.fill('input[name=token]', ADMIN);
  await page.click('#controls button[type=submit]');
  const panel = await (await shown).json();
  await until(async () => (await page.locator('#lift tbody tr').count()) === 1 + panel.tiers.length);
  assert.ok(panel.overall.treated.visitors >= treated.length && panel.overall.holdout.visitors >= holdout.length);
  const cells = await page.locator('#lift tbody tr').first().evaluate((tr) => [...tr.cells].map((c) => c.textContent));
  assert.equal(cells[0], 'all visitors');
  assert.match(cells[1], new RegExp(`^${panel.overall.treated.conversions} / ${panel.overall.treated.visitors} `));
  assert.match(cells[2], new RegExp(`^${panel.overall.holdout.conversions} / ${panel.overall.holdout.visitors} `));
  const plotted = [panel.overall, ...panel.tiers.map((t) => t.lift)].filter((l) => l.absolute.estimate != null).length;
  assert.equal(await page.locator('#lift-plot svg circle.est').count(), plotted);
  assert.equal(await page.locator('#lift-plot svg line.ci').count(), plotted);
  assert.match(await page.locator('#lift-hint').textContent(), /^50 % of visitors are held out/);
  assert.equal(await page.locator('#calibration .bar').count(), panel.calibration.tiers.length);
  await context.close();
});

test('the collector keeps its own arm, not the browser\'s claim; without analytics there is no arm; bad queries are refused', async () => {
  const anon = randomUUID();
  const claimed = armOf('demo', anon, 50) === 'holdout' ? 'treated' : 'holdout';
  const res = await fetch(`${base}/v1/batch`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', origin: base },
    body: JSON.stringify({ site: 'demo', batch: [
      { type: 'page', messageId: randomUUID(), anonymousId: anon, timestamp: new Date().toISOString(), consent, context: { page: { path: '/demo/', url: `${base}/demo/` }, cta_arm: claimed } },
    ] }),
  });
  assert.equal(res.status, 200, await res.text());
  await until(() => d1(`SELECT cta_arm FROM events WHERE site_id = 'demo' AND anonymous_id = ${q(anon)}`).length === 1);
  assert.equal(d1(`SELECT cta_arm FROM events WHERE site_id = 'demo' AND anonymous_id = ${q(anon)}`)[0].cta_arm, armOf('demo', anon, 50));

  await expectError(await fetch(`${base}/v1/reports/lift?site=demo&conversion=Nope`, { headers: admin }), 400);
  await expectError(await fetch(`${base}/v1/reports/lift?site=demo&from=yesterday`, { headers: admin }), 400);
  const denied = await fetch(`${base}/v1/reports/lift?site=demo`);
  assert.ok([401, 403].includes(denied.status));
});
