//! The module's command API in headless Chromium: nothing sent or stored
//! before a grant, what a grant stores, withdrawal, GPC, local scoring with
//! tier callbacks, and CTA config rendered as inert text.
// Test harnesses: failing loudly is their job.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
#![cfg(target_arch = "wasm32")]

use js_sys::{Array, Function, Object, Reflect};
use microfunnel_browser::cmd;
use wasm_bindgen::JsValue;
use wasm_bindgen_test::wasm_bindgen_test;

wasm_bindgen_test::wasm_bindgen_test_configure!(run_in_browser);

fn js(code: &str) -> JsValue {
    Function::new_no_args(code).call0(&JsValue::NULL).unwrap_or(JsValue::UNDEFINED)
}

fn call(args: &[JsValue]) -> JsValue {
    cmd(args.iter().collect::<Array>().into())
}

fn s(v: &str) -> JsValue {
    JsValue::from_str(v)
}

fn get(o: &JsValue, k: &str) -> JsValue {
    Reflect::get(o, &s(k)).unwrap_or(JsValue::UNDEFINED)
}

/// A fresh module state and clean storage for site `t`; returns the state.
fn init() {
    js("localStorage.clear(); sessionStorage.clear();");
    // An unroutable collector: requests fail and are retried, never delivered.
    call(&[s("_init"), js("return {site: 't', api: 'http://127.0.0.1:9'}")]);
}

/// Device writes are coalesced to the end of the current task (see
/// `app::save_soon`): what is stored is checked one turn later.
async fn next_task() {
    let p = js("return new Promise(r => setTimeout(r, 0))");
    let _ = wasm_bindgen_futures::JsFuture::from(js_sys::Promise::from(p)).await;
}

fn signals(code: &str) {
    call(&[s("_signals"), js(code)]);
}

fn storage_keys() -> String {
    js("return Object.keys(localStorage).concat(Object.keys(sessionStorage)).sort().join(',')")
        .as_string()
        .unwrap_or_default()
}

fn state() -> JsValue {
    call(&[s("_state")])
}

#[wasm_bindgen_test]
async fn nothing_is_captured_or_stored_without_a_grant() {
    init();
    signals("return {calls: [], gcm: null, tcf: null, gpc: false, dnt: false, respect_dnt: false}");
    call(&[s("track"), s("Signed Up"), Object::new().into()]);
    next_task().await;
    let st = state();
    assert_eq!(get(&st, "active").as_bool(), Some(false));
    assert_eq!(get(&st, "queued").as_f64(), Some(0.0));
    assert_eq!(storage_keys(), "");
    assert!(call(&[s("score")]).is_null(), "no score without personalization");
}

#[wasm_bindgen_test]
async fn analytics_grant_queues_and_stores_only_ours_and_withdrawal_clears() {
    init();
    signals("return {calls: [{analytics: true}]}");
    next_task().await;
    let st = state();
    assert_eq!(get(&st, "active").as_bool(), Some(true));
    assert!(get(&st, "queued").as_f64().unwrap_or(0.0) >= 1.0, "the landing page view is queued");
    assert_eq!(storage_keys(), "mf_t_id,mf_t_q");
    let queue = js("return JSON.parse(localStorage.getItem('mf_t_q'))");
    let first = Reflect::get_u32(&queue, 0).unwrap_or(JsValue::UNDEFINED);
    assert_eq!(get(&first, "type").as_string().as_deref(), Some("page"));
    assert_eq!(get(&get(&first, "consent"), "analytics").as_bool(), Some(true));
    assert_eq!(get(&get(&first, "consent"), "personalization").as_bool(), Some(false));
    assert_eq!(get(&first, "messageId").as_string().map(|m| m.len()), Some(36));
    assert!(call(&[s("score")]).is_null(), "analytics alone does not score");

    // Withdrawal clears at once, and a write scheduled before it writes nothing.
    call(&[s("track"), s("Just Before"), JsValue::UNDEFINED]);
    signals("return {calls: [{analytics: true}, {analytics: false}]}");
    assert_eq!(storage_keys(), "", "withdrawal clears what we stored");
    next_task().await;
    assert_eq!(storage_keys(), "", "nothing is written back after the withdrawal");
    assert_eq!(get(&state(), "queued").as_f64(), Some(0.0));
    call(&[s("track"), s("After"), JsValue::UNDEFINED]);
    assert_eq!(get(&state(), "queued").as_f64(), Some(0.0), "capture stops at once");
}

#[wasm_bindgen_test]
fn gpc_denies_marketing_over_grant_all_and_tcf_and_gcm_resolve_in_the_core() {
    init();
    signals("return {calls: ['grant-all'], gpc: true}");
    let c = get(&state(), "consent");
    assert_eq!(get(&c, "analytics").as_bool(), Some(true));
    assert_eq!(get(&c, "marketing").as_bool(), Some(false));

    init();
    signals(
        "return {gcm: [['consent', 'default', {analytics_storage: 'denied', ad_storage: 'denied'}], \
         ['consent', 'update', {analytics_storage: 'granted'}], ['consent', 'default', {analytics_storage: 'denied'}]]}",
    );
    let c = get(&state(), "consent");
    assert_eq!(get(&c, "analytics").as_bool(), Some(true));
    assert_eq!(get(&c, "personalization").as_bool(), Some(false));

    init();
    // TCF (GDPR applies) outranks Consent Mode.
    signals(
        "return {gcm: [['consent', 'update', {analytics_storage: 'granted'}]], \
         tcf: {gdprApplies: true, purposeConsents: {'1': true, '8': true, '9': 'yes'}}}",
    );
    assert_eq!(get(&get(&state(), "consent"), "analytics").as_bool(), Some(false));
    assert_eq!(storage_keys(), "");
}

#[wasm_bindgen_test]
async fn personalization_scores_locally_and_notifies_tier_changes() {
    init();
    js("window.__tiers = []; window.addEventListener('mf:tier', e => __tiers.push('dom:' + e.detail.tier));");
    signals("return {calls: [{personalization: true}]}");
    call(&[s("on"), s("tier"), js("return t => __tiers.push('cb:' + t.tier)")]);
    assert_eq!(get(&state(), "tier").as_string().as_deref(), Some("cold"));
    call(&[s("track"), s("web.pricing_view"), JsValue::UNDEFINED]);
    call(&[s("track"), s("Book"), js("return {mf_element: 'book'}")]);
    assert_eq!(get(&state(), "tier").as_string().as_deref(), Some("warm"));
    let seen = js("return __tiers.join(',')").as_string().unwrap_or_default();
    assert_eq!(seen, "cb:cold,cb:warm,dom:warm");
    let score = call(&[s("score")]);
    assert_eq!(get(&score, "tier").as_string().as_deref(), Some("warm"));
    // The test page is served at `/`: its landing view is `web.home_view` (1) + 15 + 25.
    assert_eq!(get(&score, "score").as_f64(), Some(41.0));
    // Personalization alone: nothing queued for sending, only the local ledger stored.
    next_task().await;
    assert_eq!(get(&state(), "queued").as_f64(), Some(0.0));
    assert_eq!(storage_keys(), "mf_t_l");
}

#[wasm_bindgen_test]
fn cta_config_is_rendered_as_inert_text() {
    init();
    js("document.body.insertAdjacentHTML('beforeend', \
        '<a id=c1 data-mf-cta=primary data-mf-tier=\"cold warm\" href=/a>Guide</a><a id=c2 data-mf-tier=hot>Hot</a>')");
    signals("return {calls: [{personalization: true}]}");
    call(&[
        s("_config"),
        js("return {cta: {primary: {cold: {text: '<img src=x onerror=\"window.__pwned=1\">Book', \
            href: 'javascript:window.__pwned=2'}}}}"),
    ]);
    let el = js("return document.getElementById('c1')");
    assert_eq!(get(&el, "textContent").as_string().as_deref(), Some("<img src=x onerror=\"window.__pwned=1\">Book"));
    assert_eq!(js("return document.querySelectorAll('#c1 img').length").as_f64(), Some(0.0));
    assert_eq!(js("return document.getElementById('c1').getAttribute('href')").as_string().as_deref(), Some("/a"));
    assert!(js("return window.__pwned").is_undefined());
    assert_eq!(
        js("return getComputedStyle(document.getElementById('c2')).display").as_string().as_deref(),
        Some("none")
    );
    assert_eq!(js("return document.documentElement.classList.contains('mf-d')").as_bool(), Some(true));
}

#[wasm_bindgen_test]
async fn a_burst_of_events_costs_one_device_write() {
    init();
    signals("return {calls: [{analytics: true, personalization: true}]}");
    next_task().await;
    js("window.__writes = []; const set = window.__set = Storage.prototype.setItem; \
        Storage.prototype.setItem = function (k, v) { __writes.push(k); return set.call(this, k, v); };");
    for i in 0..50 {
        call(&[s("track"), s("Burst"), js(&format!("return {{i: {i}}}"))]);
    }
    assert_eq!(js("return __writes.join(',')").as_string().as_deref(), Some(""), "nothing written during the burst");
    next_task().await;
    let writes = js("const w = __writes.slice().sort().join(','); Storage.prototype.setItem = __set; return w");
    assert_eq!(writes.as_string().as_deref(), Some("mf_t_l,mf_t_q"), "one queue write, one ledger write");
    let queued = js("return JSON.parse(localStorage.getItem('mf_t_q')).length").as_f64().unwrap_or(0.0);
    assert!(queued >= 50.0, "every event of the burst is in the stored queue: {queued}");
}
