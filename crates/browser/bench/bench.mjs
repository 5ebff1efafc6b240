// `cargo xtask bench-browser`: main-thread cost of the loader, of the module's
// start, and of capture + scoring per event, in headless Chromium against the
// demo on `wrangler dev` (MF_BASE_URL). Fails if any long task (> 50 ms) is seen.
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
if (longTasks > 0) {
  console.error(`FAIL: ${longTasks} long task(s)`);
  process.exit(1);
}
