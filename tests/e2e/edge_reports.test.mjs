// Reports (attribution with Markov/Shapley, KPIs with TTA p50/p99, paths,
// leads; JSON and CSV) and signed webhooks with retries and a delivery log,
// against workerd + local D1 + Durable Objects (alarms).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac, randomUUID } from 'node:crypto';
import { createServer } from 'node:http';
import { base, admin, fetch, d1, q, consent, createSite as makeSite } from './lib.mjs';

const ORIGIN = 'https://agency.example';
const createSite = (extra = {}) =>
  makeSite('r', { origins: [ORIGIN], conversions: [{ event: 'Quote Requested', value_property: 'value' }], ...extra });

const at = (m) => new Date(Date.now() - m * 60_000).toISOString();
const ev = (f) => ({ messageId: randomUUID(), timestamp: at(0), consent, ...f });
const browser = (site, batch) =>
  fetch(`${base}/v1/batch`, { method: 'POST', headers: { origin: ORIGIN }, body: JSON.stringify({ site, batch }) });

async function journey(site, anon, campaigns, value) {
  const batch = campaigns.map((c, i) =>
    ev({ type: 'page', anonymousId: anon, timestamp: at(100 - i * 10), context: { page: { path: i === 1 ? '/pricing' : '/' }, campaign: c } }),
  );
  batch.push(ev({ type: 'track', event: 'Quote Requested', anonymousId: anon, timestamp: at(1), properties: { value } }));
  const res = await browser(site, batch);
  const body = await res.json();
  assert.equal(res.status, 200, JSON.stringify(body));
  return body;
}

test('reports: attribution (every model, Markov, Shapley), KPIs, paths, leads; JSON and CSV; admin only', async () => {
  const site = await createSite();
  await journey(site.id, randomUUID(), [{ utm_source: 'google', utm_medium: 'cpc' }, { utm_source: 'newsletter', utm_medium: 'email' }], 100);
  await journey(site.id, randomUUID(), [{ utm_source: 'newsletter', utm_medium: 'email' }], 50);
  const get = (path, headers = admin) => fetch(`${base}${path}`, { headers });

  const unauth = await get(`/v1/reports/kpis?site=${site.id}`, {});
  assert.equal(unauth.status, 401);
  assert.equal((await unauth.json()).error.code, 'unauthorized');
  const noSite = await get('/v1/reports/kpis');
  assert.equal(noSite.status, 400);
  assert.equal((await noSite.json()).error.code, 'missing_site');
  const badFrom = await get(`/v1/reports/attribution?site=${site.id}&from=yesterday`);
  assert.equal(badFrom.status, 400);
  assert.equal((await badFrom.json()).error.code, 'invalid_query');

  const a = await (await get(`/v1/reports/attribution?site=${site.id}`)).json();
  for (const model of ['first', 'last', 'last-non-direct', 'linear', 'time-decay', 'position']) {
    const total = a.models[model].reduce((n, c) => n + c.value_minor, 0);
    assert.equal(total, 15000, `${model}: ${JSON.stringify(a.models[model])}`);
  }
  assert.deepEqual(a.models.first.map((c) => [c.channel, c.value_minor]), [['Email', 5000], ['Paid Search', 10000]]);
  assert.ok(Array.isArray(a.markov.channels), JSON.stringify(a.markov));
  assert.ok(Array.isArray(a.shapley.channels), JSON.stringify(a.shapley));
  const csv = await get(`/v1/reports/attribution?site=${site.id}`, { ...admin, accept: 'text/csv' });
  assert.match(csv.headers.get('content-type'), /text\/csv/);
  const lines = (await csv.text()).trim().split('\r\n');
  assert.equal(lines[0], 'model,channel,conversions,value_minor');
  assert.ok(lines.includes('first,Paid Search,1,10000'), lines.join('\n'));

  const k = await (await get(`/v1/reports/kpis?site=${site.id}`)).json();
  assert.equal(k.conversions, 2);
  assert.equal(k.value_minor, 15000);
  assert.equal(k.visitors, 2);
  assert.equal(k.sessions, 4, 'a 30-minute gap starts a new session');
  assert.equal(k.tta_ms.n, 2);
  assert.ok(k.tta_ms.p50 >= 0 && k.tta_ms.p99 >= k.tta_ms.p50);
  const kcsv = await (await get(`/v1/reports/kpis?site=${site.id}`, { ...admin, accept: 'text/csv' })).text();
  assert.match(kcsv, /^metric,value\r\n/);
  assert.match(kcsv, /\r\nconversions,2\r\n/);

  const p = await (await get(`/v1/reports/paths?site=${site.id}`)).json();
  assert.deepEqual(p.paths.map((r) => [r.path, r.conversions]).sort(), [['Email', 1], ['Paid Search > Email', 1]]);
  // Fastest sequences: "Email" converted 99 min after its touch, "Paid Search > Email" 99 min after its first.
  assert.deepEqual(p.fastest.map((r) => r.path).sort(), ['Email', 'Paid Search > Email']);
  for (const f of p.fastest) assert.ok(Math.abs(f.avg_ms_to_convert - 99 * 60_000) < 5_000, JSON.stringify(f));
  const pcsv = await (await get(`/v1/reports/paths?site=${site.id}`, { ...admin, accept: 'text/csv' })).text();
  assert.match(pcsv, /^path,conversions,value_minor,nulls\r\n/);

  const l = await (await get(`/v1/leads?site=${site.id}`)).json();
  assert.equal(l.leads.length, 2);
  assert.ok(l.leads[0].score >= l.leads[1].score);
  const top = l.leads.find((x) => x.drivers.some((d) => d.action === 'web.pricing_view'));
  assert.ok(top, `a lead is explained by its pricing view: ${JSON.stringify(l.leads)}`);
  assert.ok(top.drivers.every((d) => typeof d.points === 'number' && d.count >= 1));
  // Leads are scored as of the request: age the top lead's stored snapshot by
  // three full weeks (the default decay takes 2 points per full 7 days).
  const row = d1(`SELECT score_milli, engagement_milli, fit_milli FROM visitors WHERE site_id = ${q(site.id)} AND visitor_id = ${q(top.visitor_id)}`)[0];
  assert.equal(row.engagement_milli + row.fit_milli, row.score_milli, 'no decay within the hour');
  assert.equal(top.score, row.score_milli / 1000);
  const weeks = 21 * 86_400_000 + 60_000;
  d1(`UPDATE visitors SET last_activity_ms = last_activity_ms - ${weeks}, last_at_ms = last_at_ms - ${weeks} WHERE site_id = ${q(site.id)} AND visitor_id = ${q(top.visitor_id)}`);
  const aged = (await (await get(`/v1/leads?site=${site.id}`)).json()).leads.find((x) => x.visitor_id === top.visitor_id);
  assert.equal(aged.score_at_last_event, row.score_milli / 1000);
  assert.equal(aged.score, (Math.max(0, row.engagement_milli - 6000) + row.fit_milli) / 1000, JSON.stringify(aged));
  const tier = l.leads[0].tier;
  const byTier = await (await get(`/v1/leads?site=${site.id}&tier=${tier}`)).json();
  assert.ok(byTier.leads.every((x) => x.tier === tier));
  const badTier = await get(`/v1/leads?site=${site.id}&tier=lukewarm`);
  assert.equal(badTier.status, 400);
  assert.equal((await badTier.json()).error.code, 'invalid_query');
  const lcsv = await (await get(`/v1/leads?site=${site.id}`, { ...admin, accept: 'text/csv' })).text();
  assert.match(lcsv, /^visitor_id,user_id,score,tier/);
});

test('spend upload: CPA and ROAS per channel, funnel and AQS in the KPIs; bad uploads store nothing', async () => {
  const site = await createSite();
  await journey(site.id, randomUUID(), [{ utm_source: 'google', utm_medium: 'cpc' }, { utm_source: 'newsletter', utm_medium: 'email' }], 100);
  await journey(site.id, randomUUID(), [{ utm_source: 'newsletter', utm_medium: 'email' }], 50);
  const today = new Date().toISOString().slice(0, 10);
  const yesterday = new Date(Date.now() - 86_400_000).toISOString().slice(0, 10);
  const upload = (body, headers = admin) =>
    fetch(`${base}/v1/spend`, { method: 'POST', headers: { ...headers, 'content-type': 'application/json' }, body: JSON.stringify(body) });
  const stored = () => d1(`SELECT channel, day_ms, amount_minor FROM spend WHERE site_id = ${q(site.id)} ORDER BY channel, day_ms`);

  assert.equal((await upload({ site: site.id, rows: [] }, {})).status, 401);
  const unknown = await upload({ site: 'no-such-site', rows: [{ channel: 'Email', date: today, amount_minor: 1 }] });
  assert.equal(unknown.status, 404);
  const bad = await upload({
    site: site.id,
    rows: [
      { channel: 'Email', date: today, amount_minor: 100 },
      { channel: 'Email', date: '2026-02-30', amount_minor: 100 },
    ],
  });
  assert.equal(bad.status, 400);
  const badBody = await bad.json();
  assert.equal(badBody.error.code, 'invalid_spend');
  assert.match(badBody.error.message, /^rows\[1\]\.date: /);
  assert.deepEqual(stored(), [], 'a rejected upload stores no row at all');

  const ok = await upload({
    site: site.id,
    currency: 'EUR',
    rows: [
      { channel: 'Paid Search', date: today, amount_minor: 2500 },
      { channel: 'Email', date: today, amount_minor: 600 },
      { channel: 'Email', date: yesterday, amount_minor: 400 },
    ],
  });
  assert.equal(ok.status, 200, await ok.clone().text());
  assert.deepEqual(await ok.json(), { site: site.id, rows: 3, amount_minor: 3500 });
  // Uploading a day again corrects it: 600 → 100.
  const again = await upload({ site: site.id, rows: [{ channel: 'Email', date: today, amount_minor: 100 }] });
  assert.equal(again.status, 200);
  assert.equal(stored().reduce((n, r) => n + r.amount_minor, 0), 3000);

  const k = await (await fetch(`${base}/v1/reports/kpis?site=${site.id}&model=first`, { headers: admin })).json();
  assert.equal(k.model, 'first');
  const ch = Object.fromEntries(k.channels.map((c) => [c.channel, c]));
  assert.equal(ch['Paid Search'].conversions, 1);
  assert.equal(ch['Paid Search'].value, 10000);
  assert.equal(ch['Paid Search'].cpa, 2500);
  assert.equal(ch['Paid Search'].roas, 4);
  assert.equal(ch.Email.value, 5000);
  assert.equal(ch.Email.cpa, 500);
  assert.equal(ch.Email.roas, 10);
  assert.ok(ch['Paid Search'].conversion_rate > 0 && ch['Paid Search'].conversion_rate <= 1, JSON.stringify(ch));
  assert.deepEqual(k.funnel.map((s) => [s.stage, s.visitors]).filter(([s]) => s !== 'qualified'),
    [['visited', 2], ['engaged', 2], ['converted', 2]]);
  assert.equal(k.funnel[1].pass_through, 1);
  // AQS = 100·(0.3·identified 0/2 + 0.3·classified 3/3 + 0.2·consistent 3/3 + 0.2·min(1, 2 journeys/100)).
  assert.ok(Math.abs(k.aqs.score - 50.4) < 1e-9, JSON.stringify(k.aqs));
  const badModel = await fetch(`${base}/v1/reports/kpis?site=${site.id}&model=magic`, { headers: admin });
  assert.equal(badModel.status, 400);
  assert.match((await badModel.json()).error.message, /^model: one of first, last/);
  const csv = await (await fetch(`${base}/v1/reports/kpis?site=${site.id}&model=first&view=channels`, { headers: { ...admin, accept: 'text/csv' } })).text();
  const lines = csv.trim().split('\r\n');
  assert.equal(lines[0], 'channel,sessions,conversions,value_minor,conversion_rate,spend_minor,cpa_minor,roas');
  assert.ok(lines.some((l) => l.startsWith('Paid Search,') && l.endsWith(',2500,2500,4')), lines.join('\n'));
});

test('webhooks: signed, retried with backoff after a failure, every attempt logged', async () => {
  const received = [];
  let calls = 0;
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      calls += 1;
      received.push({ headers: req.headers, body });
      res.writeHead(calls === 1 ? 500 : 200).end();
    });
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  try {
    const port = server.address().port;
    const bad = await fetch(`${base}/v1/sites`, {
      method: 'POST',
      headers: admin,
      body: JSON.stringify({ id: `r-${randomUUID().slice(0, 8)}`, origins: [ORIGIN], webhooks: ['http://example.com/hook'] }),
    });
    assert.equal(bad.status, 400, 'plain http only to localhost');
    await bad.body?.cancel();
    const site = await createSite({ webhooks: [`http://127.0.0.1:${port}/hook`] });
    const anon = randomUUID();
    await journey(site.id, anon, [{ utm_source: 'google', utm_medium: 'cpc' }], 10);
    const deadline = Date.now() + 20_000;
    // Until a conversion came and the first delivery (whichever kind: a tier,
    // a stage or the conversion) was tried again.
    const retriedFirst = () => received.filter((r) => r.headers['x-mf-delivery'] === received[0]?.headers['x-mf-delivery']).length >= 2;
    while (Date.now() < deadline && !(received.some((r) => JSON.parse(r.body).type === 'conversion') && retriedFirst())) {
      await new Promise((r) => setTimeout(r, 250));
    }
    const conversions = received.filter((r) => JSON.parse(r.body).type === 'conversion');
    assert.ok(conversions.length >= 1, `received: ${JSON.stringify(received.map((r) => r.body))}`);
    for (const r of received) {
      // Signed with the webhook secret, in its own header: never with the
      // secret that authenticates incoming events.
      assert.equal(r.headers['x-mf-signature'], undefined);
      const [, t, v1] = /^t=(\d+),v1=([0-9a-f]{64})$/.exec(r.headers['x-mf-webhook-signature']) ?? [];
      assert.ok(t, r.headers['x-mf-webhook-signature']);
      assert.equal(v1, createHmac('sha256', site.webhook_secret).update(`${t}.${r.body}`).digest('hex'));
      assert.notEqual(v1, createHmac('sha256', site.signing_secret).update(`${t}.${r.body}`).digest('hex'));
    }
    const first = received[0];
    const retried = received.filter((r) => r.headers['x-mf-delivery'] === first.headers['x-mf-delivery']);
    assert.ok(retried.length >= 2, 'the failed delivery was retried');
    const conv = JSON.parse(conversions[0].body);
    assert.equal(conv.site, site.id);
    assert.equal(conv.visitor, anon);
    assert.equal(conv.data.value_minor, 1000);
    const log = d1(`SELECT attempt, status FROM webhook_deliveries WHERE site_id = ${q(site.id)} ORDER BY id`);
    assert.ok(log.some((r) => r.attempt === 1 && r.status === 500), JSON.stringify(log));
    assert.ok(log.some((r) => r.attempt === 2 && r.status === 200), JSON.stringify(log));
  } finally {
    server.close();
  }
});

test('an idle journey closes as a non-converting path (a null), feeding Markov and Shapley', async () => {
  const site = await createSite({ attribution: { journey_timeout_hours: 0.0005 } });
  await journey(site.id, randomUUID(), [{ utm_source: 'google', utm_medium: 'cpc' }, { utm_source: 'newsletter', utm_medium: 'email' }], 80);
  const idle = randomUUID();
  const res = await browser(site.id, [ev({ type: 'page', anonymousId: idle, context: { page: { path: '/' }, campaign: { utm_source: 'google', utm_medium: 'cpc' } } })]);
  assert.equal(res.status, 200);
  await res.body?.cancel();
  const deadline = Date.now() + 20_000;
  let paths = [];
  while (Date.now() < deadline) {
    paths = (await (await fetch(`${base}/v1/reports/paths?site=${site.id}`, { headers: admin })).json()).paths;
    if (paths.some((p) => p.path === 'Paid Search' && p.nulls === 1)) break;
    await new Promise((r) => setTimeout(r, 500));
  }
  assert.ok(paths.some((p) => p.path === 'Paid Search' && p.nulls === 1), JSON.stringify(paths));
  assert.ok(paths.some((p) => p.path === 'Paid Search > Email' && p.conversions === 1 && p.nulls === 0), JSON.stringify(paths));
  const a = await (await fetch(`${base}/v1/reports/attribution?site=${site.id}`, { headers: admin })).json();
  assert.equal(a.markov.journeys, 2, JSON.stringify(a.markov));
  const email = a.markov.channels.find((c) => c.channel === 'Email');
  assert.ok(email && email.removal_effect > 0, JSON.stringify(a.markov.channels));
  assert.ok(a.shapley.channels.length === 2, JSON.stringify(a.shapley));
});
