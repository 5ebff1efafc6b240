// The Worker side of the golden vectors: every file under tests/vectors/ is
// POSTed to the test build's /__test/vectors route and run by the core inside
// workerd. One test per file, so a failure names the file and the cases.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { base, fetch } from './lib.mjs';

const root = new URL('../vectors/', import.meta.url).pathname;

function files(dir) {
  return readdirSync(dir).sort().flatMap((name) => {
    const p = join(dir, name);
    return statSync(p).isDirectory() ? files(p) : p.endsWith('.json') ? [p] : [];
  });
}

const all = files(root);
test('there are vector files', () => assert.ok(all.length > 0));

let cases = 0;
for (const file of all) {
  test(`vectors in workerd: ${relative(root, file)}`, async () => {
    const res = await fetch(`${base}/__test/vectors`, { method: 'POST', body: readFileSync(file, 'utf8') });
    const body = await res.json();
    assert.equal(res.status, 200, JSON.stringify(body));
    cases += body.passed + body.failures.length;
    const detail = body.failures
      .map((f) => `\n${f.name}\n  expected: ${JSON.stringify(f.expected)}\n  actual:   ${JSON.stringify(f.actual)}`)
      .join('');
    assert.equal(body.failures.length, 0, `${body.failures.length} case(s) failed in workerd:${detail}`);
    assert.ok(body.passed > 0);
  });
}
test('vector case count (workerd)', () => {
  console.log(`vectors (workerd): ${cases} cases in ${all.length} files`);
  assert.ok(cases >= all.length);
});
