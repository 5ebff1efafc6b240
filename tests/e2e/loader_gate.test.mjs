// The loader's consent gate against the core's consent vectors. The loader
// (www/mf.js) decides one thing alone: whether to fetch the module. It is a
// deliberate over-approximation of the core's resolution — it loads unless
// every signal present denies every purpose the module needs (analytics,
// personalization) — so that the decision proper stays in the core. This
// runs the loader in a bare VM (no Worker needed) for every case of
// `consent.resolve`, `consent.explicit` and `consent.loader`, with the signals set up the way
// a page gives them (mf() calls queued before the tag, a Consent Mode
// dataLayer, an IAB TCF `__tcfapi`, GPC, DNT and `data-respect-dnt`), and
// checks: wherever the core grants a purpose the module needs, the loader
// loads; with no signal, or only denials, it does not.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import vm from 'node:vm';
import { root } from './lib.mjs';

const loader = readFileSync(`${root}www/mf.js`, 'utf8');
const vectors = (name) => JSON.parse(readFileSync(`${root}tests/vectors/core/${name}.json`, 'utf8')).cases;

/** Runs the loader once with these signals; answers whether it fetched the module. */
function loads({ explicit = [], consent_mode, gcm, tcf, gpc = false, dnt = false, respect_dnt = false }) {
  let fetched = false;
  const attrs = { site: 's', ...(respect_dnt ? { 'respect-dnt': '' } : {}) };
  const el = () => ({ style: { setProperty() {} }, textContent: '', getAttribute: () => null });
  const script = { src: 'https://c.example/mf.js', getAttribute: (k) => (k.slice(5) in attrs ? attrs[k.slice(5)] : null) };
  const document = {
    currentScript: script,
    readyState: 'complete',
    querySelector: () => script,
    querySelectorAll: () => [],
    documentElement: { classList: { contains: () => false, add() {} } },
    createElement: el,
    head: { appendChild() {} },
    addEventListener() {},
  };
  const navigator = { globalPrivacyControl: gpc, doNotTrack: dnt ? '1' : null, userAgent: 'Mozilla/5.0 Chrome/130', webdriver: false };
  const window = { mf: { q: explicit.map((c) => ['consent', c]) } };
  if (consent_mode) window.dataLayer = [['consent', 'default', consent_mode]];
  if (gcm) window.dataLayer = gcm;
  if (tcf) {
    window.__tcfapi = (cmd, version, cb) =>
      cb({ eventStatus: 'tcloaded', gdprApplies: tcf.gdprApplies, purpose: { consents: tcf.purposeConsents } }, true);
  }
  const context = vm.createContext({
    window, document, navigator, URL,
    setTimeout: () => 0, clearTimeout() {},
    __import: () => {
      fetched = true;
      return new Promise(() => {});
    },
  });
  // The one dynamic import is the module's fetch.
  vm.runInContext(loader.replace(/\bimport\(/g, '__import('), context);
  return fetched;
}

const NEEDS = ['analytics', 'personalization'];

test('the loader loads wherever the core grants a purpose the module needs (consent.resolve, consent.explicit, consent.loader)', () => {
  const cases = [
    ...vectors('consent_resolve').map((c) => ({ name: c.name, signals: { ...c.input.signals, explicit: c.input.signals.explicit ? [c.input.signals.explicit] : [] }, expected: c.expected })),
    ...vectors('consent_explicit').map((c) => ({ name: c.name, signals: { explicit: c.input.calls }, expected: c.expected })),
    // What the loader itself gathers, as the page would give it: its flags
    // are booleans of its own making, the dataLayer a list.
    ...vectors('consent_loader').map((c) => {
      const raw = c.input.raw && typeof c.input.raw === 'object' && !Array.isArray(c.input.raw) ? c.input.raw : {};
      return {
        name: c.name,
        signals: {
          explicit: Array.isArray(raw.calls) ? raw.calls : [],
          gcm: Array.isArray(raw.gcm) ? raw.gcm : undefined,
          tcf: raw.tcf,
          gpc: raw.gpc === true,
          dnt: raw.dnt === true,
          respect_dnt: raw.respect_dnt === true,
        },
        expected: c.expected,
      };
    }),
  ];
  let checked = 0;
  let wider = 0;
  for (const c of cases) {
    // A refused signal grants nothing in the core; the loader may load or not.
    if (!c.expected.ok) continue;
    const needed = NEEDS.some((p) => c.expected.ok[p] === true);
    const got = loads(c.signals);
    if (needed) assert.equal(got, true, `${c.name}: the core grants ${NEEDS.filter((p) => c.expected.ok[p]).join(', ')}, the loader must load`);
    if (got && !needed) wider += 1;
    checked += 1;
  }
  console.log(`# loader gate: ${checked} consent cases, loads wherever the core needs it; loads where the core then grants nothing in ${wider}`);
  assert.ok(checked >= 50, `${checked} cases`);
});

test('the loader fetches nothing with no signal, or with signals that all deny', () => {
  assert.equal(loads({}), false, 'no signal');
  assert.equal(loads({ explicit: ['deny-all'] }), false);
  assert.equal(loads({ explicit: [{ analytics: false, personalization: false }] }), false);
  assert.equal(loads({ consent_mode: { analytics_storage: 'denied', personalization_storage: 'denied' } }), false);
  assert.equal(loads({ tcf: { gdprApplies: true, purposeConsents: {} } }), false);
  assert.equal(loads({ gpc: true }), false, 'GPC alone grants nothing');
  assert.equal(loads({ dnt: true, respect_dnt: true, consent_mode: { analytics_storage: 'granted' } }), false, 'DNT honoured over Consent Mode');
  // And the grants, each alone.
  assert.equal(loads({ explicit: ['grant-all'] }), true);
  assert.equal(loads({ consent_mode: { analytics_storage: 'granted' } }), true);
});
