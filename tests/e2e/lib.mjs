// Shared helpers of the end-to-end suites (not a test file itself): the
// running Worker's base URL, a fetch that survives wrangler dev closing an
// idle keep-alive connection, direct reads of the local D1 database, and site
// creation through the admin API.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash, createHmac, randomUUID } from 'node:crypto';
import { chromium } from 'playwright-core';

export const base = process.env.MF_BASE_URL;
/** The admin token of the test environment (`[env.test.vars]` in wrangler.toml). */
export const ADMIN = 'test-admin-token';
export const admin = { authorization: `Bearer ${ADMIN}` };
export const root = new URL('../../', import.meta.url).pathname;
/** A consent stamp granting every purpose. */
export const consent = Object.freeze({ analytics: true, personalization: true, marketing: true, policy: 1 });

// wrangler dev may close an idle keep-alive connection just as the next
// request reuses it ("fetch failed", nothing was sent): retry that once. Its
// dev proxy may also lose the connection to the Worker under load and answer
// a POST with its own 503 "Your worker restarted mid-request" (it retries
// only GET and HEAD itself): retry that once too. Every write endpoint is
// idempotent (messageId de-duplication), so a retry never double-counts.
export async function fetch(url, init) {
  let res;
  try {
    res = await globalThis.fetch(url, init);
  } catch (e) {
    if (e?.cause?.code !== 'UND_ERR_SOCKET' && e?.cause?.code !== 'ECONNRESET') throw e;
    return globalThis.fetch(url, init);
  }
  if (res.status === 503 && (await res.clone().text()).startsWith('Your worker restarted mid-request')) {
    return globalThis.fetch(url, init);
  }
  return res;
}

/** Every statement's rows, read straight from the test D1 database. */
export function d1All(sql) {
  const out = execFileSync(
    process.env.MF_WRANGLER,
    ['d1', 'execute', 'DB', '--local', '--env', 'test', '--persist-to', process.env.MF_STATE_DIR, '--json', '--command', sql],
    {
      cwd: root,
      encoding: 'utf8',
      env: { ...process.env, WRANGLER_SEND_METRICS: 'false' },
      stdio: ['ignore', 'pipe', 'pipe'],
      maxBuffer: 256 << 20,
    },
  );
  return JSON.parse(out).map((r) => r.results);
}

/** The rows of one statement. */
export const d1 = (sql) => d1All(sql)[0];

/** An SQL string literal. */
export const DAY = 86_400_000;
/** The ISO time `msAgo` milliseconds before now. */
export const at = (msAgo) => new Date(Date.now() - msAgo).toISOString();
/** An event with a fresh messageId, sent now under full consent, and `fields`. */
export const ev = (fields) => ({ messageId: randomUUID(), timestamp: at(0), consent, ...fields });
export const bearer = (key) => ({ authorization: `Bearer ${key}` });
/** Asserts a 200 answer and answers its JSON body. */
export async function ok(res) {
  const body = await res.json();
  assert.equal(res.status, 200, JSON.stringify(body));
  return body;
}

export const q = (s) => `'${String(s).replaceAll("'", "''")}'`;

/**
 * What a site's backend computes to let a browser identify join a known
 * profile: the hex HMAC-SHA256 of the userId (or of the e-mail's SHA-256)
 * under the site's identity secret — README's snippet, in Node.
 */
export const signIdentity = (secret, value) => createHmac('sha256', secret).update(value).digest('hex');
/** The e-mail key both sides use: SHA-256 of the trimmed, lower-cased address. */
export const emailKey = (email) => createHash('sha256').update(email.trim().toLowerCase()).digest('hex');

/** Creates a site `<prefix>-<random>` through `POST /v1/sites`; answers the 201 body (with its keys). */
export async function createSite(prefix, body) {
  const id = `${prefix}-${randomUUID().slice(0, 8)}`;
  const res = await fetch(`${base}/v1/sites`, {
    method: 'POST',
    headers: { ...admin, 'content-type': 'application/json' },
    body: JSON.stringify({ id, ...body }),
  });
  const created = await res.json();
  assert.equal(res.status, 201, JSON.stringify(created));
  return created;
}

/** Debian's Chromium, headless; never a browser a tool downloads. */
export function launchChromium(extraArgs = []) {
  return chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--headless=new', '--no-sandbox', '--disable-gpu', '--disable-background-networking', ...extraArgs],
  });
}

/** Asserts an error answer: its status, the error shape, and its code. Answers the body. */
export async function expectError(res, status, code) {
  const body = await res.json();
  assert.equal(res.status, status, JSON.stringify(body));
  assert.equal(typeof body.error?.message, 'string', JSON.stringify(body));
  if (code) assert.equal(body.error.code, code, JSON.stringify(body));
  return body;
}

/** Waits until `pred()` holds, or fails after `ms`. */
export async function until(pred, ms = 6000) {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await pred()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.fail('condition not reached in time');
}

/**
 * Rate limits count in fixed one-minute windows of the Worker's clock (this
 * machine's). A test that fills a window and expects the next request to be
 * refused must not straddle a window's end, or the count starts over midway:
 * when fewer than `needMs` are left in this window, wait for the next one.
 */
export async function freshWindow(needMs = 20_000) {
  const left = 60_000 - (Date.now() % 60_000);
  if (left < needMs) await new Promise((r) => setTimeout(r, left + 100));
}

/**
 * `page.goto`, tried once more when the load event never comes. With request
 * interception on (`route`), Chromium now and then leaves a subresource of a
 * new document pending forever (microsoft/playwright#19678,
 * playwright-python#2315); seen here on `/demo/site.css`, a static file
 * wrangler serves without running any code of ours. A real hang of the page
 * would hang the second attempt too.
 */
export async function goto(page, url) {
  try {
    return await page.goto(url, { timeout: 10_000 });
  } catch (e) {
    if (e?.name !== 'TimeoutError') throw e;
    console.log(`# goto ${url}: no load event in 10 s, navigating again`);
    return page.goto(url);
  }
}
