// What a law firm's visitor does when they decide, in real Chromium against
// `wrangler dev`: clicks on phone, SMS, e-mail and messaging-app links, and
// appointments booked in Calendly and Cal.com embeds. Each is sent as its
// kind alone — nothing of the number, the address or the invitee leaves the
// page — is scored by the default rules and counts as a conversion when the
// site defines it; the admin view suggests the ones a site does not count yet.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { base, admin, d1, q, createSite, launchChromium, until, goto, fetch } from './lib.mjs';

const origin = new URL(base).origin;
const NUMBER = '612345678';
const ADDRESS = 'maitre.dupont';
const INVITEE = 'jeanne.client';
let browser;

before(async () => {
  browser = await launchChromium();
});
after(async () => browser?.close());

/** The demo's home page as `site`, every request and its body recorded. */
async function open(site) {
  const context = await browser.newContext();
  await context.addInitScript(() => {
    window.mf_allow_bots = true;
  });
  await context.route(/\/demo\/$/, async (route) => {
    const res = await route.fetch();
    const html = (await res.text()).replace('data-site="demo"', `data-site="${site}"`);
    await route.fulfill({ response: res, body: html });
  });
  // The widgets' frames, answered here: their origin is the provider's.
  const frame = (post) => `<!doctype html><title>widget</title><script>parent.postMessage(${post}, '*')</script>`;
  await context.route('https://calendly.com/**', (route) =>
    route.fulfill({
      contentType: 'text/html',
      body: frame(`{event: 'calendly.event_scheduled', payload: {invitee: {uri: 'https://api.calendly.com/invitees/${INVITEE}'}, event: {uri: 'https://api.calendly.com/x'}}}`),
    }),
  );
  await context.route('https://app.cal.com/**', (route) =>
    route.fulfill({
      contentType: 'text/html',
      body: frame(`{originator: 'CAL', type: 'bookingSuccessful', namespace: '', fullType: 'CAL::bookingSuccessful', data: {booking: {attendees: [{email: '${INVITEE}@example.fr'}]}}}`),
    }),
  );
  await context.route('https://evil.example/**', (route) =>
    route.fulfill({ contentType: 'text/html', body: frame(`{event: 'calendly.event_scheduled'}`) }),
  );
  const page = await context.newPage();
  const requests = [];
  page.on('request', (r) => requests.push({ url: r.url(), body: r.postData() ?? '' }));
  return { context, page, requests };
}

const sent = (requests) =>
  requests
    .filter((r) => new URL(r.url).pathname === '/v1/batch')
    .flatMap((r) => JSON.parse(r.body).batch);

test('phone, SMS, e-mail and messaging links: the kind is sent, never the number or the address; scored and counted as conversions', async () => {
  const site = await createSite('intent', {
    origins: [origin],
    conversions: [{ event: 'Phone Link Clicked' }, { event: 'Booking Scheduled' }],
  });
  const { context, page, requests } = await open(site.id);
  await goto(page, `${base}/demo/`);
  // Scoring is personalization: without it the visitor is counted, not scored.
  await page.evaluate(() => mf('consent', { analytics: true, personalization: true }));
  await until(() => sent(requests).length > 0);
  const links = {
    tel: `tel:+33${NUMBER}`,
    sms: `sms:+33${NUMBER}?body=Bonjour`,
    mailto: `mailto:${ADDRESS}@cabinet.example?subject=Rendez-vous`,
    whatsapp: `https://wa.me/33${NUMBER}?text=Bonjour`,
    whatsapp_api: `https://api.whatsapp.com/send?phone=33${NUMBER}`,
    signal: `https://signal.me/#p/+33${NUMBER}`,
    telegram: `https://t.me/${ADDRESS}`,
    outbound: 'https://barreau.example/annuaire',
  };
  await page.evaluate((links) => {
    // At the top: the demo's consent bar covers the bottom of the page.
    const nav = document.createElement('nav');
    for (const [id, href] of Object.entries(links)) {
      const a = document.createElement('a');
      a.id = id;
      a.href = href;
      a.textContent = id;
      nav.append(a, ' ');
    }
    document.body.prepend(nav);
    // The page's own handler, after ours: these links go nowhere in a test.
    window.addEventListener('click', (e) => e.preventDefault());
  }, links);
  for (const id of Object.keys(links)) await page.click(`#${id}`);
  const intents = () => sent(requests).filter((e) => e.type === 'track' && !['Scroll Depth', 'Engaged Time', 'CTA Viewed'].includes(e.event));
  await until(() => intents().length >= 8, 12000);
  const got = intents().map((e) => [e.event, e.properties]);
  assert.deepEqual(got, [
    ['Phone Link Clicked', { scheme: 'tel' }],
    ['Phone Link Clicked', { scheme: 'sms' }],
    ['Email Address Clicked', { scheme: 'mailto' }],
    ['Messaging Link Clicked', { app: 'whatsapp' }],
    ['Messaging Link Clicked', { app: 'whatsapp' }],
    ['Messaging Link Clicked', { app: 'signal' }],
    ['Messaging Link Clicked', { app: 'telegram' }],
    ['Outbound Link Clicked', { url: links.outbound }],
  ]);
  for (const r of requests) {
    for (const secret of [NUMBER, ADDRESS]) {
      assert.ok(!r.url.includes(secret) && !r.body.includes(secret), `${secret} left the page in ${r.url}`);
    }
  }
  // Stored as sent, scored by the default rules, a conversion where the site counts it.
  const anon = intents()[0].anonymousId;
  const S = q(site.id);
  await until(() => d1(`SELECT COUNT(*) AS n FROM events WHERE site_id = ${S} AND name IN ('Phone Link Clicked', 'Email Address Clicked', 'Messaging Link Clicked')`)[0].n === 7, 8000);
  const row = () => d1(`SELECT v.score_milli, v.drivers FROM visitors v JOIN identities i ON i.site_id = v.site_id AND i.visitor_id = v.visitor_id
    WHERE v.site_id = ${S} AND i.kind = 'anonymous' AND i.value = ${q(anon)}`)[0];
  await until(() => row()?.score_milli >= 55_000, 8000);
  const drivers = JSON.stringify(row().drivers);
  for (const id of ['web.phone_click', 'web.email_click', 'web.messaging_click']) assert.ok(drivers.includes(id), `${id} in ${drivers}`);
  const conv = d1(`SELECT name, COUNT(*) AS n FROM conversions WHERE site_id = ${S} GROUP BY name`);
  assert.deepEqual(conv, [{ name: 'Phone Link Clicked', n: 2 }]);
  assert.ok(!JSON.stringify(d1(`SELECT payload FROM events WHERE site_id = ${S}`)).includes(NUMBER), 'nothing of the number is stored');
  await context.close();
});

test('bookings in Calendly and Cal.com embeds: "Booking Scheduled" with the provider only, from the widget\'s own origin', async () => {
  const site = await createSite('intent', { origins: [origin], conversions: [{ event: 'Booking Scheduled' }] });
  const { context, page, requests } = await open(site.id);
  await goto(page, `${base}/demo/`);
  await page.evaluate(() => mf('consent', { analytics: true }));
  await until(() => sent(requests).length > 0);
  // A forged message: from another origin, and from the page itself.
  await page.evaluate(() => {
    const f = document.createElement('iframe');
    f.src = 'https://evil.example/embed';
    document.body.append(f);
    window.postMessage({ event: 'calendly.event_scheduled' }, '*');
    window.postMessage({ originator: 'CAL', type: 'bookingSuccessful' }, '*');
  });
  await page.waitForTimeout(500);
  for (const src of ['https://calendly.com/cabinet/consultation', 'https://app.cal.com/cabinet/30min']) {
    await page.evaluate((src) => {
      const f = document.createElement('iframe');
      f.src = src;
      document.body.append(f);
    }, src);
  }
  const bookings = () => sent(requests).filter((e) => e.event === 'Booking Scheduled');
  await until(() => bookings().length >= 2, 12000);
  await page.waitForTimeout(800);
  assert.deepEqual(bookings().map((e) => e.properties).sort((a, b) => a.provider.localeCompare(b.provider)), [
    { provider: 'cal.com' },
    { provider: 'calendly' },
  ]);
  for (const r of requests) assert.ok(!r.body.includes(INVITEE) && !r.url.includes(INVITEE), 'nothing of the invitee leaves the page');
  const S = q(site.id);
  await until(() => d1(`SELECT COUNT(*) AS n FROM conversions WHERE site_id = ${S} AND name = 'Booking Scheduled'`)[0].n === 2, 8000);
  await context.close();
});

test('the admin view suggests the contact intents a site does not count yet as conversions', async () => {
  const site = await createSite('intent', { origins: [origin] });
  const view = async () => (await (await fetch(`${base}/v1/sites/${site.id}`, { headers: admin })).json()).suggested_conversions;
  assert.deepEqual(await view(), [
    { event: 'Phone Link Clicked' },
    { event: 'Email Address Clicked' },
    { event: 'Messaging Link Clicked' },
    { event: 'Booking Scheduled' },
  ]);
  const res = await fetch(`${base}/v1/sites/${site.id}`, {
    method: 'PATCH',
    headers: { ...admin, 'content-type': 'application/json' },
    body: JSON.stringify({ conversions: [{ event: 'Booking Scheduled' }, { event: 'Phone Link Clicked' }] }),
  });
  assert.equal(res.status, 200, await res.text());
  assert.deepEqual(await view(), [{ event: 'Email Address Clicked' }, { event: 'Messaging Link Clicked' }]);
});
