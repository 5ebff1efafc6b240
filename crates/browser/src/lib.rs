//! `microfunnel-browser`: the WebAssembly module the script tag loads —
//! consent-aware capture, live local scoring, CTA switching and transport.
//!
//! What it must never do: decide a score, a channel or what consent allows by
//! itself (it calls `microfunnel-core`); send or store anything before the
//! matching consent; panic (no `unwrap`/`expect`/fallible indexing: a panic
//! kills the module for the rest of the page's life).
//!
//! The exported surface is one function, [`cmd`], taking the same argument
//! lists as the page's `mf(...)` (plus `_init`, `_signals`, `_config` and
//! `_state` from the loader and tests): every extra export grows the
//! wasm-bindgen glue, which counts against the size budget.

mod app;
mod capture;
mod conv;
mod cta;
mod js;
mod transport;

use app::Kind;
use microfunnel_core::Purpose;
use serde_json::Value;
use wasm_bindgen::prelude::*;

fn arg(args: &JsValue, i: u32) -> JsValue {
    js_sys::Reflect::get_u32(args, i).unwrap_or(js::U)
}

/// One `mf(...)` call: `args` is its argument list (an array or `arguments`).
#[wasm_bindgen]
pub fn cmd(args: JsValue) -> JsValue {
    let name = arg(&args, 0).as_string().unwrap_or_default();
    let (a1, a2) = (arg(&args, 1), arg(&args, 2));
    match name.as_str() {
        "_init" => app::init(&a1),
        "_signals" => signals(&a1),
        "_config" => config(&a1),
        "_state" => return app::with(state).unwrap_or(JsValue::NULL),
        "score" => return app::with(|a| app::explain(a)).unwrap_or(JsValue::NULL),
        "page" => capture::run(|a, fx| capture::page(a, fx, true)),
        "track" => {
            if let Some(ev) = a1.as_string() {
                let props = capture::user_props(&a2);
                capture::run(|a, fx| app::emit(a, Kind::Track(&ev), props, Value::Null, fx));
            }
        }
        "identify" => {
            let user = a1.as_string();
            // `mf('identify', id, traits, {signature})`: the site's HMAC of the
            // id (or of the e-mail's hash), which lets the collector join this
            // device to that person's profile. Checked there, never stored.
            let signature = js::get_str(&arg(&args, 3), "signature");
            let mut traits = capture::user_props(&a2);
            // An e-mail leaves the device, and is queued on it, only as its
            // hash (the key stitching and erasure use), never as the address.
            if let Some(t) = traits.as_object_mut() {
                microfunnel_core::identity::pseudonymise(t);
            }
            capture::run(|a, fx| {
                if a.consent.allows(Purpose::Analytics) {
                    a.user = user.filter(|u| !u.trim().is_empty()).or(a.user.take());
                }
                app::emit(a, Kind::Identify(signature.as_deref()), Value::Null, traits, fx);
            });
        }
        "on" => {
            if let (Some("tier"), Ok(cb)) = (a1.as_string().as_deref(), a2.dyn_into::<js_sys::Function>()) {
                let now = app::with(|a| {
                    a.tier_cbs.push(cb.clone());
                    a.tier.clone()
                });
                if let Some(Some(t)) = now {
                    let d = js::obj();
                    js::set(&d, "tier", &js::s(&t));
                    js::apply(&cb, &JsValue::NULL, &[&d]);
                }
            }
        }
        _ => {}
    }
    JsValue::UNDEFINED
}

/// New raw consent signals from the loader, resolved by the core.
fn signals(raw: &JsValue) {
    let consent = app::signals(raw);
    let Some((first, spa, personal_now)) = app::with(|a| {
        let before = a.consent.allows(Purpose::Personalization);
        (app::set_consent(a, consent), a.spa, !before && a.consent.allows(Purpose::Personalization))
    }) else {
        return;
    };
    if first {
        capture::install(spa);
        let io = capture::cta_observer();
        capture::run(|a, fx| {
            a.cta_io = io;
            app::read_campaign(a);
            capture::page(a, fx, false);
            cta::show(a);
        });
        fetch_config();
    } else {
        app::with(cta::show);
        // Personalization granted later on this page: the site's rules and
        // CTA variants now, not on the next page.
        if personal_now {
            fetch_config();
        }
    }
}

fn config(v: &JsValue) {
    let cfg = conv::to_value(v);
    let mut fx = app::Effects::default();
    app::with(|a| {
        let before = a.tier.clone();
        app::apply_config(a, &cfg);
        cta::show(a);
        if a.tier != before
            && let Some(t) = a.tier.clone()
        {
            let mut d = serde_json::Map::new();
            d.insert("tier".into(), Value::String(t.clone()));
            fx.tier = Some((t, Value::Object(d)));
        }
    });
    cta::fire(fx);
}

/// `GET {api}/v1/sites/{site}/config` (personalization granted): the site's
/// rules and CTA variants; the default rules apply until it arrives. With
/// personalization the config is cached on the device (`mf_{site}_cfg`:
/// `{e: ETag, c: {rules_version, rules_compact, cta, consent}}`), applied at once on
/// the next page and revalidated with `If-None-Match` (a 304 keeps it).
fn fetch_config() {
    let Some((url, cfg_key)) = app::with(|a| {
        if !a.consent.allows(Purpose::Personalization) {
            return None;
        }
        let mut u = a.api.trim_end_matches('/').to_owned();
        u.push_str("/v1/sites/");
        u.push_str(&js_sys::encode_uri_component(&a.site).as_string().unwrap_or_default());
        u.push_str("/config");
        Some((u, app::key(a, "cfg")))
    })
    .flatten() else {
        return;
    };
    let init = js::obj();
    js::set(&init, "credentials", &js::s("omit"));
    let cached = js::store_get("localStorage", &cfg_key).map(|t| js::parse(&t));
    if let Some((etag, c)) = cached.and_then(|v| Some((js::get_str(&v, "e")?, js::get(&v, "c")))) {
        config(&c);
        let headers = js::obj();
        js::set(&headers, "if-none-match", &js::s(&etag));
        js::set(&init, "headers", &headers);
    }
    let p = js::call(&js::global(), "fetch", &[&js::s(&url), &init]);
    let ok = js::func(move |resp| {
        // A 304 (`ok` is false) keeps the cached config already applied.
        if js::get(&resp, "ok").as_bool() != Some(true) {
            return;
        }
        let etag = js::call(&js::get(&resp, "headers"), "get", &[&js::s("etag")]).as_string();
        let key = cfg_key.clone();
        let body = js::call(&resp, "json", &[]);
        let got = js::func(move |v| {
            config(&v);
            if let Some(e) = &etag {
                cache_config(&key, e, &v);
            }
        });
        js::call(&body, "then", &[&got, &js::func(|_| {})]);
    });
    js::call(&p, "then", &[&ok, &js::func(|_| {})]);
}

/// Keeps what the module uses of the config, only while personalization
/// still allows storing it.
fn cache_config(key: &str, etag: &str, v: &JsValue) {
    if app::with(|a| a.consent.allows(Purpose::Personalization)) != Some(true) {
        return;
    }
    let c = js::obj();
    for k in ["rules_version", "rules_compact", "cta", "consent"] {
        js::set(&c, k, &js::get(v, k));
    }
    let o = js::obj();
    js::set(&o, "e", &js::s(etag));
    js::set(&o, "c", &c);
    if let Some(text) = js::stringify(&o) {
        js::store_set("localStorage", key, &text);
    }
}

/// Test and debugging view: {consent, tier, queued, active}.
fn state(a: &mut app::App) -> JsValue {
    let o = js::obj();
    let c = a.consent;
    let stamp = js::obj();
    for (k, p) in [
        ("analytics", Purpose::Analytics),
        ("personalization", Purpose::Personalization),
        ("marketing", Purpose::Marketing),
    ] {
        js::set(&stamp, k, &JsValue::from_bool(c.allows(p)));
    }
    js::set(&o, "consent", &stamp);
    js::set(&o, "tier", &a.tier.as_deref().map_or(JsValue::NULL, js::s));
    js::set(&o, "queued", &JsValue::from(a.out.len() as u32));
    js::set(&o, "active", &JsValue::from_bool(a.active));
    o
}

/// Runs one golden-vector file through the core, returning the report as
/// JSON. Test builds only (`--features vectors`).
#[cfg(feature = "vectors")]
#[wasm_bindgen(js_name = runVectorFile)]
pub fn run_vector_file(text: &str) -> Result<String, JsValue> {
    let report = microfunnel_core::vectors::run_file(text).map_err(|e| JsValue::from_str(&e))?;
    let failures: Vec<String> = report.failures.iter().map(|f| f.name.clone()).collect();
    Ok(format!("{{\"suite\":{:?},\"passed\":{},\"failed\":{:?}}}", report.suite, report.passed, failures))
}
