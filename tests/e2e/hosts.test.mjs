// What a Worker reached on its own host name (a deployment) refuses that
// `wrangler dev` on loopback allows: the test routes, and a short
// super-admin token. The request goes to the local Worker with another Host.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { base, ADMIN } from './lib.mjs';

function send(path, host, headers = {}) {
  const u = new URL(base);
  return new Promise((resolve, reject) => {
    const r = request({ host: u.hostname, port: u.port, path, method: path.startsWith('/__test') ? 'POST' : 'GET', headers: { host, ...headers } }, (res) => {
      let body = '';
      res.on('data', (c) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode, body }));
    });
    r.on('error', reject);
    r.end();
  });
}

test('off loopback, the test routes are not there and a short admin token is refused', async () => {
  const local = new URL(base).host;
  assert.equal((await send('/__test/cron', local)).status, 200);
  const away = await send('/__test/cron', 'collector.example.com');
  assert.equal(away.status, 404, away.body);
  const auth = { authorization: `Bearer ${ADMIN}` };
  assert.equal((await send('/v1/sites/demo', local, auth)).status, 200);
  const weak = await send('/v1/sites/demo', 'collector.example.com', auth);
  assert.equal(weak.status, 503, weak.body);
  assert.equal(JSON.parse(weak.body).error.code, 'admin_token_weak');
});
