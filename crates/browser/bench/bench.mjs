// `cargo xtask bench-browser`: main-thread cost of the loader, of the module's
// start, and of capture + scoring per event, in headless Chromium against the
// demo on `wrangler dev` (MF_BASE_URL), then Segment's analytics-next and
// posthog-js on the same page doing the same things, side by side. Fails if
// any long task (> 50 ms) of ours is seen.
import { chromium } from 'playwright-core';

const base = process.env.MF_BASE_URL;
const runs = Number(process.env.MF_BENCH_RUNS ?? 5);
const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  args: ['--headless=new', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
});

async function scriptMs(cdp) {
  const { metrics } = await cdp.send('Performance.getMetrics');
  return 1000 * (metrics.find((m) => m.name === 'ScriptDuration')?.value ?? 0);
}

async function session(blockLoader) {
  const context = await browser.newContext();
  await context.addInitScript(() => {
    window.mf_allow_bots = true;
    window.__long = [];
    new PerformanceObserver((l) => l.getEntries().forEach((e) => __long.push(e.duration))).observe({ type: 'longtask', buffered: true });
  });
  if (blockLoader) await context.route('**/mf.js', (r) => r.fulfill({ status: 200, contentType: 'text/javascript', body: '' }));
  const page = await context.newPage();
  const cdp = await context.newCDPSession(page);
  await cdp.send('Performance.enable');
  await page.goto(base + '/demo/', { waitUntil: 'load' });
  await page.waitForTimeout(400);
  return { context, page, cdp };
}

const median = (xs) => xs.slice().sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const loader = [], init = [], perEvent = [], perPage = [], perEventAll = [], perPageAll = [];
let longTasks = 0;
for (let i = 0; i < runs; i++) {
  const without = await session(true);
  const bare = await scriptMs(without.cdp);
  await without.context.close();

  const { context, page, cdp } = await session(false);
  loader.push((await scriptMs(cdp)) - bare);
  const before = await scriptMs(cdp);
  await page.evaluate(() => mf('consent', { analytics: true, personalization: true }));
  await page.waitForFunction(() => mf('_state')?.active === true);
  init.push((await scriptMs(cdp)) - before);
  // Events arrive as they would on a page: one per task, never a burst
  // that would itself be a long task. Two figures each: the call itself, and
  // the whole turn until the next task of ours runs, which includes the work
  // the module queued behind the call (device writes run in the next task)
  // and the timer's own delay (the same for every build).
  const loop = (what, n) =>
    page.evaluate(async ([what, n]) => {
      const tick = () => new Promise((r) => setTimeout(r, 0));
      let call = 0, turn = 0;
      for (let i = 0; i < n; i++) {
        const t = performance.now();
        if (what === 'track') mf('track', 'Bench Event', { i });
        else history.pushState({}, '', `/demo/bench-${i}`);
        call += performance.now() - t;
        await tick();
        turn += performance.now() - t;
      }
      return [call / n, turn / n];
    }, [what, n]);
  const [track, trackTurn] = await loop('track', 200);
  const [nav, navTurn] = await loop('page', 20);
  perEvent.push(track);
  perEventAll.push(trackTurn);
  perPage.push(nav);
  perPageAll.push(navTurn);
  await page.waitForTimeout(300);
  const long = await page.evaluate(() => __long);
  if (long.length) console.log(`  run ${i}: long tasks ${long.map((d) => d.toFixed(0) + ' ms').join(', ')}`);
  longTasks += long.length;
  await context.close();
}

// The peers on the same page doing the same things: the demo with our tag
// replaced by Segment's analytics-next (standalone build) or posthog-js
// (array.js), both from npm (devDependencies), served here; their network
// (settings, flags, bundles, event intake) is answered locally. Bytes are
// what the page fetched of their scripts, gzip -9.
const { readFileSync, existsSync } = await import('node:fs');
const { gzipSync } = await import('node:zlib');
const { basename, join } = await import('node:path');
const nm = join(process.cwd(), 'node_modules');
const PEERS = {
  'Segment analytics-next 1.84.3': {
    dir: join(nm, '@segment/analytics-next/dist/umd'),
    tag: `<script>window.analytics=[];analytics._writeKey='bench';['track','page','identify','load'].forEach(function(m){analytics[m]=function(){analytics.push([m].concat([].slice.call(arguments)))}});analytics.page();</script>
<script async src="https://cdn.segment.com/analytics.js/v1/bench/analytics.min.js"></script>`,
    script: (url) => (url.includes('/analytics.js/v1/') ? 'standalone.js' : basename(new URL(url).pathname)),
    ready: () => typeof window.analytics?.initialized === 'boolean' && window.analytics.initialized,
    track: (i) => window.analytics.track('Bench Event', { i }),
    page: () => window.analytics.page(),
  },
  'posthog-js 1.449.2': {
    dir: join(nm, 'posthog-js/dist'),
    tag: `<script>window.posthog=[];posthog._i=[['phc_bench',{api_host:'https://us.i.posthog.com',capture_pageview:'history_change',autocapture:true,disable_session_recording:true},'posthog']];posthog.__SV=1;</script>
<script async src="https://us-assets.i.posthog.com/static/array.js"></script>`,
    script: (url) => basename(new URL(url).pathname),
    ready: () => window.posthog?.__loaded === true,
    track: (i) => window.posthog.capture('Bench Event', { i }),
    page: () => {},
  },
};

async function peerRun(peer) {
  const context = await browser.newContext();
  await context.addInitScript(() => {
    window.__long = [];
    new PerformanceObserver((l) => l.getEntries().forEach((e) => __long.push(e.duration))).observe({ type: 'longtask', buffered: true });
  });
  let bytes = 0;
  await context.route(/\/demo\/$/, async (route) => {
    const res = await route.fetch();
    const html = (await res.text()).replace(/<script async src="\/mf\.js"[^>]*><\/script>/, peer.tag);
    await route.fulfill({ response: res, body: html });
  });
  await context.route(/^https:\/\/[^/]*(segment\.com|segment\.io|posthog\.com)\//, async (route) => {
    const url = route.request().url();
    const file = join(peer.dir, peer.script(url));
    if (/\.js(\?|$)/.test(url) && existsSync(file)) {
      const body = readFileSync(file);
      bytes += gzipSync(body, { level: 9 }).length;
      return route.fulfill({ status: 200, contentType: 'text/javascript', body, headers: { 'access-control-allow-origin': '*' } });
    }
    const settings = url.includes('/settings') ? { integrations: { 'Segment.io': { apiKey: 'bench' } }, plan: {} } : {};
    await route.fulfill({ status: 200, contentType: 'application/json', body: JSON.stringify(settings), headers: { 'access-control-allow-origin': '*' } });
  });
  const page = await context.newPage();
  const cdp = await context.newCDPSession(page);
  await cdp.send('Performance.enable');
  await page.goto(base + '/demo/', { waitUntil: 'load' });
  await page.waitForFunction(peer.ready, null, { timeout: 15000 });
  await page.waitForTimeout(400);
  const load = await scriptMs(cdp);
  const loop = (what, n) =>
    page.evaluate(async ([what, n, track, pageFn]) => {
      const t0 = new Function('i', `(${track})(i)`), p0 = new Function(`(${pageFn})()`);
      const tick = () => new Promise((r) => setTimeout(r, 0));
      let call = 0;
      for (let i = 0; i < n; i++) {
        const t = performance.now();
        if (what === 'track') t0(i);
        else { history.pushState({}, '', `/demo/bench-${i}`); p0(); }
        call += performance.now() - t;
        await tick();
      }
      return call / n;
    }, [what, n, peer.track.toString(), peer.page.toString()]);
  const track = await loop('track', 200);
  const nav = await loop('page', 20);
  await page.waitForTimeout(300);
  const long = (await page.evaluate(() => __long)).length;
  await context.close();
  return { bytes, load, track, nav, long };
}

const peers = {};
for (const [name, peer] of Object.entries(PEERS)) {
  const rs = [];
  for (let i = 0; i < runs; i++) {
    const without = await session(true);
    const bare = await scriptMs(without.cdp);
    await without.context.close();
    const r = await peerRun(peer);
    r.load -= bare;
    rs.push(r);
  }
  const m = (k) => median(rs.map((r) => r[k]));
  peers[name] = { bytes: m('bytes'), load: m('load'), track: m('track'), nav: m('nav'), long: rs.reduce((a, r) => a + r.long, 0) };
}
await browser.close();

const f = (x) => x.toFixed(3).padStart(9);
console.log(`browser bench (median of ${runs} runs, headless Chromium, main thread)`);
console.log(`  loader (script time, vs. the same page without it)  ${f(median(loader))} ms`);
console.log(`  module start after a grant (fetch is off-thread)    ${f(median(init))} ms`);
console.log(`  track(): capture + validate + score + queue, each   ${f(median(perEvent))} ms`);
console.log(`    the whole turn, with what it queued behind it      ${f(median(perEventAll))} ms`);
console.log(`  SPA page view (pushState), each                     ${f(median(perPage))} ms`);
console.log(`    the whole turn, with what it queued behind it      ${f(median(perPageAll))} ms`);
console.log(`  long tasks (> 50 ms)                                ${String(longTasks).padStart(9)}`);
const ours = ['www/mf.js', 'www/pkg/microfunnel.js', 'www/pkg/microfunnel_bg.wasm']
  .reduce((a, p) => a + gzipSync(readFileSync(join(process.cwd(), p)), { level: 9 }).length, 0);
console.log(`\nthe same page, the same actions (median of ${runs} runs; each call one per task)`);
console.log(`  ${'library'.padEnd(32)} ${'KB gzip'.padStart(9)} ${'load ms'.padStart(9)} ${'track ms'.padStart(9)} ${'SPA ms'.padStart(9)} ${'long'.padStart(5)}`);
const row = (name, r) =>
  console.log(`  ${name.padEnd(32)} ${(r.bytes / 1024).toFixed(2).padStart(9)} ${f(r.load)} ${f(r.track)} ${f(r.nav)} ${String(r.long).padStart(5)}`);
row('microfunnel (loader+glue+wasm)', { bytes: ours, load: median(loader) + median(init), track: median(perEvent), nav: median(perPage), long: longTasks });
for (const [name, r] of Object.entries(peers)) row(name, r);
if (longTasks > 0) {
  console.error(`FAIL: ${longTasks} long task(s)`);
  process.exit(1);
}
